//! `brainrecon encode` on BLIP features by name, joint models with unique variance, and
//! `brainrecon encode layers`, on a simulated subject with the features of a freshly trained
//! captioner (a few steps of `train-captioner`: its layers differ, which is all these tests
//! need); then the bad inputs.

mod common;

use brainrecon_formats::nifti_io::read_volume;
use brainrecon_formats::npy;
use common::{ok, p, simulated_subject, user_error};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A subject of 400 images with blip-vision-l0…l3 and blip-text-l0…l2 of one captioner, made
/// once for every test of this file (under Cargo's temporary directory for tests).
fn subject() -> &'static Path {
    static SUBJECT: OnceLock<PathBuf> = OnceLock::new();
    SUBJECT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("encode_layers_cli");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let subject = simulated_subject(&dir, 400, 3, 64);
        let model = dir.join("captioner");
        ok(&[
            "train-captioner",
            "--out",
            p(&model),
            "--steps",
            "4",
            "--decoder-steps",
            "0",
        ]);
        for kind in ["blip-vision", "blip-text"] {
            ok(&[
                "features",
                "--subject",
                p(&subject),
                "--kind",
                kind,
                "--layer",
                "all",
                "--model",
                p(&model),
            ]);
        }
        subject
    })
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&args)).expect("JSON on stdout")
}

