//! `brainrecon eeg embed | fit | eval` on `simulate --kind eeg`: a user's own embeddings, a
//! ridge and a NICE fit, a resumed fit found done, the scores as JSON, and bad input refused
//! with exit 2 naming the file and what was expected.

#[allow(dead_code)] // the shared helpers; not all are needed here
mod common;

use common::{copy_dir, ok, p, user_error};

#[test]
fn eeg_commands_fit_score_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, emb) = (d.join("sim"), d.join("emb"));
    ok(&[
        "simulate",
        "--kind",
        "eeg",
        "--subjects",
        "2",
        "--out",
        p(&data),
    ]);
    let embedded: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "embed",
        "--data",
        p(&data),
        "--out",
        p(&emb),
        "--json",
    ]))
    .unwrap();
    assert_eq!(embedded["model"], "shapes-blip");
    assert_eq!(
        (embedded["training"].as_u64(), embedded["test"].as_u64()),
        (Some(288), Some(32))
    );

    // A user's own embeddings: the two files without embeddings.json.
    let user = d.join("user-emb");
    copy_dir(&emb, &user);
    std::fs::remove_file(user.join("embeddings.json")).unwrap();
    let ridge = d.join("ridge-1");
    let fitted: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "fit",
        "--data",
        p(&data),
        "--embeddings",
        p(&user),
        "--subject",
        "sub-01",
        "--method",
        "ridge",
        "--window",
        "20:80",
        "--out",
        p(&ridge),
        "--json",
    ]))
    .unwrap();
    assert_eq!(fitted["meta"]["embeddings"]["model"], "user");
    assert_eq!(fitted["meta"]["window"], serde_json::json!([20, 80]));
    assert_eq!(fitted["already_done"], false);

    // NICE for a few epochs; the same command again finds it done.
    let nice = d.join("nice-loso-1");
    let args = [
        "eeg",
        "fit",
        "--data",
        p(&data),
        "--embeddings",
        p(&emb),
        "--leave-out",
        "sub-01",
        "--epochs",
        "3",
        "--out",
        p(&nice),
        "--json",
    ];
    let first: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(first["meta"]["trained_on"], serde_json::json!(["sub-02"]));
    assert_eq!(first["meta"]["epoch_losses"].as_array().unwrap().len(), 3);
    assert!(
        !nice.join("checkpoints").exists(),
        "checkpoints are removed once done"
    );
    let again: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(again["already_done"], true);
    assert_eq!(again["meta"]["epoch_losses"], first["meta"]["epoch_losses"]);
    // Other settings into the same folder are refused, not mixed.
    let mut other = args.to_vec();
    other[9] = "4";
    let err = user_error(&other);
    assert!(err.contains("other settings"), "{err}");

    let scores: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "eval",
        "--data",
        p(&data),
        "--decoder",
        p(&ridge),
        "--decoder",
        p(&nice),
        "--ways",
        "2,32",
        "--json",
    ]))
    .unwrap();
    let rows = scores["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["subject"], "sub-01");
    assert_eq!(rows[1]["scores"]["ways"][1]["k"], 32);
    assert_eq!(scores["summaries"].as_array().unwrap().len(), 2);
    // 32-way top-1 is top-1 of all 32 when every draw takes every image.
    for r in rows {
        assert_eq!(r["scores"]["ways"][1]["top1"], r["scores"]["top1"]);
    }

    // The NICE decoder reading a rehearsal recording live (the stim channel's steps are the
    // trials), at full speed and without a page.
    let test = brainrecon_datasets::things_eeg2::ThingsEeg2::open(&data)
        .unwrap()
        .read_preprocessed("sub-01", brainrecon_datasets::things_eeg2::Split::Test)
        .unwrap();
    let recording = d.join("rehearsal.csv");
    brainrecon_routes::eeg::live::write_rehearsal(&test, 1, &recording).unwrap();
    let live: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "live",
        "--source",
        p(&recording),
        "--rate",
        "100",
        "--decoder",
        p(&nice),
        "--data",
        p(&data),
        "--no-baseline",
        "--fast",
        "--no-serve",
        "--out",
        p(&d.join("live")),
        "--json",
    ]))
    .unwrap();
    assert_eq!(live["trials"].as_array().unwrap().len(), 32);
    assert!(d.join("live/session.json").is_file());
    let err = user_error(&[
        "eeg",
        "live",
        "--source",
        p(&recording),
        "--rate",
        "100",
        "--stim",
        "Status",
        "--decoder",
        p(&nice),
        "--data",
        p(&data),
        "--fast",
        "--no-serve",
        "--out",
        p(&d.join("live2")),
    ]);
    assert!(
        err.contains("Status") && err.contains("rehearsal.csv"),
        "{err}"
    );

    // Bad input: exit 2, naming what is wrong.
    let err = user_error(&[
        "eeg",
        "eval",
        "--data",
        p(&data),
        "--decoder",
        p(&ridge),
        "--ways",
        "33",
    ]);
    assert!(err.contains("33-way") && err.contains("2 to 32"), "{err}");
    let err = user_error(&[
        "eeg",
        "fit",
        "--data",
        p(&data),
        "--embeddings",
        p(&emb),
        "--subject",
        "sub-09",
        "--out",
        p(&d.join("x")),
    ]);
    assert!(
        err.contains("sub-09") && err.contains("sub-01, sub-02"),
        "{err}"
    );
    let wrong = d.join("wrong-emb");
    copy_dir(&emb, &wrong);
    std::fs::copy(wrong.join("training.npy"), wrong.join("test.npy")).unwrap();
    let err = user_error(&[
        "eeg",
        "fit",
        "--data",
        p(&data),
        "--embeddings",
        p(&wrong),
        "--subject",
        "sub-01",
        "--method",
        "ridge",
        "--out",
        p(&d.join("y")),
    ]);
    assert!(
        err.contains("test.npy") && err.contains("shape") && err.contains("[32, 64]"),
        "{err}"
    );
    let err = user_error(&[
        "eeg",
        "fit",
        "--data",
        p(&data),
        "--embeddings",
        p(&emb),
        "--subject",
        "sub-01",
        "--method",
        "ridge",
        "--window",
        "80:20",
        "--out",
        p(&d.join("z")),
    ]);
    assert!(err.contains("--window"), "{err}");
    // A test file that is no pickled dict.
    let test_file = data.join("eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_test.npy");
    std::fs::write(&test_file, b"\x93NUMPY garbage").unwrap();
    let err = user_error(&["eeg", "eval", "--data", p(&data), "--decoder", p(&ridge)]);
    assert!(err.contains("preprocessed_eeg_test.npy"), "{err}");
    // An image missing from its concept's folder.
    let meta = std::fs::read_dir(data.join("image_set/test_images"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for image in std::fs::read_dir(&meta).unwrap() {
        std::fs::remove_file(image.unwrap().path()).unwrap();
    }
    let err = user_error(&[
        "eeg",
        "embed",
        "--data",
        p(&data),
        "--out",
        p(&d.join("e2")),
    ]);
    assert!(err.contains("of concept"), "{err}");
    assert!(!d.join("e2").exists(), "nothing half-written");
}

#[test]
fn eeg_preprocess_writes_the_shipped_layout_from_raw_recordings() {
    use brainrecon_datasets::things_eeg2::{Split, ThingsEeg2};
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/things_eeg2_raw");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pre");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "preprocess",
        "--data",
        p(&fixture),
        "--out",
        p(&out),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["subjects"][0]["subject"], "sub-01");
    assert_eq!(
        report["subjects"][0]["training"],
        serde_json::json!([4, 4, 6, 100])
    );
    assert_eq!(
        report["subjects"][0]["test"],
        serde_json::json!([2, 6, 6, 100])
    );
    // The written files read back through the data set's reader, as the shipped ones do.
    let set = ThingsEeg2::open(&out).unwrap();
    assert_eq!(set.subjects().unwrap(), ["sub-01"]);
    let test = set.read_preprocessed("sub-01", Split::Test).unwrap();
    assert_eq!(test.ch_names, ["P7", "P3", "PO3", "O1", "Oz", "O2"]);
    assert!((test.times[0] + 0.2).abs() < 1e-12 && (test.times[99] - 0.79).abs() < 1e-9);
    // NICE's settings: every channel at 250 Hz.
    let nice = dir.path().join("nice");
    ok(&[
        "eeg",
        "preprocess",
        "--data",
        p(&fixture),
        "--channels",
        "all",
        "--sfreq",
        "250",
        "--mvnn",
        "epochs",
        "--out",
        p(&nice),
    ]);
    let training = ThingsEeg2::open(&nice)
        .unwrap()
        .read_preprocessed("sub-01", Split::Training)
        .unwrap();
    assert_eq!((training.channels(), training.times.len()), (8, 250));
    // Bad settings and a missing subject: exit 2.
    let err = user_error(&[
        "eeg",
        "preprocess",
        "--data",
        p(&fixture),
        "--sfreq",
        "0",
        "--out",
        p(&out),
    ]);
    assert!(err.contains("--sfreq"), "{err}");
    let err = user_error(&[
        "eeg",
        "preprocess",
        "--data",
        p(&fixture),
        "--subject",
        "sub-07",
        "--out",
        p(&out),
    ]);
    assert!(err.contains("sub-07"), "{err}");
}

