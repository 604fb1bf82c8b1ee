//! `group fit`'s array form (issue 80, goal 4): one task per shard of subjects writes their
//! statistics (spectrum, GCV α, column means), a merge finishes the fit. Run in any order, the
//! pieces write the same bytes as one process, and a merge refuses statistics that are
//! missing or were written for another configuration, naming the file and the field.

mod common;

use brainrecon_routes::group::fit::{
    fit_group_step, fit_group_within, shard_stats_done, stats_dir, FitLimits, FitStep,
    FitStepReport, GroupFitRequest, STATS_FILE,
};
use brainrecon_routes::linear::shards::ImageShard;
use brainrecon_routes::RouteError;
use brainrecon_simulate::request;
use std::path::{Path, PathBuf};

/// Three simulated subjects, prepared with z and c features, grouped.
fn small_group(dir: &Path) -> PathBuf {
    let simulate = request::Request {
        images: Some(90),
        seed: 4,
        sessions: Some(2),
        subjects: Some(3),
        shared_images: Some(30),
        ..request::Request::new(dir.join("sim"), request::Kind::Image)
    };
    common::simulated_group(dir, simulate, 0).group
}

fn request(group: &Path) -> GroupFitRequest {
    GroupFitRequest {
        group: group.to_path_buf(),
        method: "shared".into(),
        name: None,
        k: 8,
        n_iter: 10,
        seed: 5,
        targets: vec![],
        cv: "5".into(),
    }
}

/// Blocks of 16 rows: every subject is read in several blocks.
fn limits() -> FitLimits {
    FitLimits {
        block_rows: Some(16),
        ..FitLimits::default()
    }
}

fn stats(group: &Path, shard: &str, work: &Path, limits: &FitLimits) -> Result<(), RouteError> {
    let step = FitStep::SubjectStats {
        shard: ImageShard::parse(shard).unwrap(),
        work: Some(work.to_path_buf()),
    };
    match fit_group_step(&request(group), limits, &step, &mut |_| {})? {
        FitStepReport::Stats(report) => {
            assert!(!report.subjects.is_empty(), "{shard}: {report:?}");
            Ok(())
        }
        other => panic!("a stats task fitted a space: {other:?}"),
    }
}

fn merge(group: &Path, work: &Path) -> Result<FitStepReport, RouteError> {
    let step = FitStep::Merge {
        work: Some(work.to_path_buf()),
    };
    fit_group_step(&request(group), &limits(), &step, &mut |_| {})
}

/// Every file of a space, `space.json` without its wall time.
fn space_files(space: &Path) -> Vec<(String, Vec<u8>)> {
    brainrecon_testkit::files_with_bytes(space)
        .into_iter()
        .map(|(name, bytes)| {
            if name == "space.json" {
                let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                value.as_object_mut().unwrap().remove("seconds");
                (name, serde_json::to_vec(&value).unwrap())
            } else {
                (name, bytes)
            }
        })
        .collect()
}

#[test]
fn array_form_writes_the_bytes_of_one_process_and_refuses_foreign_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let group = small_group(dir.path());
    let space = group.join("spaces/shared");

    fit_group_within(&request(&group), &limits(), &mut |_| {}).unwrap();
    let one_process = space_files(&space);
    assert!(
        one_process.len() > 10 && one_process.iter().any(|(n, _)| n == "basis.npy"),
        "{:?}",
        one_process.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&space).unwrap();

    // Shards out of order: the second (subject 2), then the first (subjects 0 and 1).
    let work = dir.path().join("work");
    stats(&group, "1/2", &work, &limits()).unwrap();
    let shard = |k: &str| ImageShard::parse(k).unwrap();
    assert!(shard_stats_done(&work, shard("1/2"), 3));
    assert!(!shard_stats_done(&work, shard("0/2"), 3));
    assert!(!stats_dir(&work, 0).exists());
    let early = merge(&group, &work).unwrap_err();
    assert!(
        matches!(&early, RouteError::Missing { path, .. } if *path == stats_dir(&work, 0).join(STATS_FILE)),
        "{early}"
    );
    assert!(common::user_error(early).contains("subject-0/stats.json"));
    stats(&group, "0/2", &work, &limits()).unwrap();
    merge(&group, &work).unwrap();
    let array = space_files(&space);
    assert_eq!(
        array.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        one_process.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in array.iter().zip(&one_process) {
        assert!(
            a == b,
            "{name} differs between the array form and one process"
        );
    }

    // Statistics of another configuration: subject 1 read in blocks of 5 rows.
    let other = FitLimits {
        block_rows: Some(5),
        ..FitLimits::default()
    };
    stats(&group, "1/3", &work, &other).unwrap();
    let error = common::user_error(merge(&group, &work).unwrap_err());
    assert!(
        error.contains("subject-1/stats.json: block_rows: expected 16, found 5"),
        "{error}"
    );

    // A task over its memory budget is refused before it reads any betas or writes anything.
    let tight = FitLimits {
        memory_bytes: Some(100_000),
        ..limits()
    };
    let fresh = dir.path().join("work-tight");
    let error = common::user_error(stats(&group, "2/3", &fresh, &tight).unwrap_err());
    assert!(
        error.contains("--memory-gb 0.0: the statistics of subject 2")
            && error.contains("need about"),
        "{error}"
    );
    assert!(!stats_dir(&fresh, 2).exists());

    // More shards than subjects, and SRM, which has no per-subject statistics.
    let error = stats(&group, "3/4", &work, &limits()).unwrap_err();
    assert!(
        common::user_error(error).contains("the group has 3 subjects"),
        "too many shards"
    );
    let srm = GroupFitRequest {
        method: "srm".into(),
        ..request(&group)
    };
    let error =
        fit_group_step(&srm, &limits(), &FitStep::Merge { work: None }, &mut |_| {}).unwrap_err();
    assert!(
        common::user_error(error).contains("--method shared"),
        "srm array form"
    );
}