fn read_f64(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let header = npy::parse_header(path, &bytes).unwrap();
    assert_eq!(header.descr, "<f8", "{}", path.display());
    bytes[header.data_offset..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn roi<'a>(rois: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    rois.as_array()
        .unwrap()
        .iter()
        .find(|row| row["roi"] == name)
        .unwrap_or_else(|| panic!("no {name} in {rois:#}"))
}

fn number(value: &serde_json::Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn layer_sweeps_have_one_entry_per_layer_and_match_single_fits() {
    let subject = subject();
    let out = subject.parent().unwrap().join("sweep-vision");
    let vision = json(&[
        "encode",
        "layers",
        "--subject",
        p(subject),
        "--kind",
        "blip-vision",
        "--layers",
        "all",
        "--permutations",
        "500",
        "--out",
        p(&out),
    ]);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("layers.json")).unwrap()).unwrap();
    assert_eq!(on_disk, vision, "printed JSON is layers.json");
    let layers = vision["layers"].as_array().unwrap();
    let numbers: Vec<u64> = layers
        .iter()
        .map(|l| l["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [0, 1, 2, 3],
        "embeddings and the three blocks of the image tower"
    );
    let n_voxels = number(&roi(&layers[0]["rois"], "nsdgeneral")["n_voxels"]) as usize;
    for layer in layers {
        assert_eq!(layer["n_features"], 65 * 64, "65 tokens × 64 wide");
        // Wider than the training images: reduced, losslessly, to their span.
        assert!(number(&layer["design_width"]) <= 360.0, "{layer}");
        assert_eq!(layer["reduction"]["lossless"], true);
        let rois = layer["rois"].as_array().unwrap();
        assert_eq!(rois[0]["roi"], "nsdgeneral");
        for row in rois {
            let name = row["roi"].as_str().unwrap();
            assert!(
                name == "nsdgeneral"
                    || name.starts_with("streams/")
                    || name.starts_with("prf-visualrois/"),
                "{name}"
            );
            assert!(number(&row["mean_r"]).is_finite() && number(&row["median_r"]).is_finite());
            assert!((0.0..=1.0).contains(&number(&row["fraction_significant"])));
        }
        let dir = out.join(format!("l{}", layer["layer"]));
        assert_eq!(read_f64(&dir.join("r.npy")).len(), n_voxels);
        assert!(dir.join("r.nii.gz").exists() && dir.join("summary.json").exists());
    }
    // The image tower's features encode early visual cortex best.
    let early = &roi(&layers[0]["rois"], "streams/early");
    assert!(number(&early["fraction_significant"]) > 0.3, "{early}");
    assert!(
        number(&early["mean_r"]) > number(&roi(&layers[0]["rois"], "streams/lateral")["mean_r"])
    );

    // The chart and its page name every ROI.
    let svg = std::fs::read_to_string(out.join("layers.svg")).unwrap();
    let html = std::fs::read_to_string(out.join("layers.html")).unwrap();
    assert!(svg.starts_with("<svg") && html.contains("<svg"));
    // Takagi & Nishimoto's best-layer map on the cortex, in the page.
    assert!(
        html.contains("cortex/best_layer_blip-vision_q_0_05.png"),
        "best-layer picture"
    );
    assert!(out
        .join("cortex/best_layer_blip-vision_q_0_05.png")
        .is_file());
    let (names, _, data) =
        brainrecon_formats::cifti::read_dense_scalars(&out.join("cortex/maps.dscalar.nii"))
            .unwrap();
    assert!(names[0].starts_with("best layer"), "{names:?}");
    let best: Vec<f32> = data[..20_484]
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    assert!(
        best.len() > 1_000,
        "vertices with a significant layer: {}",
        best.len()
    );
    assert!(best
        .iter()
        .all(|&l| (0.0..=3.0).contains(&l) && l.fract() == 0.0));
    for row in layers[0]["rois"].as_array().unwrap() {
        let name = row["roi"].as_str().unwrap();
        assert!(svg.contains(name) && html.contains(name), "{name}");
    }

    // A layer of the sweep is what `encode` fits on that layer's features, standardised.
    let single = subject.parent().unwrap().join("single-l2");
    ok(&[
        "encode",
        "--subject",
        p(subject),
        "--features",
        "blip-vision-l2",
        "--standardize",
        "--permutations",
        "500",
        "--out",
        p(&single),
    ]);
    for file in ["r.npy", "p.npy"] {
        assert_eq!(
            std::fs::read(single.join(file)).unwrap(),
            std::fs::read(out.join("l2").join(file)).unwrap(),
            "{file}"
        );
    }

    // The captions' features reach the lateral stream, which the image tokens barely do.
    let text_out = subject.parent().unwrap().join("sweep-text");
    let text = json(&[
        "encode",
        "layers",
        "--subject",
        p(subject),
        "--kind",
        "blip-text",
        "--permutations",
        "100",
        "--out",
        p(&text_out),
    ]);
    assert_eq!(text["layers"].as_array().unwrap().len(), 3);
    let lateral = |sweep: &serde_json::Value| {
        number(&roi(&sweep["layers"][1]["rois"], "streams/lateral")["mean_r"])
    };
    assert!(
        lateral(&text) > lateral(&vision) + 0.1,
        "{} vs {}",
        lateral(&text),
        lateral(&vision)
    );
}

#[test]
fn joint_models_report_unique_variance_that_adds_up() {
    let subject = subject();
    let out = subject.parent().unwrap().join("joint");
    let summary = json(&[
        "encode",
        "--subject",
        p(subject),
        "--features",
        "blip-vision-l1",
        "--features",
        "blip-text-l1",
        "--unique",
        "--permutations",
        "200",
        "--out",
        p(&out),
    ]);
    assert_eq!(summary["features"], "blip-vision-l1+blip-text-l1");
    assert_eq!(summary["n_features"], 65 * 64 + 64);
    assert_eq!(summary["design"]["standardized"], true);

    let load = |name: &str| read_f64(&out.join(format!("{name}.npy")));
    let (r, r2_joint, r2_a, r2_b) = (load("r"), load("r2_joint"), load("r2_a"), load("r2_b"));
    let (unique_a, unique_b) = (load("unique_a"), load("unique_b"));
    for v in 0..r.len() {
        assert!((r2_joint[v] - r[v] * r[v].abs()).abs() < 1e-12, "voxel {v}");
        assert!(
            (unique_a[v] + r2_b[v] - r2_joint[v]).abs() < 1e-12,
            "voxel {v}"
        );
        assert!(
            (unique_b[v] + r2_a[v] - r2_joint[v]).abs() < 1e-12,
            "voxel {v}"
        );
    }
    // The joint model does about as well as the better set alone, voxel by voxel.
    let signed_sqrt = |x: f64| x.signum() * x.abs().sqrt();
    let best: Vec<f64> = (0..r.len())
        .map(|v| signed_sqrt(r2_a[v]).max(signed_sqrt(r2_b[v])))
        .collect();
    let close = (0..r.len()).filter(|&v| r[v] >= best[v] - 0.1).count() as f64 / r.len() as f64;
    assert!(
        close > 0.9,
        "joint r within 0.1 of the better single r on {close} of the voxels"
    );
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let mean_r_a = mean(&r2_a.iter().map(|&x| signed_sqrt(x)).collect::<Vec<_>>());
    let mean_r_b = mean(&r2_b.iter().map(|&x| signed_sqrt(x)).collect::<Vec<_>>());
    assert!(
        mean(&r) > mean_r_a.max(mean_r_b) - 0.02,
        "{} vs {mean_r_a}, {mean_r_b}",
        mean(&r)
    );
    assert!(
        mean(&r) > mean_r_a + 0.1,
        "the captions add to the image tokens"
    );
    let whole = roi(&summary["unique"]["rois"], "nsdgeneral");
    assert!(number(&whole["unique_b"]) > 0.05, "{whole}");

    // The maps hold the arrays at the ROI's voxels.
    let coords = npy::read_i64(&subject.join("rois/nsdgeneral.npy")).unwrap();
    let volume = read_volume(&out.join("unique_b.nii.gz")).unwrap();
    for (v, xyz) in coords.data.chunks_exact(3).enumerate() {
        let got = volume.get(xyz[0] as usize, xyz[1] as usize, xyz[2] as usize);
        assert_eq!(got, unique_b[v] as f32 as f64, "voxel {v}");
    }

    // `A+B` is the same model as two --features.
    let plus = subject.parent().unwrap().join("joint-plus");
    ok(&[
        "encode",
        "--subject",
        p(subject),
        "--features",
        "blip-vision-l1+blip-text-l1",
        "--permutations",
        "200",
        "--out",
        p(&plus),
    ]);
    assert_eq!(
        std::fs::read(plus.join("r.npy")).unwrap(),
        std::fs::read(out.join("r.npy")).unwrap()
    );
}

#[test]
fn bad_encoding_input_exits_2_naming_the_file_and_writes_nothing() {
    let subject = subject();
    let dir = subject.parent().unwrap().join("bad");
    let features = subject.join("features");
    // Features of another subject, and features with a row missing.
    let (other, short, empty) = (dir.join("other"), dir.join("short"), dir.join("empty"));
    for d in [&other, &short, &empty] {
        std::fs::create_dir_all(d).unwrap();
    }
    let meta = std::fs::read_to_string(features.join("blip-text-l1.json")).unwrap();
    std::fs::write(
        other.join("blip-text-l1.json"),
        meta.replace("\"subj01\"", "\"subj02\""),
    )
    .unwrap();
    std::fs::copy(
        features.join("blip-text-l1.npy"),
        other.join("blip-text-l1.npy"),
    )
    .unwrap();
    std::fs::write(short.join("blip-text-l1.json"), &meta).unwrap();
    let text = npy::read_f32(&features.join("blip-text-l1.npy")).unwrap();
    let (rows, width) = (text.shape[0] - 1, text.shape[1]);
    npy::write(
        &short.join("blip-text-l1.npy"),
        &[rows, width],
        &text.data[..rows * width],
    )
    .unwrap();

    let out = dir.join("out");
    let s = p(subject);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![
                "layers",
                "--subject",
                s,
                "--kind",
                "blip-vision",
                "--layers",
                "9",
            ],
            vec!["blip-vision-l9.npy", "layers on disk: 0, 1, 2, 3"],
        ),
        (
            vec!["--subject", s, "--features", "blip-vision-l9"],
            vec!["blip-vision-l9.npy", "missing"],
        ),
        (
            vec![
                "layers",
                "--subject",
                s,
                "--kind",
                "blip-text",
                "--features-dir",
                p(&empty),
            ],
            vec!["blip-text-l0.npy", "brainrecon features"],
        ),
        (
            vec![
                "--subject",
                s,
                "--features",
                "blip-text-l1",
                "--features-dir",
                p(&other),
            ],
            vec!["blip-text-l1.json", "subject", "subj02"],
        ),
        (
            vec![
                "layers",
                "--subject",
                s,
                "--kind",
                "blip-text",
                "--layers",
                "1",
                "--features-dir",
                p(&short),
            ],
            vec!["blip-text-l1.npy", "rows"],
        ),
        (
            vec!["--subject", s, "--features", "blip-text-l1", "--unique"],
            vec!["--unique", "two"],
        ),
        (
            vec![
                "layers",
                "--subject",
                s,
                "--kind",
                "blip-vision",
                "--layers",
                "x",
            ],
            vec!["--layers", "'x'"],
        ),
        (
            vec!["layers", "--subject", s, "--kind", "vae"],
            vec!["--kind", "'vae'"],
        ),
        (
            vec![
                "layers",
                "--subject",
                s,
                "--kind",
                "blip-vision",
                "--pca",
                "0",
            ],
            vec!["--pca"],
        ),
        (
            vec![
                "layers",
                "--subject",
                s,
                "--kind",
                "blip-text",
                "--roi",
                "V9",
            ],
            vec!["subject.json", "'V9'"],
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["encode"];
        args.extend_from_slice(&extra);
        args.extend_from_slice(&["--out", p(&out)]);
        let stderr = user_error(&args);
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{extra:?}: '{needle}' not in {stderr}"
            );
        }
        assert!(!out.exists(), "{extra:?} left output behind");
    }
}
