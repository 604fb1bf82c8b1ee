//! `simulate --subjects N`: a group in one NSD root that `nsd prepare` reads subject by subject,
//! its summary, and its bad input.

mod common;

use common::{ok, p, user_error};

#[test]
fn a_group_prepares_subject_by_subject() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let args = [
        "simulate",
        "--out",
        p(&root),
        "--subjects",
        "3",
        "--individual-share",
        "0.5",
        "--images",
        "30",
        "--shared-images",
        "5",
        "--image-size",
        "16",
        "--volume",
        "14,18,12",
        "--seed",
        "2",
    ];
    let text = ok(&args);
    assert!(
        text.starts_with("simulated a group of 3 subjects"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");

    let again = dir.path().join("again");
    let mut json_args = args.to_vec();
    json_args[2] = p(&again);
    json_args.push("--json");
    let summary: serde_json::Value = serde_json::from_str(&ok(&json_args)).unwrap();
    assert_eq!(summary["n_subjects"], 3);
    assert_eq!(summary["individual_share"], 0.5);
    assert_eq!(summary["n_pool"], 5 + 3 * 25);
    assert_eq!(summary["shared_ids"].as_array().unwrap().len(), 5);
    assert_eq!(summary["subjects"].as_array().unwrap().len(), 3);
    assert_eq!(summary["subjects"][2]["subject"], "subj03");

    for subject in ["subj01", "subj03"] {
        let out = dir.path().join(subject);
        let text = ok(&[
            "nsd",
            "prepare",
            "--nsd-root",
            p(&root),
            "--subject",
            subject,
            "--out",
            p(&out),
        ]);
        assert!(text.contains("5 test images"), "{text}");
    }
}

#[test]
fn bad_group_settings_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "--out", p(&out), "--images", "40"];
        args.extend_from_slice(extra);
        user_error(&args)
    };
    let err = run(&["--subjects", "0"]);
    assert!(
        err.contains("--subjects: expected 1 to 8, found 0"),
        "{err}"
    );
    let err = run(&["--subjects", "9"]);
    assert!(
        err.contains("--subjects: expected 1 to 8, found 9"),
        "{err}"
    );
    let err = run(&["--subjects", "2", "--individual-share", "1.2"]);
    assert!(
        err.contains("--individual-share: expected 0 to 1, found 1.2"),
        "{err}"
    );
    let err = run(&["--subjects", "2", "--individual-share=-0.1"]);
    assert!(err.contains("--individual-share"), "{err}");
    let err = run(&["--subjects", "2", "--shared-images", "40"]);
    assert!(
        err.contains("--shared-images: expected 3 to 39 (fewer than --images 40), found 40"),
        "{err}"
    );
    let err = run(&["--shared-images", "2"]);
    assert!(err.contains("--shared-images"), "{err}");
    let err = run(&["--kind", "movie", "--subjects", "2"]);
    assert!(err.contains("apply to --kind image"), "{err}");
    assert!(!out.exists());
}

#[test]
fn the_population_generator_writes_a_group_that_prepares_and_refuses_bad_ncsnr() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let summary: serde_json::Value = serde_json::from_str(&ok(&[
        "simulate",
        "--generator",
        "population",
        "--out",
        p(&root),
        "--subjects",
        "2",
        "--images",
        "40",
        "--sessions",
        "2",
        "--shared-images",
        "6",
        "--ncsnr",
        "0.3",
        "--image-size",
        "16",
        "--volume",
        "12,14,10",
        "--json",
    ]))
    .unwrap();
    assert_eq!(summary["generator"], "population");
    assert_eq!(summary["trials_per_session"], 60);
    assert_eq!(summary["subjects"][1]["ncsnr"], 0.3);
    assert!(summary.get("profiles").is_none(), "{summary}");
    let text = ok(&[
        "nsd",
        "prepare",
        "--nsd-root",
        p(&root),
        "--subject",
        "subj02",
        "--out",
        p(&dir.path().join("subj02")),
    ]);
    assert!(text.contains("6 test images"), "{text}");

    let out = dir.path().join("bad");
    let err = user_error(&["simulate", "--out", p(&out), "--ncsnr", "0.2"]);
    assert!(
        err.contains("--ncsnr applies to --generator population"),
        "{err}"
    );
    let err = user_error(&[
        "simulate",
        "--generator",
        "population",
        "--out",
        p(&out),
        "--ncsnr",
        "0",
    ]);
    assert!(err.contains("--ncsnr: expected LOW[,HIGH]"), "{err}");
    assert!(!out.exists());
}
