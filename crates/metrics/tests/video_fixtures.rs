//! The video metrics against their references (fixtures from
//! `tools/fixtures/video_classifiers.py`): MinD-Video's own `n_way_top_k_acc` (read from its
//! eval_metrics.py at 5097206 and run unchanged on fixed logits) and scikit-image 0.26's
//! `structural_similarity(..., data_range=255, channel_axis=-1)` and
//! `peak_signal_noise_ratio(..., data_range=255)`.
//!
//! MinD-Video draws its trials from numpy's global generator, which the project does not use, so
//! the n-way rule is compared where the draws cannot matter — every class outside the top 3
//! drawn, or a reconstruction that always or never wins, tied scores included — exactly, per
//! sample; and with sampled
//! draws (20 000 trials on each side) against the exact expectation
//! [`n_way_top1_expected`], both within five binomial standard deviations.

mod common;

use brainrecon_metrics::video::{
    n_way_top1_expected, n_way_top_k, psnr_u8, ssim_u8, top_classes, NWayClassification,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct NWayCase {
    name: String,
    n_way: usize,
    trials: usize,
    truth_logits: Vec<f32>,
    pred_logits: Vec<f32>,
    gt_class_id: Vec<usize>,
    acc: f64,
}

#[derive(Deserialize)]
struct FrameCase {
    name: String,
    h: usize,
    w: usize,
    pred: Vec<u8>,
    truth: Vec<u8>,
    ssim: f64,
    psnr: serde_json::Value,
}

#[derive(Deserialize)]
struct Formula {
    shifts: Vec<i64>,
    ssim: f64,
    psnr: f64,
}

#[derive(Deserialize)]
struct Fixture {
    n_way: Vec<NWayCase>,
    frames: Vec<FrameCase>,
    formula_256: Formula,
}

fn settings(n_way: usize, trials: usize) -> NWayClassification {
    NWayClassification {
        trials,
        ..NWayClassification::mindvideo(n_way, 2023)
    }
}

#[test]
fn the_ground_truth_classes_are_mindvideos() {
    let f: Fixture = common::load("video_metrics.json");
    for case in &f.n_way {
        assert_eq!(
            top_classes(&case.truth_logits, 3),
            case.gt_class_id,
            "{}",
            case.name
        );
    }
}

#[test]
fn deterministic_trials_equal_mindvideos_n_way_top_k_acc_exactly() {
    let f: Fixture = common::load("video_metrics.json");
    let mut checked = (0, 0);
    for case in f.n_way.iter().filter(|c| {
        ["all_drawn", "truth_", "ties_"]
            .iter()
            .any(|p| c.name.starts_with(p))
    }) {
        let classes = case.truth_logits.len();
        let s = settings(case.n_way, case.trials);
        let got = n_way_top_k(&case.truth_logits, &case.pred_logits, 1, classes, &s).unwrap();
        assert_eq!(got.per_sample, vec![case.acc], "{}", case.name);
        let expected =
            n_way_top1_expected(&case.truth_logits, &case.pred_logits, 1, classes, &s).unwrap();
        assert_eq!(expected, vec![case.acc], "{}", case.name);
        if case.acc == 1.0 {
            checked.0 += 1;
        } else if case.acc == 0.0 {
            checked.1 += 1;
        }
    }
    // both outcomes occur, so the comparison can fail either way
    assert!(checked.0 >= 2 && checked.1 >= 2, "{checked:?}");
}

#[test]
fn sampled_trials_agree_with_mindvideo_through_the_exact_expectation() {
    let f: Fixture = common::load("video_metrics.json");
    let mut intermediate = 0;
    for case in f.n_way.iter().filter(|c| c.name.starts_with("sampled")) {
        let classes = case.truth_logits.len();
        let s = settings(case.n_way, case.trials);
        let p =
            n_way_top1_expected(&case.truth_logits, &case.pred_logits, 1, classes, &s).unwrap()[0];
        let sd = (p * (1.0 - p) / case.trials as f64).sqrt();
        assert!(
            (case.acc - p).abs() <= 5.0 * sd + 1e-12,
            "{}: MinD-Video {} vs expectation {p}",
            case.name,
            case.acc
        );
        let ours = n_way_top_k(&case.truth_logits, &case.pred_logits, 1, classes, &s).unwrap();
        assert!(
            (ours.mean - p).abs() <= 5.0 * sd + 1e-12,
            "{}: ours {} vs expectation {p}",
            case.name,
            ours.mean
        );
        if p > 0.05 && p < 0.95 {
            intermediate += 1;
        }
    }
    assert!(intermediate >= 4, "only {intermediate} informative cases");
}

#[test]
fn ssim_and_psnr_equal_scikit_image() {
    let f: Fixture = common::load("video_metrics.json");
    for case in &f.frames {
        let ssim = ssim_u8(&case.pred, &case.truth, case.h, case.w).unwrap();
        common::assert_close(&case.name, ssim, case.ssim, 1e-10);
        let psnr = psnr_u8(&case.truth, &case.pred).unwrap();
        match &case.psnr {
            serde_json::Value::String(s) if s == "inf" => assert_eq!(psnr, f64::INFINITY),
            v => common::assert_close(&case.name, psnr, v.as_f64().unwrap(), 1e-10),
        }
    }
}

/// The fixture script's `formula_frame`: 256² integer patterns, computed on both sides.
fn formula_frame(h: usize, w: usize, shift: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(h * w * 3);
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            for c in 0..3i64 {
                let inside = (h as i64 / 3..h as i64 / 2).contains(&y)
                    && (w as i64 / 3..w as i64 / 2).contains(&x);
                let v = if inside {
                    200
                } else {
                    (x * 3 + y * 5 + c * 40 + (x * y) / 7 + shift).rem_euclid(256)
                };
                out.push(v as u8);
            }
        }
    }
    out
}

#[test]
fn ssim_and_psnr_at_256_equal_scikit_image() {
    let f: Fixture = common::load("video_metrics.json");
    let a = formula_frame(256, 256, f.formula_256.shifts[0]);
    let b = formula_frame(256, 256, f.formula_256.shifts[1]);
    common::assert_close(
        "ssim 256",
        ssim_u8(&b, &a, 256, 256).unwrap(),
        f.formula_256.ssim,
        1e-10,
    );
    common::assert_close(
        "psnr 256",
        psnr_u8(&a, &b).unwrap(),
        f.formula_256.psnr,
        1e-10,
    );
}
