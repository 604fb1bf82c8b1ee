//! The README's NSD commands (`glm --nsd`, then `glm compare`) on a tiny NSD session in
//! nsddata_timeseries' layout (tools/fixtures/nsd_timeseries.py: int16 runs at 4/3 s, one
//! 73k ID or 0 per volume in the designs, NSD's brain mask and nsdgeneral), whose "released"
//! betas_fithrf_GLMdenoise_RR are GLMsingle's own TYPED fit of the same files.
mod common;

use common::{brainrecon, ok, p as s, user_error};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nsd_timeseries")
}

/// `glm --nsd ROOT --subject 1 --session SESSION --out OUT` plus `extra`.
fn glm_nsd<'a>(root: &'a Path, session: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "glm",
        "--nsd",
        s(root),
        "--subject",
        "1",
        "--session",
        session,
    ];
    args.extend_from_slice(&["--out", s(out)]);
    args.extend_from_slice(extra);
    args
}

fn compare(glm: &Path, root: &Path, model: &str) -> Value {
    let out = ok(&[
        "glm",
        "compare",
        "--glm",
        s(glm),
        "--nsd",
        s(root),
        "--betas",
        model,
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn an_nsd_session_fitted_from_its_time_series_matches_glmsingle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("glm-nsd-s01");
    let root = fixture();
    let fitted = ok(&[
        "glm",
        "--nsd",
        s(&root),
        "--subject",
        "subj01",
        "--session",
        "1",
        "--out",
        s(&out),
        "--json",
    ]);
    let meta: Value = serde_json::from_str(&fitted).unwrap();
    assert_eq!(meta["runs"].as_array().unwrap().len(), 3);
    assert_eq!(meta["trials"].as_array().unwrap().len(), 54);
    assert_eq!(meta["conditions"].as_array().unwrap().len(), 18);
    assert_eq!(meta["condition_column"], "73k_id");
    assert!((meta["tr"].as_f64().unwrap() - 4.0 / 3.0).abs() < 1e-9);
    assert_eq!(meta["stimdur"], 3.0);
    // NSD's trials start on volumes: nothing moved.
    assert!(meta["largest_onset_rounding_seconds"].as_f64().unwrap() < 1e-9);

    // TYPED against GLMsingle's TYPED: the same betas, in the same units.
    let typed = compare(&out, &root, "typed");
    let session = &typed["sessions"][0];
    assert_eq!(session["session"], "01");
    assert_eq!(session["n_trials"], 54);
    let all = &session["all_voxels"];
    assert_eq!(all["n_voxels"], 184);
    let median = all["median_r"].as_f64().unwrap();
    let lower = all["r_quartiles"][0].as_f64().unwrap();
    let ratio = all["median_std_ratio"].as_f64().unwrap();
    assert!(
        median > 0.99 && lower > 0.95,
        "TYPED r {median} (q1 {lower})"
    );
    assert!((ratio - 1.0).abs() < 0.05, "spread ratio {ratio}");
    let general = &session["nsdgeneral"];
    assert!(
        general["n_voxels"].as_u64().unwrap() > 0
            && general["n_voxels"].as_u64() < all["n_voxels"].as_u64()
    );
    assert!(out.join("compare_nsd.json").is_file());
    // TYPEB (no denoising, no ridge) is a different model: clearly further from NSD's.
    let typeb = compare(&out, &root, "typeb");
    let typeb_median = typeb["sessions"][0]["all_voxels"]["median_r"]
        .as_f64()
        .unwrap();
    assert!(
        typeb_median < median - 0.2,
        "TYPEB r {typeb_median}, TYPED {median}"
    );
    let err = user_error(&[
        "glm",
        "compare",
        "--glm",
        s(&out),
        "--nsd",
        s(&root),
        "--betas",
        "typea",
    ]);
    assert!(err.contains("typea holds one on/off beta"), "{err}");

    // A rerun with the same settings does nothing.
    let again = ok(&glm_nsd(&root, "01", &out, &[]));
    assert!(again.contains("already fitted"), "{again}");
}

#[test]
fn bad_nsd_inputs_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    common::copy_dir(&fixture(), &root);
    let design =
        root.join("nsddata_timeseries/ppdata/subj01/func1pt8mm/design/design_session01_run02.tsv");
    let text = std::fs::read_to_string(&design).unwrap();
    let short: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(&design, short.join("\n")).unwrap();
    let out = dir.path().join("fit");
    let err = user_error(&glm_nsd(&root, "1", &out, &[]));
    assert!(
        err.contains("design_session01_run02.tsv") && err.contains("rows"),
        "{err}"
    );
    assert!(!out.exists(), "a refused fit left {}", out.display());

    std::fs::write(&design, text.replacen("0\n", "x\n", 1)).unwrap();
    let err = user_error(&glm_nsd(&root, "1", &out, &[]));
    assert!(
        err.contains("design_session01_run02.tsv") && err.contains("line 1"),
        "{err}"
    );

    // Options that belong to fMRIPrep folders conflict with --nsd; a session it lacks is named.
    let output = brainrecon(&glm_nsd(&root, "1", &out, &["--task", "x"]));
    assert_eq!(output.status.code(), Some(2));
    std::fs::write(&design, text).unwrap();
    let err = user_error(&glm_nsd(&root, "2", &out, &[]));
    assert!(err.contains("sessions 01"), "{err}");
}
