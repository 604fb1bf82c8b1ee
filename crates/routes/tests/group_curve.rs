//! `group curve`'s axis, seeds and statistics, and its refusal of a group member, without a
//! simulated group (each test runs in well under a second). The curve end to end (equal rows,
//! validation choice, disjoint splits on a real run) is checked in tests/group.rs.

use brainrecon_routes::group::curve::{
    curve, mean_sd, nsd_minutes, parse_trial_counts, seed_splits, trial_points, trials_label,
    Curve, CurvePoint, CurveRequest, SeedScore, DEFAULT_TRIALS, WITHIN_SUBJECT,
};
use brainrecon_routes::group::{GroupMeta, GroupSubject, GROUP_FORMAT};
use brainrecon_routes::RouteError;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[test]
fn trials_are_labelled_with_nsd_minutes() {
    assert_eq!(nsd_minutes(750), 50.0, "NSD's session: 750 trials of 4 s");
    assert_eq!(nsd_minutes(225), 15.0);
    assert_eq!(trials_label(750, false), "750 trials (50 min)");
    assert_eq!(trials_label(100, false), "100 trials (6.7 min)");
    assert_eq!(trials_label(1, false), "1 trial (0.1 min)");
    assert_eq!(trials_label(600, true), "all 600 trials (40 min)");

    let asked: Vec<String> = DEFAULT_TRIALS.iter().map(|s| s.to_string()).collect();
    let counts = parse_trial_counts(&asked).unwrap();
    assert_eq!(
        counts,
        vec![Some(100), Some(250), Some(500), Some(750), Some(1500), None]
    );
    // A subject with 600 train trials: 750 and 1,500 are all of them.
    assert_eq!(
        trial_points(&counts, 600),
        vec![(100, false), (250, false), (500, false), (600, true)]
    );
    // The all-trials point (the ceiling) is always there.
    assert_eq!(
        trial_points(&[Some(60)], 600),
        vec![(60, false), (600, true)]
    );
    for bad in ["0", "-3", "one", ""] {
        let err = parse_trial_counts(&[bad.to_string()]).unwrap_err();
        assert!(
            matches!(&err, RouteError::Usage(m) if m.contains("--trials") && m.contains(&format!("'{bad}'"))),
            "{err}"
        );
    }
    assert!(parse_trial_counts(&[]).is_err());
}

#[test]
fn seeds_split_the_held_out_images_differently_and_disjointly() {
    let held_out: Vec<usize> = (1000..1051).collect();
    let splits = seed_splits(&held_out, 3).unwrap();
    assert_eq!(splits.len(), 3);
    for (i, split) in splits.iter().enumerate() {
        assert_eq!(split.seed, i as u64);
        assert_eq!((split.validation_ids.len(), split.test_ids.len()), (25, 26));
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
        assert_eq!(all, held_out);
    }
    assert_ne!(splits[0].test_ids, splits[1].test_ids);
    assert_ne!(splits[1].test_ids, splits[2].test_ids);
    assert_ne!(splits[0].test_ids, splits[2].test_ids);
    assert_eq!(splits, seed_splits(&held_out, 3).unwrap(), "seeded");

    assert!(
        matches!(seed_splits(&held_out, 0), Err(RouteError::Usage(m)) if m.contains("--seeds"))
    );
    assert!(
        matches!(seed_splits(&[1, 2, 3], 1), Err(RouteError::Usage(m)) if m.contains("at least 4"))
    );
}

fn seed(seed: u64, test: f64, validation: f64) -> SeedScore {
    SeedScore {
        seed,
        two_way: vec![("z".into(), test), ("c".into(), test)],
        two_way_mean: test,
        validation_mean: validation,
        chosen: None,
    }
}

