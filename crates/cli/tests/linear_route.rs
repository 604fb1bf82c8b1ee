//! The linear route's commands refusing bad input on the binary: exit 2, the file and flag
//! named. The route itself (features → fit → reconstruct → eval on a tiny model, resuming, the
//! ablations) is checked through the library in crates/routes/tests/linear.rs; the subject here
//! is only as big as the refusals need.

mod common;

use brainrecon_testkit::copy_dir;
use common::{ok, p, simulated_subject, user_error};
use std::path::{Path, PathBuf};

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/tiny-sd")
}

#[test]
fn bad_input_and_other_settings_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let subject = simulated_subject(dir.path(), 60, 3, 32);
    let model = tiny_model();
    let decoders = dir.path().join("decoders");

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

    // A run is never resumed on other model files under the same name (a model folder trained
    // again, an updated built-in model).
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
            "1",
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
    // Resuming into the same directory with other settings would mix them: refused.
    let z_only = dir.path().join("z-only");
    ok(&args(&common(&z_only, "z-only")));
    let mut other = common(&z_only, "z-only");
    other[14] = "5".to_string();
    assert_eq!(other[13], "--steps");
    let err = user_error(&args(&other));
    assert!(
        err.contains("manifest.json") && err.contains("options"),
        "{err}"
    );

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
