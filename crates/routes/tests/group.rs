//! A new subject from one session through a group's shared space, end to end on a CI-sized
//! simulated group, through the library calls behind `simulate --subjects 5` → `nsd prepare`
//! → `features` → `group prepare | fit | adapt | curve` → `fit`. The same curve on the second
//! simulator is in tests/population_group.rs. The group commands' flags and bad input are
//! checked on the binary in crates/cli/tests/group_route.rs.

mod common;

use brainrecon_routes::decode::decoders::{fit_request, FitRequest};
use brainrecon_routes::group::adapt::{adapt, AdaptRequest, Via};
use brainrecon_routes::group::curve::{BEST_GROUP_METHOD, WITHIN_SUBJECT};
use brainrecon_simulate::request;
use common::{assert_above, assert_above_chance, curve_point, fit_space};
use serde_json::Value;
use std::path::Path;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fewest trials of the curve, chosen for its regime: at 30 trials (and the 13 align rows
/// of session 1) the subject's own decoder reaches 0.67 of its all-trials ceiling on this
/// group (0.87 on the second simulator's, tests/population_group.rs), as at NSD's size 100
/// trials reach 0.80 and 0.87 (docs/routes/new-subject.md), the one point where the group
/// gained there. The 30 trials stand for NSD's 100 by that ratio, not by their count.
const FEWEST: usize = 30;
/// Seeds of the validation/test split.
const SEEDS: usize = 5;

#[test]
fn a_new_subject_from_one_session_beats_its_own_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // `simulate --subjects 5 --images 300 --shared-images 100 --sessions 10 --seed 1`, then
    // `nsd prepare`, `features` and `group prepare` of subj02 … subj05.
    let simulated = common::simulated_group(
        dir,
        request::Request {
            images: Some(300),
            seed: 1,
            sessions: Some(10),
            subjects: Some(5),
            shared_images: Some(100),
            ..request::Request::new(dir.join("sim"), request::Kind::Image)
        },
        1,
    );
    let (sim, subjects, group) = (&simulated.sim, &simulated.subjects, &simulated.group);
    let text = &simulated.prepared;
    assert!(text.starts_with("group of 4 subjects"), "{text}");
    let meta = json(&group.join("group.json"));
    assert_eq!(meta["shared_ids"].as_array().unwrap().len(), 100);
    assert_eq!(meta["align_ids"].as_array().unwrap().len(), 50);

    fit_space(group, "shared", 64);
    fit_space(group, "srm", 32);
    for space in ["shared", "srm"] {
        for target in ["z", "c"] {
            assert!(group
                .join(format!("spaces/{space}/decoders/{target}/model.json"))
                .exists());
        }
    }

    // One session of subj01, adapted; then the ordinary routes run on it unchanged.
    let one = dir.join("subj01-s1");
    common::prepared_with_features(sim, 1, Some(vec![1]), &one);
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

    // The curve: 30 and 60 trials (both in session 1 here) and all 600, five seeds.
    let curve_dir = dir.join("curve");
    let result = common::group_curve(
        &simulated,
        vec![Some(FEWEST), Some(60), None],
        SEEDS,
        &curve_dir,
    );
    let at = |method: &str, trials: Option<usize>| curve_point(&result, method, trials);
    let few = (at(WITHIN_SUBJECT, Some(60)), at(WITHIN_SUBJECT, None));
    assert_eq!((few.0.trials, few.1.trials), (60, 600), "the trial axis");
    assert!((few.0.minutes - 4.0).abs() < 1e-12, "60 trials × 4 s");

    // Equal rows: the baseline is fitted on the trials and the align rows the group methods
    // see at the point.
    for (own, space) in [
        (few.0, at("shared", Some(60))),
        (at(WITHIN_SUBJECT, Some(FEWEST)), at("srm", Some(FEWEST))),
        (few.1, at("srm", None)),
    ] {
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
    assert_eq!(result.seeds.len(), SEEDS);
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
        assert_eq!(values.len(), SEEDS, "{p:?}");
        let mean = values.iter().sum::<f64>() / SEEDS as f64;
        let sd =
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (SEEDS - 1) as f64).sqrt();
        assert!((p.two_way_mean - mean).abs() < 1e-12 && (p.two_way_sd - sd).abs() < 1e-12);
        assert_eq!(p.ratio_to_ceiling, p.two_way_mean / result.ceiling);
    }
    assert_eq!(result.ceiling, few.1.two_way_mean);

    // The best group method is chosen per seed on validation images and scored on test ones.
    for trials in [Some(FEWEST), Some(60), None] {
        let best = at(BEST_GROUP_METHOD, trials);
        for (i, chosen) in best.per_seed.iter().enumerate() {
            let candidates = [at("shared", trials), at("srm", trials)];
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

    // The orderings that hold on this group, each by more than 2 s.d. of the per-seed
    // difference (both points scored on each seed's test images). Measured on this test's
    // group (simulator seed 1; in brackets simulator seeds 3 and 4, the same sizes),
    // 2026-11-29:
    // - within-subject, all 600 trials over 30: +0.270 ± 0.024 (+0.236 ± 0.015,
    //   +0.283 ± 0.013);
    // - the best group method over the subject's own decoder on the same 43 rows at 30 trials:
    //   +0.046 ± 0.022, a thin 2.1 s.d. (+0.048 ± 0.016, +0.142 ± 0.015); at 60 trials and with
    //   all trials it is within noise here (−0.021 ± 0.020 and +0.013 ± 0.015; seed 3:
    //   +0.002 ± 0.017 and +0.010 ± 0.007) and at 20 trials on seed 3 (+0.003 ± 0.016), though
    //   clear on seed 4 (+0.073 ± 0.007 at 60): not asserted;
    // - the best group method at 30 trials above chance: 0.585 ± 0.032 (0.711 ± 0.011,
    //   0.785 ± 0.016);
    // - the ceiling over every method at 30 trials: by +0.224 ± 0.038 (shared, the best) and
    //   +0.260 ± 0.017 (srm).
    for method in [WITHIN_SUBJECT, "shared", "srm", BEST_GROUP_METHOD] {
        assert_above(&result, (WITHIN_SUBJECT, None), (method, Some(FEWEST)));
    }
    assert_above(
        &result,
        (BEST_GROUP_METHOD, Some(FEWEST)),
        (WITHIN_SUBJECT, Some(FEWEST)),
    );
    assert_above_chance(&result, BEST_GROUP_METHOD, Some(FEWEST));

    let written = json(&curve_dir.join("curve.json"));
    assert_eq!(
        written["points"][0]["per_seed"].as_array().unwrap().len(),
        SEEDS,
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
        md.contains(&format!("({})", at("shared", Some(60)).ratio_to_ceiling)),
        "{md}"
    );
}