#[test]
fn a_bids_eeg_experiment_is_prepared_embedded_fitted_and_scored() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/ds003825");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("things-eeg1");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "bids-prepare",
        "--bids-root",
        p(&fixture.join("ds003825")),
        "--subject",
        "02",
        "--task",
        "rsvp",
        "--images",
        p(&fixture.join("THINGS")),
        "--out",
        p(&out),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["onsets"], "samples");
    assert_eq!(report["training"], serde_json::json!([8, 1, 8, 100]));
    assert_eq!(report["test"], serde_json::json!([3, 4, 8, 100]));
    assert_eq!(report["images_linked"], 11);
    // The prepared folder is read as THINGS-EEG2 is: embedded, fitted and scored.
    let emb = dir.path().join("emb");
    ok(&["eeg", "embed", "--data", p(&out), "--out", p(&emb)]);
    let nice = dir.path().join("nice");
    ok(&[
        "eeg",
        "fit",
        "--data",
        p(&out),
        "--embeddings",
        p(&emb),
        "--subject",
        "sub-02",
        "--epochs",
        "2",
        "--batch",
        "4",
        "--out",
        p(&nice),
    ]);
    let scores: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "eval",
        "--data",
        p(&out),
        "--decoder",
        p(&nice),
        "--json",
    ]))
    .unwrap();
    assert_eq!(scores["rows"][0]["scores"]["n"], 3);
    // A subject without a recording, and an image missing from --images: exit 2.
    let err = user_error(&[
        "eeg",
        "bids-prepare",
        "--bids-root",
        p(&fixture.join("ds003825")),
        "--subject",
        "05",
        "--task",
        "rsvp",
        "--out",
        p(&dir.path().join("x")),
    ]);
    assert!(err.contains("sub-05_task-rsvp_eeg.vhdr"), "{err}");
    let images = dir.path().join("images");
    copy_dir(&fixture.join("THINGS"), &images);
    std::fs::remove_file(images.join("jam/jam_15s.jpg")).unwrap();
    let err = user_error(&[
        "eeg",
        "bids-prepare",
        "--bids-root",
        p(&fixture.join("ds003825")),
        "--subject",
        "02",
        "--task",
        "rsvp",
        "--images",
        p(&images),
        "--out",
        p(&dir.path().join("y")),
    ]);
    assert!(
        err.contains("jam_15s.jpg") && err.contains("events.tsv"),
        "{err}"
    );
    assert!(!dir.path().join("y").exists(), "nothing written");
}

