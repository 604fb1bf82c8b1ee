//! The binary as a user runs it: simulate → nsd prepare → info → fit → decode → eval.

mod common;

use common::{brainrecon, ok, p};

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("valid JSON on stdout")
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        vec!["simulate"],
        vec!["nsd", "prepare"],
        vec!["glm"],
        vec!["info"],
        vec!["features"],
        vec!["fit"],
        vec!["decode"],
        vec!["reconstruct"],
        vec!["reconstruct", "merge"],
        vec!["slurm", "submit"],
        vec!["slurm", "status"],
        vec!["slurm", "resume"],
        vec!["realtime", "watch"],
        vec!["realtime", "run"],
        vec!["realtime", "simulate"],
        vec!["realtime", "replay"],
        vec!["eval"],
        vec!["encode"],
        vec!["ridge", "fit"],
        vec!["ridge", "predict"],
        vec!["ridge", "score"],
        vec!["ridge", "merge"],
        vec!["bench", "ridge"],
        vec!["generate"],
        vec!["train-prior"],
        vec!["b2c", "train"],
        vec!["b2c", "ablation"],
        vec!["demo"],
        vec!["stream"],
        vec!["video", "prepare"],
        vec!["video", "train-motion"],
        vec!["video", "fit"],
        vec!["video", "reconstruct"],
        vec!["video", "eval"],
        vec!["video", "demo"],
        vec!["cortex", "draw"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let help = ok(&args);
        assert!(
            help.contains("Example:"),
            "{command:?} --help has no example:\n{help}"
        );
    }
}

/// (name, description) of every entry of the "Commands:" section of a help text.
fn listed_commands(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l.trim();
            match l.split_once(char::is_whitespace) {
                Some((name, rest)) => (name.to_string(), rest.trim().to_string()),
                None => (l.to_string(), String::new()),
            }
        })
        .collect()
}

#[test]
fn every_command_and_command_group_has_a_one_line_description() {
    let help = ok(&["--help"]);
    let commands = listed_commands(&help);
    assert!(commands.len() > 15, "no Commands section in:\n{help}");
    for group in ["nsd", "ridge", "bench", "b2c", "stream"] {
        assert!(
            commands.iter().any(|(name, _)| name == group),
            "{group} missing from:\n{help}"
        );
    }
    for (name, description) in &commands {
        assert!(
            description.len() > 10,
            "brainrecon --help: {name} has no description: {description:?}"
        );
        if name == "help" {
            continue;
        }
        // The subcommands of a group, one level down.
        let sub_help = ok(&[name, "--help"]);
        for (sub, description) in listed_commands(&sub_help) {
            assert!(
                description.len() > 10,
                "brainrecon {name} --help: {sub} has no description: {description:?}"
            );
        }
    }
}

#[test]
fn pipeline_from_nsd_layout_to_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (root, subject, model, recons) = (
        dir.path().join("nsd"),
        dir.path().join("subj01"),
        dir.path().join("model"),
        dir.path().join("recons"),
    );
    ok(&[
        "simulate",
        "--out",
        p(&root),
        "--images",
        "120",
        "--seed",
        "4",
        "--image-size",
        "32",
    ]);
    ok(&[
        "nsd",
        "prepare",
        "--nsd-root",
        p(&root),
        "--subject",
        "subj01",
        "--out",
        p(&subject),
    ]);

    // info reports exactly what the simulated NSD files imply.
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("truth/truth.json")).unwrap()).unwrap();
    let info = json(&["info", p(&subject), "--json"]);
    for key in ["n_train_trials", "n_train_images", "n_test_images"] {
        assert_eq!(info[key], truth[key], "{key}");
    }
    assert_eq!(info["test_stimulus_ids"], truth["shared_ids"]);
    assert_eq!(info["rois"], truth["rois"]);
    assert_eq!(info["captions_per_image"], 5);
    assert_eq!(info["image_size"], serde_json::json!([32, 32]));

    let fit_pixels = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "fit",
            "--subject",
            p(&subject),
            "--roi",
            "nsdgeneral",
            "--target",
            "pixels:12",
            "--out",
            p(out),
            "--json",
        ];
        args.extend_from_slice(extra);
        json(&args)
    };
    let fit = fit_pixels(&model, &[]);
    assert_eq!(fit["n_targets"], 12 * 12 * 3);

    // The same fit a block of 100 targets at a time (as c on a full subject): the same model
    // file, test scores and summary.
    let blocks = dir.path().join("model-blocks");
    let streamed = fit_pixels(&blocks, &["--target-block", "100"]);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + a.abs());
    for key in [
        "median_alpha",
        "cv_r2_mean",
        "test_r_mean",
        "alpha_at_low_edge",
    ] {
        let (a, b) = (fit[key].as_f64().unwrap(), streamed[key].as_f64().unwrap());
        assert!(close(a, b), "{key}: {a} vs {b}");
    }
    let (whole, parts) = (
        brainrecon_ridge::RidgeModel::load(&model).unwrap(),
        brainrecon_ridge::RidgeModel::load(&blocks).unwrap(),
    );
    assert_eq!(parts.metadata["fitted_in_blocks_of"], 100);
    assert_eq!(whole.alphas, parts.alphas);
    assert_eq!(
        (whole.weights.nrows(), whole.weights.ncols()),
        (parts.weights.nrows(), parts.weights.ncols())
    );
    for j in 0..whole.weights.ncols() {
        for i in 0..whole.weights.nrows() {
            let (a, b) = (whole.weights[(i, j)] as f64, parts.weights[(i, j)] as f64);
            assert!(close(a, b), "weight {i},{j}: {a} vs {b}");
        }
        let (a, b) = (whole.intercept[j] as f64, parts.intercept[j] as f64);
        assert!(close(a, b), "intercept {j}: {a} vs {b}");
    }
    let decoded = json(&[
        "decode",
        "--subject",
        p(&subject),
        "--model",
        p(&model),
        "--out",
        p(&recons),
        "--json",
    ]);
    assert_eq!(decoded["images_written"], truth["n_test_images"]);
    let table = json(&[
        "eval",
        "--stimuli",
        p(&subject),
        "--recons",
        p(&recons),
        "--json",
    ]);
    assert_eq!(table["n_pairs"], truth["n_test_images"]);
    // The brain encodes the images, so decoded pixels must identify their own stimulus well above chance (0.5).
    let two_way = table["two_way_pixels"].as_f64().unwrap();
    assert!(two_way > 0.7, "two-way identification {two_way}");
    assert!(table["pixcorr"].as_f64().unwrap() > 0.2, "{table}");
}

#[test]
fn bad_input_exits_with_2_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    ok(&[
        "simulate",
        "--out",
        p(&root),
        "--images",
        "30",
        "--image-size",
        "16",
    ]);
    let out_dir = dir.path().join("out");
    std::fs::remove_file(root.join("nsddata/experiments/nsd/nsd_stim_info_merged.csv")).unwrap();
    let out = brainrecon(&[
        "nsd",
        "prepare",
        "--nsd-root",
        p(&root),
        "--subject",
        "subj01",
        "--out",
        p(&out_dir),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nsd_stim_info_merged.csv") && stderr.contains("expected"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear message: {stderr}");
    assert!(!out_dir.exists());

    let out = brainrecon(&[
        "nsd",
        "prepare",
        "--nsd-root",
        p(&root),
        "--subject",
        "subj01",
        "--out",
        p(&out_dir),
        "--sessions",
        "2-1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = brainrecon(&["info", p(&dir.path().join("nowhere"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("subject.json"));
}
