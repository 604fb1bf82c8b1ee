//! The group commands' bad input on the binary: exit 2, the flags named, nothing written. The
//! route itself (group prepare | fit | adapt | curve on a CI-sized group, and the ordering its
//! curve shows) is checked through the library in crates/routes/tests/group.rs; the group here
//! is only as big as the refusals need.

mod common;

use common::{copy_dir, json, ok, p, user_error};
use std::path::{Path, PathBuf};

/// Simulates a small group and prepares subj01 … subj03 with z and c features.
fn group_data(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let sim = dir.join("sim");
    ok(&[
        "simulate",
        "--subjects",
        "3",
        "--images",
        "60",
        "--shared-images",
        "20",
        "--sessions",
        "2",
        "--image-size",
        "16",
        "--seed",
        "1",
        "--out",
        p(&sim),
    ]);
    let subjects: Vec<PathBuf> = (1..=3)
        .map(|s| {
            let out = dir.join(format!("subj0{s}"));
            ok(&[
                "nsd",
                "prepare",
                "--nsd-root",
                p(&sim),
                "--subject",
                &format!("subj0{s}"),
                "--out",
                p(&out),
            ]);
            features(&out);
            out
        })
        .collect();
    (sim, subjects)
}

fn features(subject: &Path) {
    for kind in ["z", "c"] {
        ok(&[
            "features",
            "--subject",
            p(subject),
            "--kind",
            kind,
            "--model",
            "shapes-ldm",
        ]);
    }
}

