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

/// A simulated group at CI size: the NSD root, subj01 … subj05 prepared from all their
/// sessions with features z and c, and the group folder of subj02 … subj05.
pub struct SimulatedGroup {
    /// The simulated NSD root.
    pub sim: PathBuf,
    /// subj01 … subjNN, prepared (the first `left_out` of them outside the group: new subjects).
    pub subjects: Vec<PathBuf>,
    /// `group prepare` of the others (half the shared images to align on).
    pub group: PathBuf,
    /// What `group prepare` printed.
    pub prepared: String,
}

/// `simulate --subjects N …` as `simulate` asks (N its `subjects`; its `out` is replaced by
/// DIR/sim), `nsd prepare` and `features` of the N subjects into DIR/subjNN, then `group
/// prepare` of all but the first `left_out` into DIR/group with `--align-share 0.5`: the setup
/// every group route test shares.
pub fn simulated_group(dir: &Path, simulate: request::Request, left_out: usize) -> SimulatedGroup {
    use brainrecon_routes::group::prepare::{prepare_group, GroupPrepareRequest};
    let sim = dir.join("sim");
    let n = simulate
        .subjects
        .expect("the group's simulation names its subjects");
    request::run(&request::Request {
        out: sim.clone(),
        ..simulate
    })
    .unwrap();
    let subjects: Vec<PathBuf> = (1..=n)
        .map(|s| {
            let out = dir.join(format!("subj0{s}"));
            prepared_with_features(&sim, s, None, &out);
            out
        })
        .collect();
    let group = dir.join("group");
    let report = prepare_group(&GroupPrepareRequest {
        subjects: subjects[left_out..].to_vec(),
        out: group.clone(),
        roi: "nsdgeneral".into(),
        kinds: vec!["vae".into(), "clip-text".into()],
        align_share: 0.5,
        seed: 0,
    })
    .unwrap();
    SimulatedGroup {
        sim,
        subjects,
        group,
        prepared: report.text(),
    }
}

/// `group fit --group GROUP --method METHOD --k K` with decoders of z and c (10 iterations,
/// seed 0, 5-fold CV).
pub fn fit_space(group: &Path, method: &str, k: usize) {
    use brainrecon_routes::group::fit::{fit_group, GroupFitRequest};
    fit_group(
        &GroupFitRequest {
            group: group.to_path_buf(),
            method: method.into(),
            name: None,
            k,
            n_iter: 10,
            seed: 0,
            targets: vec!["z".into(), "c".into()],
            cv: "5".into(),
        },
        &mut |_| {},
    )
    .unwrap();
}

/// `group curve --group GROUP --space shared --space srm --subject 1 --trials … --seeds SEEDS`
/// on subj01 of `group`'s NSD root, scoring z and c, written to `out`.
pub fn group_curve(
    group: &SimulatedGroup,
    trials: Vec<Option<usize>>,
    seeds: usize,
    out: &Path,
) -> brainrecon_routes::group::curve::Curve {
    use brainrecon_routes::group::curve::{curve, CurveRequest};
    curve(
        &CurveRequest {
            group: group.group.clone(),
            spaces: vec!["shared".into(), "srm".into()],
            nsd_root: group.sim.clone(),
            subject: 1,
            trials,
            seeds,
            targets: vec!["z".into(), "c".into()],
            out: out.to_path_buf(),
            progress: false,
        },
        &mut |_| {},
    )
    .unwrap()
}

/// The point of `method` at `trials` (`None`: the all-trials point, the ceiling's) of `curve`.
pub fn curve_point<'a>(
    curve: &'a brainrecon_routes::group::curve::Curve,
    method: &str,
    trials: Option<usize>,
) -> &'a brainrecon_routes::group::curve::CurvePoint {
    curve
        .points
        .iter()
        .find(|p| {
            p.method == method
                && match trials {
                    Some(n) => !p.all_trials && p.trials == n,
                    None => p.all_trials,
                }
        })
        .unwrap_or_else(|| panic!("{method} at {trials:?} trials in {curve:?}"))
}

/// Asserts that the point `above` (method, trials as in [`curve_point`]) scores higher than
/// `below` by more than two s.d. over the seeds: the difference is taken seed by seed, both
/// points scored on that seed's test images. Returns the difference's mean and s.d.
pub fn assert_above(
    curve: &brainrecon_routes::group::curve::Curve,
    above: (&str, Option<usize>),
    below: (&str, Option<usize>),
) -> (f64, f64) {
    let (a, b) = (
        curve_point(curve, above.0, above.1),
        curve_point(curve, below.0, below.1),
    );
    assert!(a.per_seed.len() >= 3, "at least 3 seeds: {a:?}");
    let differences: Vec<f64> = a
        .per_seed
        .iter()
        .zip(&b.per_seed)
        .map(|(x, y)| {
            assert_eq!(x.seed, y.seed);
            x.two_way_mean - y.two_way_mean
        })
        .collect();
    let (mean, sd) = brainrecon_routes::group::curve::mean_sd(&differences);
    let label = |(method, trials): (&str, Option<usize>)| match trials {
        Some(n) => format!("{method} at {n} trials"),
        None => format!("{method} at all trials"),
    };
    eprintln!(
        "{} over {}: {mean:+.4} ± {sd:.4} (per seed {differences:.3?})",
        label(above),
        label(below)
    );
    assert!(
        mean > 0.0 && mean > 2.0 * sd,
        "{above:?} over {below:?}: {mean:+.4} ± {sd:.4} (per seed {differences:?}), expected a \
         margin above 2 s.d.; the curve:\n{}",
        curve.markdown()
    );
    (mean, sd)
}

/// Asserts that the point of `method` at `trials` is above chance (two-way 0.5) by more than
/// two s.d. over the seeds.
pub fn assert_above_chance(
    curve: &brainrecon_routes::group::curve::Curve,
    method: &str,
    trials: Option<usize>,
) {
    let p = curve_point(curve, method, trials);
    assert!(
        p.two_way_mean - 0.5 > 2.0 * p.two_way_sd,
        "{method} at {trials:?} trials: {:.4} ± {:.4}, expected above chance (0.5) by more than \
         2 s.d.",
        p.two_way_mean,
        p.two_way_sd
    );
}