/// Exit 2 for `args`, with neither `out` nor its staging folder left behind; the stderr.
fn refused_leaving_nothing(args: &[&str], out: &std::path::Path) -> String {
    let err = user_error(args);
    let partial = out.with_file_name(format!(
        "{}.partial",
        out.file_name().unwrap().to_str().unwrap()
    ));
    assert!(!out.exists(), "{args:?} left {}", out.display());
    assert!(!partial.exists(), "{args:?} left {}", partial.display());
    err
}

/// `raw` (a THINGS-EEG2 raw pickle) with its `sfreq` float set to `rate`.
fn with_sfreq(raw: &std::path::Path, rate: f64) {
    let mut bytes = std::fs::read(raw).unwrap();
    let key = bytes.windows(5).position(|w| w == b"sfreq").unwrap();
    // BINFLOAT: 'G' then the value as a big-endian double, after the key's memo opcode.
    let at = key + bytes[key..].iter().position(|&b| b == b'G').unwrap() + 1;
    bytes[at..at + 8].copy_from_slice(&rate.to_be_bytes());
    std::fs::write(raw, bytes).unwrap();
}

#[test]
fn eeg_preprocess_failures_leave_no_output() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/things_eeg2_raw");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pre");
    let run = |data: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["eeg", "preprocess", "--data", p(data), "--out", p(&out)];
        args.extend_from_slice(extra);
        refused_leaving_nothing(&args, &out)
    };
    let err = run(&fixture, &["--subject", "sub-07"]);
    assert!(err.contains("sub-07"), "{err}");
    let err = run(&fixture, &["--sfreq", "0"]);
    assert!(err.contains("--sfreq"), "{err}");
    // Rates read from the recordings: one of 1e306 Hz overflowed the epoch's length, one of
    // 1e10 Hz sized the resampler at tens of gigabytes.
    let data = dir.path().join("data");
    copy_dir(&fixture, &data);
    let raw = data.join("eeg_dataset/raw_data/sub-01/ses-01/raw_eeg_training.npy");
    for rate in [1e306, 1e10] {
        with_sfreq(&raw, rate);
        let err = run(&data, &[]);
        assert!(err.contains("raw_eeg_training.npy"), "{rate}: {err}");
    }
    // A recording cut short.
    std::fs::copy(
        fixture.join("eeg_dataset/raw_data/sub-01/ses-01/raw_eeg_training.npy"),
        &raw,
    )
    .unwrap();
    let test = data.join("eeg_dataset/raw_data/sub-01/ses-02/raw_eeg_test.npy");
    let bytes = std::fs::read(&test).unwrap();
    std::fs::write(&test, &bytes[..bytes.len() / 2]).unwrap();
    let err = run(&data, &[]);
    assert!(err.contains("raw_eeg_test.npy"), "{err}");
    // An earlier output is left as it was by a failed run.
    ok(&["eeg", "preprocess", "--data", p(&fixture), "--out", p(&out)]);
    let written = out.join("eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_test.npy");
    let before = std::fs::read(&written).unwrap();
    user_error(&["eeg", "preprocess", "--data", p(&data), "--out", p(&out)]);
    assert_eq!(std::fs::read(&written).unwrap(), before);
}

