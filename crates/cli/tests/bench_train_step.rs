//! `bench train-step` at a tiny batch: each model trains, the JSON line names the workload and
//! holds finite timings; a batch the contrastive loss cannot use is bad input.

mod common;

use common::{ok, user_error};

fn pipeline() -> String {
    format!("{}/../../models/shapes-ldm", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_model_prints_one_json_line() {
    let pipeline = pipeline();
    // NICE's encoder counts its batch norms' running statistics (4 × 40) with its parameters.
    let models = [
        ("unet", 1_001_828),
        ("window-encoder", 210_128),
        ("eeg-encoder", 1_802_657),
    ];
    for (model, parameters) in models {
        let out = ok(&[
            "bench",
            "train-step",
            "--model",
            model,
            "--steps",
            "2",
            "--warmup",
            "1",
            "--batch",
            "2",
            "--pipeline",
            &pipeline,
            "--json",
        ]);
        assert_eq!(out.lines().count(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["side"], "brainrecon");
        assert_eq!(v["workload"], model);
        assert_eq!(v["batch"], 2);
        assert_eq!(v["parameters"], parameters);
        assert_eq!(v["seconds"].as_array().unwrap().len(), 2);
        for key in ["seconds_min", "seconds_median", "loss_first", "loss_last"] {
            let x = v[key].as_f64().unwrap();
            assert!(x.is_finite() && x >= 0.0, "{key}: {x}");
        }
        assert!(v["seconds_min"].as_f64() <= v["seconds_median"].as_f64());
    }
}

#[test]
fn contrastive_batch_of_one_is_refused() {
    let err = user_error(&[
        "bench",
        "train-step",
        "--model",
        "window-encoder",
        "--batch",
        "1",
        "--pipeline",
        &pipeline(),
    ]);
    assert!(err.contains("--batch"), "{err}");
}
