//! The library calls behind the commands a user runs on the synthetic subject (`simulate`,
//! `nsd prepare`, `features`, `fit`, `reconstruct`, `eval`), with the commands' defaults,
//! shared by the route tests. Each test file uses a part of them.
#![allow(dead_code)]

use brainrecon_core::Device;
use brainrecon_diffusion::pipeline::DType;
use brainrecon_routes::decode::decoders::{fit_request, FitRequest};
use brainrecon_routes::decode::features::{features_request, FeaturesRequest};
use brainrecon_routes::linear::ReconstructOptions;
use brainrecon_routes::reconstruct::ReconstructRequest;
use brainrecon_routes::score::folder_eval::{eval, EvalRequest};
use brainrecon_routes::RouteError;
use brainrecon_simulate::request;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `value` as the JSON `--json` prints.
pub fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap()
}

/// `simulate --out DIR/nsd --images N --seed S --image-size PX`, then `nsd prepare` of subj01
/// into DIR/subj01, which it returns.
pub fn simulated_subject(dir: &Path, images: usize, seed: u64, image_size: usize) -> PathBuf {
    let (root, subject) = (dir.join("nsd"), dir.join("subj01"));
    request::run(&request::Request {
        images: Some(images),
        seed,
        image_size,
        ..request::Request::new(root.clone(), request::Kind::Image)
    })
    .unwrap();
    brainrecon_datasets::nsd::prepare::prepare(
        &brainrecon_datasets::nsd::prepare::PrepareOptions::defaults(&root, 1, &subject),
    )
    .unwrap();
    subject
}

/// `features --subject SUBJECT --model MODEL --kind KIND` on the CPU: the summary of the one
/// array written, as `--json` prints it.
pub fn features(subject: &Path, model: &str, kind: &str) -> Value {
    let request = FeaturesRequest {
        subject: subject.to_path_buf(),
        kind: kind.into(),
        model: Some(model.into()),
        layer: "last".into(),
        normalize: false,
        out: None,
        size: None,
        sample: false,
        seed: 0,
        batch: 8,
        device: Device::Cpu,
        dtype: DType::F32,
        progress: false,
    };
    let mut written = Vec::new();
    features_request(&request, |summary, _| {
        written.push(to_json(summary));
        Ok::<(), RouteError>(())
    })
    .unwrap();
    assert_eq!(written.len(), 1, "{kind}: {written:?}");
    written.pop().unwrap()
}

/// `nsd prepare --nsd-root ROOT --subject subjNN [--sessions ..] --out OUT`, then `features
/// --kind z` and `--kind c` with `--model shapes-ldm` on the CPU.
pub fn prepared_with_features(
    root: &Path,
    subject: usize,
    sessions: Option<Vec<usize>>,
    out: &Path,
) {
    use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
    prepare(&PrepareOptions {
        sessions,
        ..PrepareOptions::defaults(root, subject, out)
    })
    .unwrap();
    for kind in ["z", "c"] {
        features(out, "shapes-ldm", kind);
    }
}

/// `fit --subject SUBJECT --target TARGET --out OUT` with `cv` (the command's default is 5):
/// the summary `--json` prints.
pub fn fit(subject: &Path, target: &str, out: &Path, cv: &str) -> Value {
    let request = FitRequest {
        cv: cv.into(),
        ..FitRequest::with_defaults(subject.to_path_buf(), target, out.to_path_buf())
    };
    to_json(&fit_request(&request, &mut |_| {}).unwrap())
}

/// `reconstruct --method METHOD --subject SUBJECT --decoders DECODERS --model MODEL --out OUT`
/// with the command's defaults (5 samples, 50 steps, seed 42, f32 on the CPU); callers change
/// the options they pass as flags.
pub fn reconstruct_request(
    method: &str,
    subject: &Path,
    decoders: &Path,
    model: &str,
    out: &Path,
) -> ReconstructRequest {
    ReconstructRequest {
        method: method.into(),
        captions: None,
        b2c: None,
        init: "noise".into(),
        subject: subject.to_path_buf(),
        decoders: Some(decoders.to_path_buf()),
        model: model.into(),
        out: out.to_path_buf(),
        options: ReconstructOptions::default(),
        batch: None,
        shard: None,
        device: Device::Cpu,
        dtype: DType::F32,
        command: format!("brainrecon reconstruct --method {method}"),
        progress: false,
    }
}

/// Runs `request`: the summary `--json` prints.
pub fn reconstruct(request: &ReconstructRequest) -> Value {
    to_json(
        &brainrecon_routes::reconstruct::run(request)
            .unwrap()
            .summary,
    )
}

/// `eval --stimuli STIMULI --recons RECONS` with the command's defaults (MindEye2's protocol,
/// 50 rows a page, 128-px thumbnails, on the CPU).
pub fn eval_request(stimuli: &Path, recons: &Path) -> EvalRequest {
    EvalRequest {
        stimuli: stimuli.to_path_buf(),
        recons: recons.to_path_buf(),
        clip: None,
        metric_weights: None,
        protocol: "mindeye".into(),
        device: Device::Cpu,
        rows_per_page: 50,
        thumbnail: 128,
        captions: None,
        meteor_jar: None,
        clip_score_model: None,
        sheet: None,
        command: "brainrecon eval".into(),
    }
}

/// Runs `request` as `eval` does: the evaluation `--json` prints.
pub fn evaluate(request: &EvalRequest) -> Value {
    to_json(&eval(request, brainrecon_routes::reconstruct::eval_extras).unwrap())
}

/// The message of a refusal the binary exits with 2 on (`brainrecon_routes::error::is_user_error`,
/// the binary's own test).
pub fn user_error(error: RouteError) -> String {
    assert!(
        brainrecon_routes::error::is_user_error(&error),
        "not bad input: {error}"
    );
    error.to_string()
}

/// Reads, edits and writes back a JSON file.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}