#[test]
fn eeg_bids_prepare_failures_leave_no_output() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/ds003825");
    let dir = tempfile::tempdir().unwrap();
    let (bids, images) = (dir.path().join("bids"), dir.path().join("images"));
    copy_dir(&fixture.join("ds003825"), &bids);
    copy_dir(&fixture.join("THINGS"), &images);
    let out = dir.path().join("out");
    let prepare = |extra: &[&str]| {
        let mut args = vec![
            "eeg",
            "bids-prepare",
            "--bids-root",
            p(&bids),
            "--subject",
            "02",
            "--task",
            "rsvp",
            "--out",
            p(&out),
        ];
        args.extend_from_slice(extra);
        refused_leaving_nothing(&args, &out)
    };
    // An image missing from --images: found before anything is written.
    std::fs::remove_file(images.join("jam/jam_15s.jpg")).unwrap();
    let err = prepare(&["--images", p(&images)]);
    assert!(err.contains("jam_15s.jpg"), "{err}");
    // Sampling intervals giving no rate, or one above the limit.
    let header = bids.join("sub-02/eeg/sub-02_task-rsvp_eeg.vhdr");
    let text = std::fs::read_to_string(&header).unwrap();
    for interval in ["1e-300", "0", "-1", "NaN", "0.0001"] {
        std::fs::write(
            &header,
            text.replace(
                "SamplingInterval=1000.0",
                &format!("SamplingInterval={interval}"),
            ),
        )
        .unwrap();
        let err = prepare(&[]);
        assert!(
            err.contains("sub-02_task-rsvp_eeg.vhdr") && err.contains("SamplingInterval"),
            "{interval}: {err}"
        );
    }
}

