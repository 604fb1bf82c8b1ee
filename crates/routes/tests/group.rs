//! A new subject from one session through a group's shared space, end to end on a CI-sized
//! simulated group, through the library calls behind `simulate --subjects 5` → `nsd prepare`
//! → `features` → `group prepare | fit | adapt | curve` → `fit`. The group commands' flags and
//! bad input are checked on the binary in crates/cli/tests/group_route.rs.

use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
use brainrecon_diffusion::pipeline::DType;
use brainrecon_routes::decode::decoders::{fit_request, FitRequest};
use brainrecon_routes::decode::features::{features_request, FeaturesRequest};
use brainrecon_routes::group::adapt::{adapt, AdaptRequest, Via};
use brainrecon_routes::group::curve::{curve, CurveRequest};
use brainrecon_routes::group::fit::{fit_group, GroupFitRequest};
use brainrecon_routes::group::prepare::{prepare_group, GroupPrepareRequest};
use brainrecon_simulate::request;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `simulate --subjects 5 --images 300 --shared-images 100 --sessions 10 --seed 1 --out ROOT`.
fn simulate(root: &Path) {
    request::run(&request::Request {
        images: Some(300),
        seed: 1,
        sessions: Some(10),
        subjects: Some(5),
        shared_images: Some(100),
        ..request::Request::new(root.to_path_buf(), request::Kind::Image)
    })
    .unwrap();
}

/// `nsd prepare --nsd-root ROOT --subject subjNN [--sessions ..] --out OUT`, then `features
/// --kind z` and `--kind c` with `--model shapes-ldm` on the CPU.
fn prepared_with_features(root: &Path, subject: usize, sessions: Option<Vec<usize>>, out: &Path) {
    prepare(&PrepareOptions {
        sessions,
        ..PrepareOptions::defaults(root, subject, out)
    })
    .unwrap();
    for kind in ["z", "c"] {
        let request = FeaturesRequest {
            subject: out.to_path_buf(),
            kind: kind.into(),
            model: Some("shapes-ldm".into()),
            layer: "last".into(),
            normalize: false,
            out: None,
            size: None,
            sample: false,
            seed: 0,
            batch: 8,
            device: brainrecon_core::Device::Cpu,
            dtype: DType::F32,
            progress: false,
        };
        features_request(&request, |_, _| Ok::<(), brainrecon_routes::RouteError>(())).unwrap();
    }
}

fn fit_space(group: &Path, method: &str, k: usize) {
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

#[test]
fn a_new_subject_from_one_session_beats_its_own_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sim = dir.join("sim");
    simulate(&sim);
    let subjects: Vec<PathBuf> = (1..=5)
        .map(|s| {
            let out = dir.join(format!("subj0{s}"));
            prepared_with_features(&sim, s, None, &out);
            out
        })
        .collect();

    let group = dir.join("group");
    let report = prepare_group(&GroupPrepareRequest {
        subjects: subjects[1..].to_vec(),
        out: group.clone(),
        roi: "nsdgeneral".into(),
        kinds: vec!["vae".into(), "clip-text".into()],
        align_share: 0.5,
        seed: 0,
    })
    .unwrap();
    let text = report.text();
    assert!(text.starts_with("group of 4 subjects"), "{text}");
    let meta = json(&group.join("group.json"));
    assert_eq!(meta["shared_ids"].as_array().unwrap().len(), 100);
    assert_eq!(meta["align_ids"].as_array().unwrap().len(), 50);

    fit_space(&group, "shared", 64);
    fit_space(&group, "srm", 32);
    for space in ["shared", "srm"] {
        for target in ["z", "c"] {
            assert!(group
                .join(format!("spaces/{space}/decoders/{target}/model.json"))
                .exists());
        }
    }

    // One session of subj01, adapted; then the ordinary routes run on it unchanged.
    let one = dir.join("subj01-s1");
    prepared_with_features(&sim, 1, Some(vec![1]), &one);
    let adapted = dir.join("subj01-s1-shared");
    let report = adapt(&AdaptRequest {
        group: group.clone(),
        space: "shared".into(),
        subject: one.clone(),
        sessions: None,
        via: Via::default(),
        map: None,
        eval_subject: Some(subjects[0].clone()),
        out: adapted.clone(),
    })
    .unwrap();
    let text = report.text();
    assert!(text.starts_with("adapted into space shared"), "{text}");
    let fitted = fit_request(
        &FitRequest::with_defaults(adapted.clone(), "c", dir.join("own-decoder-c")),
        &mut |_| {},
    )
    .unwrap();
    let text = fitted.text();
    assert!(
        text.contains("of shared"),
        "fit decodes from the shared atlas by default: {text}"
    );

    // The curve: the ordering that holds on this group.
    let curve_dir = dir.join("curve");
    curve(
        &CurveRequest {
            group: group.clone(),
            spaces: vec!["shared".into(), "srm".into()],
            nsd_root: sim.clone(),
            subject: 1,
            sessions: vec![Some(1), None],
            targets: vec!["z".into(), "c".into()],
            out: curve_dir.clone(),
            progress: false,
        },
        &mut |_| {},
    )
    .unwrap();
    let curve = json(&curve_dir.join("curve.json"));
    let score = |method: &str, all: bool| -> f64 {
        curve["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pt| pt["method"] == method && pt["all_sessions"] == all)
            .unwrap_or_else(|| panic!("{method} {all} in {curve}"))["two_way_mean"]
            .as_f64()
            .unwrap()
    };
    let (within_one, within_all, shared_one) = (
        score("within-subject", false),
        score("within-subject", true),
        score("shared", false),
    );
    assert!(
        within_one > 0.55 && shared_one > 0.55,
        "above chance: {curve}"
    );
    assert!(
        within_all > within_one + 0.03,
        "all sessions beat one: {curve}"
    );
    assert!(
        shared_one > within_one + 0.02,
        "the group helps at one session: {curve}"
    );
    assert!(std::fs::read_to_string(curve_dir.join("curve.svg"))
        .unwrap()
        .contains("<svg"));
    assert!(std::fs::read_to_string(curve_dir.join("curve.md"))
        .unwrap()
        .contains("| shared |"));
}
