//! The group route end to end on the second, independent simulator at CI size, through the
//! library calls behind `simulate --generator population --subjects 5` → `nsd prepare` →
//! `features` → `group prepare | fit | adapt | curve` → `fit`: a new subject's first session,
//! adapted into the space of four others whose voxels share nothing by position, decodes above
//! chance, and the curve holds the orderings it holds on the first simulator (tests/group.rs).

mod common;

use brainrecon_routes::decode::decoders::{fit_request, FitRequest};
use brainrecon_routes::group::adapt::{adapt, AdaptRequest, Via};
use brainrecon_routes::group::curve::{BEST_GROUP_METHOD, WITHIN_SUBJECT};
use brainrecon_simulate::request;
use brainrecon_simulate::Generator;
use common::{assert_above, assert_above_chance, fit_space};

/// The fewest trials of the curve (see tests/group.rs's `FEWEST`: the same point on both
/// simulators).
const FEWEST: usize = 30;
/// Seeds of the validation/test split.
const SEEDS: usize = 5;

#[test]
fn a_new_subject_of_the_population_simulator_decodes_through_the_group_and_gains_at_few_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // `simulate --generator population --subjects 5 --images 300 --shared-images 100
    // --sessions 3 --seed 2`: sessions of 300 trials instead of NSD's 750; then `nsd prepare`,
    // `features` and `group prepare` of subj02 … subj05.
    let simulated = common::simulated_group(
        dir,
        request::Request {
            images: Some(300),
            seed: 2,
            sessions: Some(3),
            subjects: Some(5),
            shared_images: Some(100),
            generator: Generator::Population,
            ..request::Request::new(dir.join("sim"), request::Kind::Image)
        },
        1,
    );
    let (sim, subjects, group) = (&simulated.sim, &simulated.subjects, &simulated.group);
    fit_space(group, "shared", 64);

    // subj01's first session: adapted into the space, and alone (its own decoder).
    let one = dir.join("subj01-s1");
    common::prepared_with_features(sim, 1, Some(vec![1]), &one);
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

    // The curve, as on the first simulator (tests/group.rs): 30 trials (session 1) and all
    // 600, five seeds, the shared space and SRM.
    fit_space(group, "srm", 32);
    let result = common::group_curve(
        &simulated,
        vec![Some(FEWEST), None],
        SEEDS,
        &dir.join("curve"),
    );
    // The orderings that hold on this group, each by more than 2 s.d. of the per-seed
    // difference (both points scored on each seed's test images). Measured on this test's
    // group (simulator seed 2; in brackets simulator seeds 3 and 4, the same sizes),
    // 2026-11-29:
    // - within-subject, all 600 trials over 30: +0.111 ± 0.018 (+0.190 ± 0.024,
    //   +0.121 ± 0.037);
    // - the best group method (shared at every seed) over the subject's own decoder on the
    //   same rows at 30 trials: +0.021 ± 0.008, 2.6 s.d. (+0.076 ± 0.056, positive at every
    //   seed but 1.4 s.d.; +0.049 ± 0.018); at 60 trials and with all trials it is within
    //   noise here (+0.010 ± 0.010 and +0.018 ± 0.019): not asserted;
    // - the best group method at 30 trials above chance: 0.805 ± 0.016;
    // - the ceiling over every method at 30 trials: by +0.090 ± 0.020 (shared, the best) and
    //   +0.157 ± 0.019 (srm).
    for method in [WITHIN_SUBJECT, "shared", "srm", BEST_GROUP_METHOD] {
        assert_above(&result, (WITHIN_SUBJECT, None), (method, Some(FEWEST)));
    }
    assert_above(
        &result,
        (BEST_GROUP_METHOD, Some(FEWEST)),
        (WITHIN_SUBJECT, Some(FEWEST)),
    );
    assert_above_chance(&result, BEST_GROUP_METHOD, Some(FEWEST));
}