#[test]
fn a_things_meg_participant_is_prepared_and_decoded_by_atm() {
    // ds004212's tree from the MNE-written fixture (tools/fixtures/things_meg_fif.py): P1 in
    // three split parts.
    let fif =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures/fif");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds004212");
    let pre = root.join("derivatives/preprocessed");
    std::fs::create_dir_all(&pre).unwrap();
    for part in ["", "-1", "-2"] {
        let name = format!("preprocessed_P1-epo{part}.fif");
        std::fs::copy(fif.join(&name), pre.join(&name)).unwrap();
    }
    // THINGS' images as the epochs' image_path names them (any picture will do here).
    let picture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/ds003825/THINGS/jam/jam_15s.jpg");
    let images = dir.path().join("THINGS");
    for path in [
        "images_meg/wheelbarrow/wheelbarrow_05s.jpg",
        "images_meg/flan/flan_03s.jpg",
        "images_meg/gate/gate_06s.jpg",
        "images_meg/carrot/carrot_12n.jpg",
        "images_meg/swing/swing_02s.jpg",
        "images_test_meg/drawer/drawer_07s.jpg",
        "images_test_meg/umbrella/umbrella_09s.jpg",
    ] {
        let to = images.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&picture, &to).unwrap();
    }
    let out = dir.path().join("things-meg");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "meg-prepare",
        "--data",
        p(&root),
        "--participant",
        "P1",
        "--images",
        p(&images),
        "--out",
        p(&out),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["subject"], "sub-01");
    assert_eq!(report["files"].as_array().unwrap().len(), 3);
    assert_eq!(report["catch"], 1);
    // MEG sensors only, the bad one left out: 3 channels
    assert_eq!(report["training"][2], 3, "{report}");
    assert_eq!(
        report["test"],
        serde_json::json!([2, 2, 3, 281]),
        "{report}"
    );
    assert_eq!(report["images_linked"], 7, "{report}");
    // Zero-shot: the fixture's training concepts (wheelbarrow, flan, …) are none of the test's
    // (drawer, umbrella), so no training trial is dropped; every name tells its concept.
    assert_eq!(report["dropped_training_trials"], 0, "{report}");
    assert_eq!(report["shared_concepts"], 0, "{report}");
    assert_eq!(report["unknown_concepts"], 0, "{report}");
    // The prepared folder is read as THINGS-EEG2 is: embedded, fitted by ATM and scored.
    let emb = dir.path().join("emb");
    ok(&["eeg", "embed", "--data", p(&out), "--out", p(&emb)]);
    let atm = dir.path().join("atm");
    ok(&[
        "eeg",
        "fit",
        "--data",
        p(&out),
        "--embeddings",
        p(&emb),
        "--subject",
        "sub-01",
        "--method",
        "atm",
        "--epochs",
        "2",
        "--batch",
        "4",
        "--out",
        p(&atm),
    ]);
    assert!(atm.join("atm/config.json").is_file());
    let scores: serde_json::Value = serde_json::from_str(&ok(&[
        "eeg",
        "eval",
        "--data",
        p(&out),
        "--decoder",
        p(&atm),
        "--json",
    ]))
    .unwrap();
    assert_eq!(scores["rows"][0]["method"], "atm");
    assert_eq!(scores["rows"][0]["scores"]["n"], 2);
    // reconstructing no image is refused before any work
    let err = user_error(&[
        "eeg",
        "reconstruct",
        "--data",
        p(&out),
        "--decoder",
        p(&atm),
        "--embeddings",
        p(&emb),
        "--limit",
        "0",
        "--out",
        p(&dir.path().join("none")),
    ]);
    assert!(err.contains("--limit"), "{err}");
    assert!(!dir.path().join("none").exists());
    // A participant without epochs: exit 2 naming the file and those there are.
    let err = user_error(&[
        "eeg",
        "meg-prepare",
        "--data",
        p(&root),
        "--participant",
        "P3",
        "--out",
        p(&dir.path().join("x")),
    ]);
    assert!(
        err.contains("preprocessed_P3-epo.fif") && err.contains("P1"),
        "{err}"
    );
    // A missing split part: exit 2 naming it.
    std::fs::remove_file(pre.join("preprocessed_P1-epo-2.fif")).unwrap();
    let err = user_error(&[
        "eeg",
        "meg-prepare",
        "--data",
        p(&root),
        "--participant",
        "1",
        "--out",
        p(&dir.path().join("y")),
    ]);
    assert!(err.contains("preprocessed_P1-epo-2.fif"), "{err}");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn eeg_fit_and_eval_refuse_seen_concepts_and_name_the_file_of_bad_values() {
    use brainrecon_datasets::things_eeg2::{
        read_image_metadata, read_preprocessed, write_image_metadata, write_preprocessed,
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, emb) = (d.join("sim"), d.join("emb"));
    ok(&[
        "simulate",
        "--kind",
        "eeg",
        "--subjects",
        "1",
        "--out",
        p(&data),
    ]);
    ok(&["eeg", "embed", "--data", p(&data), "--out", p(&emb)]);
    let fit = |out: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "eeg",
            "fit",
            "--data",
            p(&data),
            "--embeddings",
            p(&emb),
            "--subject",
            "sub-01",
            "--method",
            "ridge",
            "--out",
            p(out),
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let eval = |decoder: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["eeg", "eval", "--data", p(&data), "--decoder", p(decoder)]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    // A zero-shot fit says so.
    let clean = d.join("clean");
    let fitted: serde_json::Value = serde_json::from_str(&ok(&strs(&fit(&clean, &[])))).unwrap();
    let concepts = &fitted["meta"]["concepts"];
    assert_eq!(concepts["checked"], true, "{concepts}");
    assert_eq!(
        (
            concepts["shared"].as_u64(),
            concepts["test_concepts"].as_u64()
        ),
        (Some(0), Some(32))
    );
    assert!(clean.join("training_concepts.json").is_file());

    // A test image of a training concept: refused by fit, naming both files and the concept.
    let metadata_path = data.join("image_set/image_metadata.npy");
    let original = read_image_metadata(&metadata_path).unwrap();
    let mut shared = original.clone();
    shared.test[0] = original.training[0].clone();
    let concept = original.training[0]
        .file
        .rsplit_once('_')
        .unwrap()
        .0
        .to_string();
    write_image_metadata(&metadata_path, &shared).unwrap();
    let err = user_error(&strs(&fit(&d.join("seen"), &[])));
    for part in [
        "image_metadata.npy",
        "preprocessed_eeg_training.npy",
        "preprocessed_eeg_test.npy",
        concept.as_str(),
        "--allow-seen-concepts",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert!(!d.join("seen").exists());
    // Allowed: fitted, and the record says it is not zero-shot.
    let seen = d.join("seen");
    let fitted: serde_json::Value =
        serde_json::from_str(&ok(&strs(&fit(&seen, &["--allow-seen-concepts"])))).unwrap();
    assert_eq!(fitted["meta"]["concepts"]["overlap_allowed"], true);
    assert_eq!(fitted["meta"]["concepts"]["shared"], 1);
    // eval: the clean decoder's training concepts against this test half: refused likewise.
    let err = user_error(&strs(&eval(&clean, &[])));
    assert!(
        err.contains("training_concepts.json") && err.contains(&concept),
        "{err}"
    );
    let scores: serde_json::Value = serde_json::from_str(&ok(&strs(&eval(
        &clean,
        &["--allow-seen-concepts", "--json"],
    ))))
    .unwrap();
    assert_eq!(scores["rows"][0]["concepts"]["overlap_allowed"], true);
    let text = ok(&strs(&eval(&clean, &["--allow-seen-concepts"])));
    assert!(text.contains("NOT zero-shot"), "{text}");
    write_image_metadata(&metadata_path, &original).unwrap();

    // Fewer training concepts than ridge's 5 cross-validation folds: named in image_metadata.npy.
    let mut few = original.clone();
    for (i, e) in few.training.iter_mut().enumerate() {
        e.concept = format!("0000{}_c", i % 3);
    }
    write_image_metadata(&metadata_path, &few).unwrap();
    let err = refused_leaving_nothing(&strs(&fit(&d.join("few"), &[])), &d.join("few"));
    assert!(
        err.contains("image_metadata.npy") && err.contains("3 concept folders"),
        "{err}"
    );
    write_image_metadata(&metadata_path, &original).unwrap();

    // A value beyond float32's range: refused naming the file, condition and repetition,
    // by fit (training half) and by eval (test half).
    let pre = data.join("eeg_dataset/preprocessed_data/sub-01");
    for (half, command) in [("training", "fit"), ("test", "eval")] {
        let path = pre.join(format!("preprocessed_eeg_{half}.npy"));
        let eeg = read_preprocessed(&path).unwrap();
        let mut values: Vec<f64> = eeg.data.iter().map(|&v| v as f64).collect();
        let per_condition = eeg.repetitions * eeg.channels() * eeg.times.len();
        values[2 * per_condition + 5] = 1e39;
        let shape = [
            eeg.conditions,
            eeg.repetitions,
            eeg.channels(),
            eeg.times.len(),
        ];
        write_preprocessed(&path, &values, shape, &eeg.ch_names, &eeg.times).unwrap();
        let err = match command {
            "fit" => refused_leaving_nothing(&strs(&fit(&d.join("bad"), &[])), &d.join("bad")),
            _ => user_error(&strs(&eval(&clean, &[]))),
        };
        assert!(
            err.contains(&format!("preprocessed_eeg_{half}.npy"))
                && err.contains("image condition 2, repetition 0"),
            "{command}: {err}"
        );
        let values: Vec<f64> = eeg.data.iter().map(|&v| v as f64).collect();
        write_preprocessed(&path, &values, shape, &eeg.ch_names, &eeg.times).unwrap();
    }
}
