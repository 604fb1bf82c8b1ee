//! The linear route end to end on a tiny model, as a user runs it:
//! simulate → nsd prepare → features → fit → reconstruct → eval (metrics, JSON, HTML report).

#[path = "../../routes/tests/browser/mod.rs"]
mod browser;
mod common;

use brainrecon_testkit::copy_dir;
use common::{ok, p, simulated_subject, user_error};
use std::path::{Path, PathBuf};

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/tiny-sd")
}

fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/clip_vision/model")
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn prepared_subject(dir: &Path) -> PathBuf {
    simulated_subject(dir, 150, 3, 32)
}

/// A folder of stand-in metric-network weights (the deterministic values of the golden tests,
/// written as safetensors with torchvision's names): the loading path end to end.
fn metric_weights(dir: &Path) -> PathBuf {
    use brainrecon_vision::deterministic::write_deterministic_weights as write;
    use brainrecon_vision::{AlexNet, EfficientNetB1, InceptionV3, ResNet50};
    let out = dir.join("metric-weights");
    std::fs::create_dir_all(&out).unwrap();
    write(&out.join("alexnet.safetensors"), AlexNet::new).unwrap();
    write(&out.join("inception_v3.safetensors"), InceptionV3::new).unwrap();
    write(
        &out.join("efficientnet_b1.safetensors"),
        EfficientNetB1::new,
    )
    .unwrap();
    write(&out.join("swav_resnet50.safetensors"), ResNet50::new).unwrap();
    out
}

/// The eight columns are there for every image set, in range, with per-image files and the
/// published rows in the report.
fn check_suite(eval: &serde_json::Value, n_test: usize, recons: &Path) {
    let suite = &eval["suite"];
    assert_eq!(suite["protocol"], "mindeye", "{suite}");
    assert!(suite["absent"].as_array().unwrap().is_empty(), "{suite}");
    let rows = suite["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "decoded z",
            "sample 1",
            "sample 2",
            "reconstruction (mean of 2 samples)"
        ],
        "{suite}"
    );
    for row in rows {
        let v: Vec<f64> = row["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(v.len(), 8, "{row}");
        assert!(
            (-1.0..=1.0).contains(&v[0]) && (-1.0..=1.0).contains(&v[1]),
            "{row}"
        );
        assert!(
            v[2..6].iter().all(|x| (0.0..=1.0).contains(x)),
            "two-way in [0, 1]: {row}"
        );
        assert!(
            v[6..].iter().all(|x| (0.0..=2.0).contains(x)),
            "distances in [0, 2]: {row}"
        );
    }
    for file in suite["per_image"].as_array().unwrap() {
        let array = brainrecon_formats::npy::read_f32(Path::new(file.as_str().unwrap())).unwrap();
        assert_eq!(array.shape, vec![n_test, 8], "{file}");
        assert!(array.data.iter().all(|v| v.is_finite()), "{file}");
    }
    let html = std::fs::read_to_string(recons.join("eval/report.html")).unwrap();
    assert!(
        html.contains("MindEye2&#39;s Table 1"),
        "suite table missing"
    );
    assert!(
        html.contains("Takagi &amp; Nishimoto 2023"),
        "published rows missing"
    );
}

fn hashes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            (
                f.file_name().unwrap().to_string_lossy().into(),
                std::fs::read(f).unwrap(),
            )
        })
        .collect()
}

