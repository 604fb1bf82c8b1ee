//! The group route end to end on the second, independent simulator at CI size, through the
//! library calls behind `simulate --generator population --subjects 5` → `nsd prepare` →
//! `features` → `group prepare | fit | adapt` → `fit`: a new subject's first session, adapted
//! into the space of four others whose voxels share nothing by position, decodes above chance.

mod common;

use brainrecon_routes::decode::decoders::{fit_request, FitRequest};
use brainrecon_routes::group::adapt::{adapt, AdaptRequest, Via};
use brainrecon_routes::group::fit::{fit_group, GroupFitRequest};
use brainrecon_routes::group::prepare::{prepare_group, GroupPrepareRequest};
use brainrecon_simulate::request;
use brainrecon_simulate::Generator;
use std::path::{Path, PathBuf};

/// `simulate --generator population --subjects 5 --images 300 --shared-images 100
/// --sessions 3 --seed 2 --out ROOT`: sessions of 300 trials instead of NSD's 750.
fn simulate(root: &Path) {
    request::run(&request::Request {
        images: Some(300),
        seed: 2,
        sessions: Some(3),
        subjects: Some(5),
        shared_images: Some(100),
        generator: Generator::Population,
        ..request::Request::new(root.to_path_buf(), request::Kind::Image)
    })
    .unwrap();
}

#[test]
fn a_new_subject_of_the_population_simulator_decodes_above_chance_through_the_group() {
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
    prepare_group(&GroupPrepareRequest {
        subjects: subjects[1..].to_vec(),
        out: group.clone(),
        roi: "nsdgeneral".into(),
        kinds: vec!["vae".into(), "clip-text".into()],
        align_share: 0.5,
        seed: 0,
    })
    .unwrap();
    fit_group(
        &GroupFitRequest {
            group: group.clone(),
            method: "shared".into(),
            name: None,
            k: 64,
            n_iter: 10,
            seed: 0,
            targets: vec!["z".into(), "c".into()],
            cv: "5".into(),
        },
        &mut |_| {},
    )
    .unwrap();

    // subj01's first session: adapted into the space, and alone (its own decoder).
    let one = dir.join("subj01-s1");
    common::prepared_with_features(&sim, 1, Some(vec![1]), &one);
    let adapted = dir.join("subj01-s1-shared");
    adapt(&AdaptRequest {
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
    for target in ["z", "c"] {
        let through_group = fit_request(
            &FitRequest::with_defaults(
                adapted.clone(),
                target,
                dir.join(format!("group-{target}")),
            ),
            &mut |_| {},
        )
        .unwrap();
        let own = fit_request(
            &FitRequest::with_defaults(one.clone(), target, dir.join(format!("own-{target}"))),
            &mut |_| {},
        )
        .unwrap();
        eprintln!(
            "{target}: test r through the group {:.4}, own session {:.4} ({} test images)",
            through_group.test_r_mean, own.test_r_mean, through_group.n_test
        );
        // Chance is r ≈ 0 (sd about 1/√n_test for one target, less for the mean over targets).
        assert!(
            through_group.test_r_mean > 0.1,
            "{target} through the group: {}",
            through_group.text()
        );
        assert!(
            own.test_r_mean > 0.1,
            "{target} own session: {}",
            own.text()
        );
    }
}
