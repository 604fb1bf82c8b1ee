//! A new subject from one session through a group's shared space, end to end on a CI-sized
//! simulated group, through the library calls behind `simulate --subjects 5` → `nsd prepare`
//! → `features` → `group prepare | fit | adapt | curve` → `fit`. The group commands' flags and
//! bad input are checked on the binary in crates/cli/tests/group_route.rs.

mod common;

use brainrecon_routes::decode::decoders::{fit_request, FitRequest};
use brainrecon_routes::group::adapt::{adapt, AdaptRequest, Via};
use brainrecon_routes::group::curve::{curve, CurveRequest, BEST_GROUP_METHOD, WITHIN_SUBJECT};
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
            common::prepared_with_features(&sim, s, None, &out);
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
    common::prepared_with_features(&sim, 1, Some(vec![1]), &one);
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

    // The curve: 60 trials (about session 1 here) and all 600, three seeds.
    let curve_dir = dir.join("curve");
    let result = curve(
        &CurveRequest {
            group: group.clone(),
            spaces: vec!["shared".into(), "srm".into()],
            nsd_root: sim.clone(),
            subject: 1,
            trials: vec![Some(60), None],
            seeds: 3,
            targets: vec!["z".into(), "c".into()],
            out: curve_dir.clone(),
            progress: false,
        },
        &mut |_| {},
    )
    .unwrap();
    let at = |method: &str, all: bool| {
        result
            .points
            .iter()
            .find(|p| p.method == method && p.all_trials == all)
            .unwrap_or_else(|| panic!("{method} {all} in {result:?}"))
    };
    let few = (at(WITHIN_SUBJECT, false), at(WITHIN_SUBJECT, true));
    assert_eq!((few.0.trials, few.1.trials), (60, 600), "the trial axis");
    assert!((few.0.minutes - 4.0).abs() < 1e-12, "60 trials × 4 s");

    // Equal rows: the baseline is fitted on the trials and the align rows the group methods
    // see at the point.
    for (own, space) in [(few.0, at("shared", false)), (few.1, at("srm", true))] {
        assert!(own.n_align_rows > 0, "{own:?}");
        assert_eq!(own.n_rows, own.trials + own.n_align_rows, "{own:?}");
        assert_eq!(
            own.n_rows, space.n_rows,
            "baseline and group rows: {own:?} {space:?}"
        );
    }

    // Seeds: different splits of the 50 held-out images, validation and test disjoint.
    let held_out: Vec<usize> = meta["test_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(result.seeds.len(), 3);
    for split in &result.seeds {
        assert!(split.validation_ids.len() >= 2 && split.test_ids.len() >= 2);
        assert!(split
            .validation_ids
            .iter()
            .all(|id| split.test_ids.binary_search(id).is_err()));
        let mut all: Vec<usize> = split
            .validation_ids
            .iter()
            .chain(&split.test_ids)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, held_out, "every held-out image in one half");
    }
    assert_ne!(result.seeds[0].test_ids, result.seeds[1].test_ids);
    assert_ne!(result.seeds[1].test_ids, result.seeds[2].test_ids);

    // Mean and s.d. come from the per-seed values; the ratio is to the ceiling, unrounded.
    for p in &result.points {
        let values: Vec<f64> = p.per_seed.iter().map(|s| s.two_way_mean).collect();
        assert_eq!(values.len(), 3, "{p:?}");
        let mean = values.iter().sum::<f64>() / 3.0;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((p.two_way_mean - mean).abs() < 1e-12 && (p.two_way_sd - sd).abs() < 1e-12);
        assert_eq!(p.ratio_to_ceiling, p.two_way_mean / result.ceiling);
    }
    assert_eq!(result.ceiling, few.1.two_way_mean);

    // The best group method is chosen per seed on validation images and scored on test ones.
    for all in [false, true] {
        let best = at(BEST_GROUP_METHOD, all);
        for (i, chosen) in best.per_seed.iter().enumerate() {
            let candidates = [at("shared", all), at("srm", all)];
            let winner = candidates
                .iter()
                .max_by(|a, b| {
                    a.per_seed[i]
                        .validation_mean
                        .total_cmp(&b.per_seed[i].validation_mean)
                })
                .unwrap();
            assert_eq!(chosen.chosen.as_deref(), Some(winner.method.as_str()));
            assert_eq!(chosen.two_way_mean, winner.per_seed[i].two_way_mean);
        }
    }

    // The ordering that holds on this group.
    let (within_one, within_all, shared_one) = (
        few.0.two_way_mean,
        few.1.two_way_mean,
        at("shared", false).two_way_mean,
    );
    assert!(
        within_one > 0.55 && shared_one > 0.55,
        "above chance: {result:?}"
    );
    assert!(
        within_all > within_one + 0.03,
        "all trials beat 60: {result:?}"
    );
    let written = json(&curve_dir.join("curve.json"));
    assert_eq!(
        written["points"][0]["per_seed"].as_array().unwrap().len(),
        3,
        "per-seed values in curve.json"
    );
    assert!(written["points"][0]["ratio_to_ceiling"].is_f64());
    assert!(std::fs::read_to_string(curve_dir.join("curve.svg"))
        .unwrap()
        .contains("<svg"));
    let md = std::fs::read_to_string(curve_dir.join("curve.md")).unwrap();
    assert!(
        md.contains("| shared |") && md.contains("60 trials (4 min)"),
        "{md}"
    );
    assert!(
        md.contains(&format!("({})", at("shared", false).ratio_to_ceiling)),
        "{md}"
    );
}