#[test]
fn linear_route_from_simulated_subject_to_report() {
    let dir = tempfile::tempdir().unwrap();
    let subject = prepared_subject(dir.path());
    let model = tiny_model();
    let (decoders, recons) = (dir.path().join("decoders"), dir.path().join("recons"));

    // Fitting before the features exist tells the user what to run.
    let err = user_error(&[
        "fit",
        "--subject",
        p(&subject),
        "--target",
        "z",
        "--out",
        p(&decoders.join("z")),
    ]);
    assert!(
        err.contains("vae.npy") && err.contains("brainrecon features"),
        "{err}"
    );

    let vae = json(&[
        "features",
        "--subject",
        p(&subject),
        "--model",
        p(&model),
        "--kind",
        "vae",
        "--json",
    ]);
    // tiny-sd: 32 px native, VAE factor 2 → 20 px images (5/8) → 4×10×10 latents.
    assert_eq!(vae["shape"], serde_json::json!([4, 10, 10]));
    let n_images = vae["n_images"].as_u64().unwrap();
    assert_eq!(vae["computed"].as_u64().unwrap(), n_images);
    let text = json(&[
        "features",
        "--subject",
        p(&subject),
        "--model",
        p(&model),
        "--kind",
        "clip-text",
        "--json",
    ]);
    assert_eq!(text["shape"], serde_json::json!([77, 32]));
    let clip = tiny_clip();
    let image = json(&[
        "features",
        "--subject",
        p(&subject),
        "--model",
        p(&clip),
        "--kind",
        "clip-image",
        "--json",
    ]);
    assert_eq!(image["shape"], serde_json::json!([16]));
    // A rerun finds every stimulus cached.
    let again = json(&[
        "features",
        "--subject",
        p(&subject),
        "--model",
        p(&model),
        "--kind",
        "vae",
        "--json",
    ]);
    assert_eq!(again["computed"], 0);
    assert_eq!(again["cached"].as_u64().unwrap(), n_images);

    let z = json(&[
        "fit",
        "--subject",
        p(&subject),
        "--target",
        "z",
        "--out",
        p(&decoders.join("z")),
        "--json",
    ]);
    assert_eq!(z["roi"], "streams/early");
    assert_eq!(z["n_targets"], 400);
    let c = json(&[
        "fit",
        "--subject",
        p(&subject),
        "--target",
        "c",
        "--out",
        p(&decoders.join("c")),
        "--json",
    ]);
    assert_eq!(c["roi"], "streams/ventral");
    assert_eq!(c["target_shape"], serde_json::json!([77, 32]));

    let run = json(&[
        "reconstruct",
        "--method",
        "linear",
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--model",
        p(&model),
        "--out",
        p(&recons),
        "--samples",
        "2",
        "--steps",
        "10",
        "--json",
    ]);
    let n_test = run["n_images"].as_u64().unwrap() as usize;
    assert!(n_test >= 10, "{run}");
    assert_eq!(run["written"].as_u64().unwrap() as usize, 3 * n_test);
    let sample_dir = recons.join("sample-1");
    let first = hashes(&sample_dir);
    assert_eq!(first.len(), n_test);

    // Resuming: a finished run writes nothing; a lost image is made again, bit for bit (alone,
    // where the first run denoised both samples of an image in one batch).
    let run = json(&[
        "reconstruct",
        "--method",
        "linear",
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--model",
        p(&model),
        "--out",
        p(&recons),
        "--samples",
        "2",
        "--steps",
        "10",
        "--json",
    ]);
    assert_eq!(run["written"], 0);
    std::fs::remove_file(sample_dir.join(&first[0].0)).unwrap();
    std::fs::remove_file(recons.join("decoded-z").join(&first[1].0)).unwrap();
    ok(&[
        "reconstruct",
        "--method",
        "linear",
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--model",
        p(&model),
        "--out",
        p(&recons),
        "--samples",
        "2",
        "--steps",
        "10",
    ]);
    assert_eq!(hashes(&sample_dir), first);
    let err = user_error(&[
        "reconstruct",
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--model",
        p(&model),
        "--out",
        p(&dir.path().join("batch-0")),
        "--batch",
        "0",
    ]);
    assert!(err.contains("--batch"), "{err}");

    // Decoders record which model files made their targets; a run is never resumed on other
    // files under the same name (a model folder trained again, an updated built-in model).
    let fit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(decoders.join("z/model.json")).unwrap()).unwrap();
    let fit_on = fit["metadata"]["target_model_fingerprint"]
        .as_str()
        .unwrap();
    assert_eq!(fit_on.len(), 16, "{fit}");
    let copy = dir.path().join("model-copy");
    for component in ["", "scheduler", "text_encoder", "tokenizer", "unet", "vae"] {
        copy_dir(&model.join(component), &copy.join(component));
    }
    let small_run = |out: &Path| -> Vec<String> {
        [
            "reconstruct",
            "--method",
            "linear",
            "--subject",
            p(&subject),
            "--decoders",
            p(&decoders),
            "--model",
            p(&copy),
            "--out",
            p(out),
            "--samples",
            "1",
            "--steps",
            "2",
            "--limit",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let other = dir.path().join("recons-copy");
    ok(&args(&small_run(&other)));
    edit_json(&copy.join("scheduler/scheduler_config.json"), |v| {
        v["beta_end"] = serde_json::json!(0.0125)
    });
    let err = user_error(&args(&small_run(&other)));
    assert!(
        err.contains("manifest.json") && err.contains("another --out"),
        "{err}"
    );

    let weights = metric_weights(dir.path());
    let eval = json(&[
        "eval",
        "--stimuli",
        p(&subject),
        "--recons",
        p(&recons),
        "--rows-per-page",
        "8",
        "--clip",
        p(&clip),
        "--metric-weights",
        p(&weights),
        "--json",
    ]);
    assert_eq!(eval["clip_model"], p(&clip));
    let rows = eval["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no row {name} in {eval}"))
    };
    // The brain encodes the images: decoded latents identify their own stimulus far above
    // chance (0.5), in latent space.
    let latent = row("decoded z (features)")["two_way_latent"]
        .as_f64()
        .unwrap();
    eprintln!("two-way identification of decoded z in latent space: {latent:.3}");
    assert!(latent > 0.8, "{eval}");
    for name in ["decoded z", "reconstruction (mean of 2 samples)"] {
        let r = row(name);
        assert!(r["pixcorr"].as_f64().unwrap().is_finite(), "{r}");
        assert!(r["ssim"].as_f64().unwrap().is_finite(), "{r}");
    }
    check_suite(&eval, n_test, &recons);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(recons.join("eval/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["rows"], eval["rows"]);

    // The report: every page opens in Chromium and all grid images load.
    let pages: Vec<PathBuf> = eval["report"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| PathBuf::from(v.as_str().unwrap()))
        .collect();
    assert_eq!(pages.len(), n_test.div_ceil(8));
    let html = std::fs::read_to_string(&pages[0]).unwrap();
    assert!(
        html.contains("reconstruct --method linear"),
        "command missing"
    );
    for page in &pages {
        let check = browser::check_images_load(page).unwrap();
        assert!(check.images > 0, "{page:?}");
        assert_eq!(
            check.loaded, check.images,
            "{page:?}: broken {:?}",
            check.broken
        );
    }
}

#[test]
fn ablations_and_bad_decoders_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let subject = prepared_subject(dir.path());
    let model = tiny_model();
    let decoders = dir.path().join("decoders");
    for kind in ["vae", "clip-text"] {
        ok(&[
            "features",
            "--subject",
            p(&subject),
            "--model",
            p(&model),
            "--kind",
            kind,
        ]);
    }
    for target in ["z", "c"] {
        ok(&[
            "fit",
            "--subject",
            p(&subject),
            "--target",
            target,
            "--out",
            p(&decoders.join(target)),
            "--cv",
            "3",
        ]);
    }
    let common = |out: &Path, method: &str| -> Vec<String> {
        [
            "reconstruct",
            "--method",
            method,
            "--subject",
            p(&subject),
            "--decoders",
            p(&decoders),
            "--model",
            p(&model),
            "--out",
            p(out),
            "--samples",
            "1",
            "--steps",
            "4",
            "--limit",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // z-only writes the decoded-z images; c-only writes samples at the model's size.
    let z_only = dir.path().join("z-only");
    ok(&args(&common(&z_only, "z-only")));
    assert_eq!(
        std::fs::read_dir(z_only.join("decoded-z")).unwrap().count(),
        3
    );
    assert!(!z_only.join("sample-1").exists());
    // Resuming into the same directory with other settings would mix them: refused.
    let mut other = common(&z_only, "z-only");
    other[14] = "5".to_string();
    assert_eq!(other[13], "--steps");
    let err = user_error(&args(&other));
    assert!(
        err.contains("manifest.json") && err.contains("options"),
        "{err}"
    );
    let c_only = dir.path().join("c-only");
    ok(&args(&common(&c_only, "c-only")));
    let png = std::fs::read_dir(c_only.join("sample-1"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let image = brainrecon_datasets_png_size(&png.path());
    assert_eq!(image, (32, 32));

    // A decoder for another target in the z slot.
    let swapped = dir.path().join("swapped");
    std::fs::create_dir_all(&swapped).unwrap();
    copy_dir(&decoders.join("c"), &swapped.join("z"));
    copy_dir(&decoders.join("c"), &swapped.join("c"));
    let mut a = common(&dir.path().join("bad1"), "linear");
    a[6] = p(&swapped).to_string();
    let err = user_error(&args(&a));
    assert!(
        err.contains("model.json") && err.contains("z decoder"),
        "{err}"
    );

    // A decoder fit on another ROI of the subject: its voxel count does not match.
    let other_roi = dir.path().join("other-roi");
    copy_dir(&decoders.join("c"), &other_roi.join("c"));
    ok(&[
        "fit",
        "--subject",
        p(&subject),
        "--target",
        "z",
        "--roi",
        "streams/ventral",
        "--out",
        p(&other_roi.join("z")),
        "--cv",
        "gcv",
    ]);
    edit_json(&other_roi.join("z/model.json"), |m| {
        m["metadata"]["roi"] = "streams/early".into();
    });
    let mut a = common(&dir.path().join("bad2"), "linear");
    a[6] = p(&other_roi).to_string();
    let err = user_error(&args(&a));
    assert!(
        err.contains("voxels") && err.contains("streams/early"),
        "{err}"
    );

    // A decoder whose latent shape is not the model's (8 channels, the model has 4).
    let other_shape = dir.path().join("other-shape");
    copy_dir(&decoders.join("c"), &other_shape.join("c"));
    copy_dir(&decoders.join("z"), &other_shape.join("z"));
    edit_json(&other_shape.join("z/model.json"), |m| {
        m["metadata"]["target_shape"] = serde_json::json!([16, 5, 5]);
    });
    let mut a = common(&dir.path().join("bad3"), "linear");
    a[6] = p(&other_shape).to_string();
    let err = user_error(&args(&a));
    assert!(
        err.contains("target_shape") && err.contains("[16, 5, 5]"),
        "{err}"
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// (height, width) from a PNG's IHDR chunk.
fn brainrecon_datasets_png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (h, w)
}

/// The same route on CompVis/stable-diffusion-v1-4 from the Hugging Face cache (or the
/// diffusers folder in BRAINRECON_SD14). Real weights cannot ship with the project, so this
/// runs on request: `cargo test -p brainrecon-cli --test linear_route -- --ignored`.
#[test]
#[ignore = "needs CompVis/stable-diffusion-v1-4 weights; run with --ignored"]
fn linear_route_on_stable_diffusion_v1_4() {
    let model = std::env::var("BRAINRECON_SD14")
        .unwrap_or_else(|_| "CompVis/stable-diffusion-v1-4".to_string());
    let dir = tempfile::tempdir().unwrap();
    let subject = prepared_subject(dir.path());
    let (decoders, recons) = (dir.path().join("decoders"), dir.path().join("recons"));
    let vae = json(&[
        "features",
        "--subject",
        p(&subject),
        "--model",
        &model,
        "--kind",
        "vae",
        "--json",
    ]);
    // SD1: 512 px native → 320 px → 4×40×40, as in the paper.
    assert_eq!(vae["shape"], serde_json::json!([4, 40, 40]));
    let text = json(&[
        "features",
        "--subject",
        p(&subject),
        "--model",
        &model,
        "--kind",
        "clip-text",
        "--json",
    ]);
    assert_eq!(text["shape"], serde_json::json!([77, 768]));
    for target in ["z", "c"] {
        ok(&[
            "fit",
            "--subject",
            p(&subject),
            "--target",
            target,
            "--out",
            p(&decoders.join(target)),
        ]);
    }
    ok(&[
        "reconstruct",
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--model",
        &model,
        "--out",
        p(&recons),
        "--samples",
        "1",
        "--steps",
        "5",
        "--limit",
        "2",
    ]);
    let png = recons.join("sample-1");
    let first = std::fs::read_dir(&png)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(brainrecon_datasets_png_size(&first), (512, 512));
}
