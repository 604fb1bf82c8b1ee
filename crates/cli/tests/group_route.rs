//! A new subject from one session through a group's shared space, end to end on a CI-sized
//! simulated group (`simulate --subjects 5` → `nsd prepare` → `features` → `group prepare |
//! fit | adapt | curve` → `fit` and `eval`-free scoring), and the group commands' bad input.

mod common;

use common::{copy_dir, json, ok, p, user_error};
use std::path::{Path, PathBuf};

/// Simulates the group and prepares subj01 … subj05 with z and c features.
fn group_data(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let sim = dir.join("sim");
    ok(&[
        "simulate",
        "--subjects",
        "5",
        "--images",
        "300",
        "--shared-images",
        "100",
        "--sessions",
        "10",
        "--seed",
        "1",
        "--out",
        p(&sim),
    ]);
    let subjects: Vec<PathBuf> = (1..=5)
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
            for kind in ["z", "c"] {
                ok(&[
                    "features",
                    "--subject",
                    p(&out),
                    "--kind",
                    kind,
                    "--model",
                    "shapes-ldm",
                ]);
            }
            out
        })
        .collect();
    (sim, subjects)
}

#[test]
fn a_new_subject_from_one_session_beats_its_own_session_and_bad_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (sim, subjects) = group_data(dir);
    let group = dir.join("group");
    let mut args = vec!["group", "prepare"];
    for s in &subjects[1..] {
        args.extend(["--subject", p(s)]);
    }
    args.extend(["--out", p(&group)]);
    let text = ok(&args);
    assert!(text.starts_with("group of 4 subjects"), "{text}");
    let meta = json(&group.join("group.json"));
    assert_eq!(meta["shared_ids"].as_array().unwrap().len(), 100);
    assert_eq!(meta["align_ids"].as_array().unwrap().len(), 50);

    ok(&[
        "group",
        "fit",
        "--group",
        p(&group),
        "--method",
        "shared",
        "--k",
        "64",
    ]);
    ok(&[
        "group",
        "fit",
        "--group",
        p(&group),
        "--method",
        "srm",
        "--k",
        "32",
    ]);
    for space in ["shared", "srm"] {
        for target in ["z", "c"] {
            assert!(group
                .join(format!("spaces/{space}/decoders/{target}/model.json"))
                .exists());
        }
    }

    // One session of subj01, adapted; then the ordinary routes run on it unchanged.
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
    for kind in ["z", "c"] {
        ok(&[
            "features",
            "--subject",
            p(&one),
            "--kind",
            kind,
            "--model",
            "shapes-ldm",
        ]);
    }
    let adapted = dir.join("subj01-s1-shared");
    let text = ok(&[
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
    assert!(text.starts_with("adapted into space shared"), "{text}");
    let own = dir.join("own-decoder-c");
    let text = ok(&[
        "fit",
        "--subject",
        p(&adapted),
        "--target",
        "c",
        "--out",
        p(&own),
    ]);
    assert!(
        text.contains("of shared"),
        "fit decodes from the shared atlas by default: {text}"
    );

    // The curve: the ordering that holds on this group.
    let curve_dir = dir.join("curve");
    ok(&[
        "group",
        "curve",
        "--group",
        p(&group),
        "--space",
        "shared",
        "--space",
        "srm",
        "--nsd-root",
        p(&sim),
        "--subject",
        "subj01",
        "--sessions",
        "1,all",
        "--out",
        p(&curve_dir),
    ]);
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
    let other = dir.join("subj05-other-model");
    copy_dir(&subjects[4], &other);
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
