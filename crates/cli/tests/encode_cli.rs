//! `brainrecon encode` end to end on a simulated subject: the maps read back in the subject's
//! volume space, early visual voxels are significant for image features, and row-shuffled
//! features give (almost) nothing.

use brainrecon_formats::nifti_io::read_volume;
use brainrecon_formats::npy;
use std::path::{Path, PathBuf};
mod common;

use common::{brainrecon, ok, p};

fn simulate(dir: &Path, images: usize, seed: u64) -> PathBuf {
    let subject = dir.join("subj01");
    let (images, seed) = (images.to_string(), seed.to_string());
    ok(&[
        "simulate",
        "--layout",
        "prepared",
        "--images",
        &images,
        "--seed",
        &seed,
        "--image-size",
        "32",
        "--out",
        p(&subject),
    ]);
    subject
}

/// Per-image features (n_images, 8·8·3): the stimuli averaged over 4×4 pixel blocks, rows
/// following stimuli/ids.npy. Written as-is and with its rows shuffled.
fn write_features(subject: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let images = npy::read_u8(&subject.join("stimuli/images.npy")).unwrap();
    let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2]);
    assert_eq!((h, w, images.shape[3]), (32, 32, 3));
    let mut features = vec![0f32; n * 8 * 8 * 3];
    for (i, image) in images.data.chunks_exact(h * w * 3).enumerate() {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let f = i * 192 + ((y / 4) * 8 + x / 4) * 3 + c;
                    features[f] += image[(y * w + x) * 3 + c] as f32 / (16.0 * 255.0);
                }
            }
        }
    }
    // A fixed derangement-like shuffle: row i takes row (i·7 + 3) mod n (n is not a multiple of 7).
    assert_ne!(n % 7, 0);
    let shuffled: Vec<f32> = (0..n)
        .flat_map(|i| features[((i * 7 + 3) % n) * 192..][..192].to_vec())
        .collect();
    let (path, shuffled_path) = (dir.join("features.npy"), dir.join("shuffled.npy"));
    npy::write(&path, &[n, 192], &features).unwrap();
    npy::write(&shuffled_path, &[n, 192], &shuffled).unwrap();
    (path, shuffled_path)
}

fn encode(subject: &Path, features: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "encode",
        "--subject",
        p(subject),
        "--features",
        p(features),
        "--out",
        p(out),
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).expect("JSON on stdout")
}

fn roi_row<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["rois"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["roi"] == name)
        .unwrap_or_else(|| panic!("no {name} in {summary:#}"))
}

fn fraction(summary: &serde_json::Value, name: &str) -> f64 {
    roi_row(summary, name)["fraction_significant"]
        .as_f64()
        .unwrap()
}

