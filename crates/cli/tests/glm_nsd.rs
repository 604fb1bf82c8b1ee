//! The README's NSD commands (`glm --nsd`, then `glm compare`) refusing bad input on a tiny NSD
//! session in nsddata_timeseries' layout (tools/fixtures/nsd_timeseries.py: int16 runs at
//! 4/3 s, one 73k ID or 0 per volume in the designs, NSD's brain mask and nsdgeneral). The fit
//! itself and its agreement with GLMsingle are checked through the library in
//! crates/routes/tests/glm_folder.rs.
mod common;

use common::{brainrecon, p as s, user_error};
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

    // typea is refused before any folder is read.
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
}