#[test]
fn points_are_mean_and_sd_over_seeds_with_unrounded_ratios() {
    assert_eq!(mean_sd(&[0.7]), (0.7, 0.0));
    let (mean, sd) = mean_sd(&[0.6, 0.7, 0.8]);
    assert!((mean - 0.7).abs() < 1e-15 && (sd - 0.1).abs() < 1e-15);

    let few = CurvePoint::new(
        WITHIN_SUBJECT,
        (60, false, 1),
        (25, 85),
        vec![seed(0, 0.6, 0.5), seed(1, 0.7, 0.5), seed(2, 0.8, 0.5)],
    );
    assert!((few.two_way_mean - 0.7).abs() < 1e-15 && (few.two_way_sd - 0.1).abs() < 1e-15);
    assert_eq!(few.minutes, 4.0);
    let all = CurvePoint::new(
        WITHIN_SUBJECT,
        (600, true, 10),
        (50, 650),
        vec![seed(0, 0.9, 0.9), seed(1, 0.9, 0.9), seed(2, 0.9, 0.9)],
    );
    let curve = Curve {
        group: PathBuf::from("group"),
        subject: "subj01".into(),
        targets: vec!["z".into(), "c".into()],
        seeds: seed_splits(&(0..8).collect::<Vec<_>>(), 3).unwrap(),
        points: vec![few, all],
        ceiling: f64::NAN,
        ceiling_sd: f64::NAN,
    }
    .with_ratios();
    assert_eq!(curve.ceiling, curve.points[1].two_way_mean);
    let ratio = curve.points[0].ratio_to_ceiling;
    assert_eq!(
        ratio,
        curve.points[0].two_way_mean / curve.points[1].two_way_mean
    );
    let md = curve.markdown();
    assert!(
        md.contains(&format!("({ratio})")),
        "the ratio unrounded: {md}"
    );
    assert!(
        format!("{ratio}").len() > 8,
        "not rounded to a few digits: {ratio}"
    );
    assert!(md.contains("| 0.700 ± 0.100 ("), "{md}");
    assert!(
        md.contains("60 trials (4 min)") && md.contains("all 600 trials (40 min)"),
        "{md}"
    );
    assert!(md.contains("60 + 25 = 85"), "the rows of each point: {md}");
    let json = serde_json::to_value(&curve).unwrap();
    assert!(json["points"][0]["ratio_to_ceiling"].is_f64());
    assert_eq!(json["points"][0]["per_seed"].as_array().unwrap().len(), 3);
}

#[test]
fn a_subject_of_the_group_is_refused_naming_the_group_file() {
    let tmp = tempfile::tempdir().unwrap();
    let group = tmp.path().join("group");
    std::fs::create_dir_all(&group).unwrap();
    let member = |name: &str| GroupSubject {
        name: name.into(),
        path: tmp.path().join(name),
        n_voxels: 10,
        n_train_rows: 20,
        sessions: vec![1],
    };
    let meta = GroupMeta {
        format: GROUP_FORMAT.into(),
        format_version: 1,
        roi: "nsdgeneral".into(),
        kinds: vec!["vae".into()],
        feature_model: "shapes-ldm".into(),
        feature_fingerprints: BTreeMap::new(),
        subjects: vec![member("subj02"), member("subj03")],
        shared_ids: vec![1, 2, 3, 4],
        align_ids: vec![1, 2],
        test_ids: vec![3, 4],
        seed: 0,
    };
    std::fs::write(
        group.join("group.json"),
        serde_json::to_string(&meta).unwrap(),
    )
    .unwrap();
    let out = tmp.path().join("curve");
    let err = curve(
        &CurveRequest {
            group: group.clone(),
            spaces: vec!["shared".into()],
            nsd_root: tmp.path().join("no-nsd-root"),
            subject: 3,
            trials: vec![Some(100), None],
            seeds: 3,
            targets: vec!["z".into()],
            out: out.clone(),
            progress: false,
        },
        &mut |_| {},
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, RouteError::Usage(_)), "{message}");
    assert!(
        message.contains(&group.join("group.json").display().to_string())
            && message.contains("subj03"),
        "{message}"
    );
    assert!(!out.exists(), "nothing written");
}