fn read_f64(path: &Path) -> Vec<f64> {
    // read_f32 widens nothing; read the float64 bytes directly.
    let bytes = std::fs::read(path).unwrap();
    let header = npy::parse_header(path, &bytes).unwrap();
    assert_eq!(header.descr, "<f8", "{}", path.display());
    bytes[header.data_offset..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn encode_finds_early_visual_voxels_and_not_shuffled_features() {
    let dir = tempfile::tempdir().unwrap();
    let subject = simulate(dir.path(), 400, 3);
    let (features, shuffled) = write_features(&subject, dir.path());
    let out = dir.path().join("encoding");
    let summary = encode(&subject, &features, &out, &["--permutations", "1000"]);

    // summary.json on disk is what was printed (less the timings and out).
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(on_disk["rois"], summary["rois"]);
    assert_eq!(summary["roi"], "nsdgeneral");
    assert_eq!(summary["n_features"], 192);

    // A simulation's maps on fsaverage5 (--cortex auto), NSD's streams outlined.
    assert_eq!(on_disk["cortex"]["cortex"], "fsaverage5", "{on_disk}");
    let cortex: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cortex/cortex.json")).unwrap()).unwrap();
    assert_eq!(cortex["labels"], "streams");
    let pictures: Vec<&str> = cortex["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["picture"].as_str().unwrap())
        .collect();
    assert_eq!(pictures.len(), 2, "{cortex}");
    for file in pictures
        .iter()
        .copied()
        .chain(["viewer.html", "maps.dscalar.nii"])
    {
        assert!(out.join("cortex").join(file).is_file(), "{file}");
    }

    // Per-voxel arrays, in the ROI's column order.
    let coords = npy::read_i64(&subject.join("rois/nsdgeneral.npy")).unwrap();
    let n_voxels = coords.shape[0];
    let (r, pv, q) = (
        read_f64(&out.join("r.npy")),
        read_f64(&out.join("p.npy")),
        read_f64(&out.join("q.npy")),
    );
    assert_eq!((r.len(), pv.len(), q.len()), (n_voxels, n_voxels, n_voxels));
    for i in 0..n_voxels {
        // p = (1 + count) / 1001: never 0, on the grid, and BH never lowers it.
        let count = pv[i] * 1001.0 - 1.0;
        assert!((count - count.round()).abs() < 1e-6 && (0.0..=1000.5).contains(&count));
        assert!(
            q[i] >= pv[i] - 1e-15 && q[i] <= 1.0,
            "voxel {i}: p {} q {}",
            pv[i],
            q[i]
        );
        assert!((-1.0..=1.0).contains(&r[i]));
    }

    // Maps in the subject's volume space, values at the ROI coordinates, 0 elsewhere.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(subject.join("subject.json")).unwrap()).unwrap();
    let shape: Vec<usize> = meta["volume_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let significant_count = roi_row(&summary, "nsdgeneral")["n_significant"]
        .as_u64()
        .unwrap() as usize;
    for name in ["r.nii.gz", "neglog10p.nii.gz", "significant.nii.gz"] {
        let volume = read_volume(&out.join(name)).unwrap();
        assert_eq!(volume.shape.to_vec(), shape, "{name}");
        for (row, want) in volume.affine.iter().zip(meta["affine"].as_array().unwrap()) {
            for (got, want) in row.iter().zip(want.as_array().unwrap()) {
                assert!((got - want.as_f64().unwrap()).abs() < 1e-4, "{name} affine");
            }
        }
        let mut inside = vec![false; volume.values.len()];
        for (v, xyz) in coords.data.chunks_exact(3).enumerate() {
            let (x, y, z) = (xyz[0] as usize, xyz[1] as usize, xyz[2] as usize);
            inside[volume.index(x, y, z)] = true;
            let got = volume.get(x, y, z);
            let want = match name {
                "r.nii.gz" => r[v] as f32 as f64,
                "neglog10p.nii.gz" => -(pv[v].log10()) as f32 as f64,
                _ => f64::from(u8::from(q[v] <= 0.05)),
            };
            assert_eq!(got, want, "{name} at ({x}, {y}, {z})");
        }
        assert!(volume
            .values
            .iter()
            .zip(&inside)
            .all(|(&v, &roi)| roi || v == 0.0));
        if name == "significant.nii.gz" {
            assert_eq!(
                volume.values.iter().sum::<f64>() as usize,
                significant_count
            );
        }
    }

    // Early visual cortex encodes the image; the overlapping labels are summarised.
    let early = fraction(&summary, "streams/early");
    assert!(early > 0.3, "streams/early significant fraction {early}");
    assert!(
        roi_row(&summary, "prf-visualrois/V1v")["n_voxels"]
            .as_u64()
            .unwrap()
            > 0
    );
    let early_r = roi_row(&summary, "streams/early")["mean_r"]
        .as_f64()
        .unwrap();
    assert!(
        early_r
            > roi_row(&summary, "streams/lateral")["mean_r"]
                .as_f64()
                .unwrap()
    );

    // Features of the wrong images: close to nothing survives FDR.
    let null_out = dir.path().join("shuffled");
    let null_summary = encode(&subject, &shuffled, &null_out, &[]);
    for name in ["nsdgeneral", "streams/early"] {
        let f = fraction(&null_summary, name);
        assert!(
            f < 0.1,
            "{name} with shuffled features: fraction significant {f}"
        );
    }

    // Seeded: the same seed gives the same p-values; block permutations run.
    let again = dir.path().join("shuffled-again");
    encode(&subject, &shuffled, &again, &[]);
    assert_eq!(
        std::fs::read(null_out.join("p.npy")).unwrap(),
        std::fs::read(again.join("p.npy")).unwrap()
    );
    let blocks = dir.path().join("blocks");
    let block_summary = encode(
        &subject,
        &features,
        &blocks,
        &["--block-size", "4", "--permutations", "200", "--seed", "9"],
    );
    assert_eq!(block_summary["block_size"], 4);
    let block_p = read_f64(&blocks.join("p.npy"));
    assert!(block_p.iter().all(|&v| v >= 1.0 / 201.0 - 1e-12));
}

#[test]
fn encode_accepts_pixels_and_label_rois() {
    let dir = tempfile::tempdir().unwrap();
    let subject = simulate(dir.path(), 120, 1);
    let out = dir.path().join("early");
    let text = ok(&[
        "encode",
        "--subject",
        p(&subject),
        "--features",
        "pixels:8",
        "--roi",
        "streams/early",
        "--permutations",
        "100",
        "--out",
        p(&out),
    ]);
    assert!(text.contains("streams/early"), "{text}");
    assert!(text.contains("prf-visualrois/V1v"), "{text}");
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["info", p(&subject), "--json"])).unwrap();
    let n = info["rois"]["streams/early"].as_u64().unwrap() as usize;
    assert_eq!(read_f64(&out.join("r.npy")).len(), n);
}

#[test]
fn encode_rejects_bad_input_with_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let subject = simulate(dir.path(), 120, 2);
    let n_images = npy::read_i64(&subject.join("stimuli/ids.npy"))
        .unwrap()
        .data
        .len();
    let short = dir.path().join("short.npy");
    npy::write(
        &short,
        &[n_images - 1, 4],
        &vec![0.5f32; (n_images - 1) * 4],
    )
    .unwrap();
    let with_nan = dir.path().join("nan.npy");
    let mut values = vec![0.25f32; n_images * 4];
    values[4 * 7 + 2] = f32::NAN;
    npy::write(&with_nan, &[n_images, 4], &values).unwrap();
    let good = dir.path().join("good.npy");
    npy::write(&good, &[n_images, 4], &vec![0.25f32; n_images * 4]).unwrap();

    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--features", p(&short)],
            vec!["short.npy", "rows", "stimuli/ids.npy"],
        ),
        (
            vec!["--features", p(&with_nan)],
            vec!["nan.npy", "finite", "row 7"],
        ),
        (
            vec!["--features", p(&good), "--roi", "V9"],
            vec!["subject.json", "'V9'"],
        ),
        (
            vec!["--features", p(&good), "--permutations", "0"],
            vec!["--permutations"],
        ),
        (
            vec!["--features", p(&good), "--block-size", "100"],
            vec!["--block-size"],
        ),
        (vec!["--features", "pixels:x"], vec!["--features"]),
    ];
    for (extra, expected) in cases {
        let out = dir.path().join("out");
        let mut args = vec!["encode", "--subject", p(&subject), "--out", p(&out)];
        args.extend_from_slice(&extra);
        let result = brainrecon(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{extra:?}: {stderr}");
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{extra:?}: '{needle}' not in {stderr}"
            );
        }
        assert!(!out.exists(), "{extra:?} left output behind");
    }
}