#[test]
fn the_group_commands_refuse_bad_input_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (sim, subjects) = group_data(dir);
    let group = dir.join("group");
    ok(&[
        "group",
        "prepare",
        "--subject",
        p(&subjects[1]),
        "--subject",
        p(&subjects[2]),
        "--out",
        p(&group),
    ]);
    for (method, k) in [("shared", "4"), ("srm", "4")] {
        ok(&[
            "group",
            "fit",
            "--group",
            p(&group),
            "--method",
            method,
            "--k",
            k,
            "--cv",
            "3",
        ]);
    }
    let one = dir.join("subj01-s1");
    ok(&[
        "nsd",
        "prepare",
        "--nsd-root",
        p(&sim),
        "--subject",
        "subj01",
        "--sessions",
        "1",
        "--out",
        p(&one),
    ]);
    features(&one);
    let adapted = dir.join("subj01-s1-shared");
    ok(&[
        "group",
        "adapt",
        "--group",
        p(&group),
        "--space",
        "shared",
        "--subject",
        p(&one),
        "--eval-subject",
        p(&subjects[0]),
        "--out",
        p(&adapted),
    ]);

    // Bad input: exit 2, nothing written.
    // A group without images seen by all: shared-image methods are refused.
    let lonely = dir.join("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    let mut meta = json(&group.join("group.json"));
    for key in ["shared_ids", "align_ids", "test_ids"] {
        meta[key] = serde_json::json!([]);
    }
    std::fs::write(lonely.join("group.json"), meta.to_string()).unwrap();
    let err = user_error(&[
        "group",
        "fit",
        "--group",
        p(&lonely),
        "--method",
        "srm",
        "--k",
        "8",
    ]);
    assert!(
        err.contains("--method srm") && err.contains("--method shared"),
        "{err}"
    );
    assert!(!lonely.join("spaces").exists());

    // A new subject whose images overlap none of the group's align images.
    let err = user_error(&[
        "group",
        "adapt",
        "--group",
        p(&group),
        "--space",
        "srm",
        "--subject",
        p(&adapted),
        "--via",
        "shared-images",
        "--out",
        p(&dir.join("never")),
    ]);
    assert!(
        err.contains("--via shared-images") && err.contains("--via features"),
        "{err}"
    );
    assert!(!dir.join("never").exists());

    // Subjects whose features came from different models.
    let other = dir.join("subj03-other-model");
    copy_dir(&subjects[2], &other);
    let vae = other.join("features/vae.json");
    let mut features = json(&vae);
    features["model"] = serde_json::json!("another-model");
    std::fs::write(&vae, features.to_string()).unwrap();
    let err = user_error(&[
        "group",
        "prepare",
        "--subject",
        p(&subjects[1]),
        "--subject",
        p(&other),
        "--out",
        p(&dir.join("mixed")),
    ]);
    assert!(
        err.contains("another-model") && err.contains("shapes-ldm"),
        "{err}"
    );
    assert!(!dir.join("mixed").exists());

    // `group curve` with a new subject that is one of the group's: refused, naming group.json.
    let err = user_error(&[
        "group",
        "curve",
        "--group",
        p(&group),
        "--space",
        "shared",
        "--nsd-root",
        p(&sim),
        "--subject",
        "subj02",
        "--out",
        p(&dir.join("curve-member")),
    ]);
    assert!(
        err.contains(&group.join("group.json").display().to_string()) && err.contains("subj02"),
        "{err}"
    );
    assert!(!dir.join("curve-member").exists());
    for (flag, value) in [("--trials", "0,all"), ("--seeds", "0")] {
        let err = user_error(&[
            "group",
            "curve",
            "--group",
            p(&group),
            "--space",
            "shared",
            "--nsd-root",
            p(&sim),
            "--subject",
            "subj01",
            flag,
            value,
            "--out",
            p(&dir.join("curve-bad")),
        ]);
        assert!(err.contains(flag), "{err}");
        assert!(!dir.join("curve-bad").exists());
    }

    // The array form of `group fit` (as `slurm submit --shards 2 -- group fit …` runs it):
    // misuse is refused before any work; the merge needs every subject's statistics; two
    // shards and the merge write the space.
    let fit_args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["group", "fit", "--group", p(&group), "--name", "arr"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(["--k", "4", "--cv", "3"].iter().map(|a| a.to_string()));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    fn as_strs(args: &[String]) -> Vec<&str> {
        args.iter().map(String::as_str).collect()
    }
    let err = user_error(&as_strs(&fit_args(&["--merge"])));
    assert!(err.contains("stats.json"), "{err}");
    let err = user_error(&as_strs(&fit_args(&["--shard", "0/2", "--method", "srm"])));
    assert!(err.contains("--method shared"), "{err}");
    let err = user_error(&as_strs(&fit_args(&["--shard", "2/3"])));
    assert!(err.contains("shard"), "{err}");
    let err = user_error(&as_strs(&fit_args(&["--work", p(&dir.join("w"))])));
    assert!(err.contains("--work"), "{err}");
    assert!(!group.join("spaces").join("arr").exists());
    ok(&as_strs(&fit_args(&["--shard", "1/2"])));
    let err = user_error(&as_strs(&fit_args(&["--merge"])));
    assert!(
        err.contains("subject-0") && err.contains("stats.json"),
        "{err}"
    );
    ok(&as_strs(&fit_args(&["--shard", "0/2"])));
    ok(&as_strs(&fit_args(&["--merge"])));
    assert!(group
        .join("spaces")
        .join("arr")
        .join("space.json")
        .is_file());

    // Unknown method, one subject, an unknown space.
    let err = user_error(&["group", "fit", "--group", p(&group), "--method", "hyper"]);
    assert!(err.contains("--method"), "{err}");
    let err = user_error(&[
        "group",
        "prepare",
        "--subject",
        p(&subjects[1]),
        "--out",
        p(&dir.join("one")),
    ]);
    assert!(err.contains("at least 2"), "{err}");
    let err = user_error(&[
        "group",
        "adapt",
        "--group",
        p(&group),
        "--space",
        "nope",
        "--subject",
        p(&one),
        "--out",
        p(&dir.join("nope")),
    ]);
    assert!(
        err.contains("space 'nope'") && err.contains("shared"),
        "{err}"
    );
}
