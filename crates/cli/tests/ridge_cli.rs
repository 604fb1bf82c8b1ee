//! `brainrecon ridge …` end to end: the flags of a fit and a prediction on a committed
//! scikit-learn fixture of crates/ridge, and bad input (exit 2, nothing written). The fits'
//! numbers against every fixture, shards + merge and the scores are checked on the library
//! (crates/routes/tests/arrays.rs).

use brainrecon_formats::npy;
use brainrecon_ridge::RidgeModel;
use brainrecon_testkit::{max_rel_err, ArrayFixture};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Exit code, stdout and stderr of `brainrecon ARGS`.
fn brainrecon(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .output()
        .expect("run brainrecon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = brainrecon(args);
    assert_eq!(code, 0, "brainrecon {args:?} failed: {stderr}");
    stdout
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes a ridge fixture's array `key` to `dir/key.npy` as float32 (how the inputs are stored).
fn write_f32(fixture: &ArrayFixture, key: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("{key}.npy"));
    npy::write(&path, &fixture.shape(key), &fixture.f32_values(key)).unwrap();
    path
}

/// `--alphas` of a ridge fixture's grid.
fn alphas_arg(fixture: &ArrayFixture) -> String {
    fixture
        .values("alphas")
        .iter()
        .map(|a| format!("{a:e}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `ridge fit` + `ridge predict` on a fixture; checks alphas and predictions against the
/// Python reference with the tolerance of crates/ridge/tests/reference.rs.
fn check_against_reference(name: &str, extra: &[&str]) {
    let fixture = ArrayFixture::ridge(name);
    let dir = tempfile::tempdir().unwrap();
    let x = write_f32(&fixture, "x", dir.path());
    let y = write_f32(&fixture, "y", dir.path());
    let x_test = write_f32(&fixture, "x_test", dir.path());
    let model = dir.path().join("model");
    let pred = dir.path().join("pred.npy");
    let alphas = alphas_arg(&fixture);
    let mut args = vec![
        "ridge",
        "fit",
        "--x",
        s(&x),
        "--y",
        s(&y),
        "--alphas",
        &alphas,
        "--out",
        s(&model),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    ok(&[
        "ridge",
        "predict",
        "--model",
        s(&model),
        "--x",
        s(&x_test),
        "--out",
        s(&pred),
    ]);

    let fitted = RidgeModel::load(&model).unwrap();
    assert_eq!(
        fitted.dual.is_some(),
        extra.contains(&"--dual"),
        "{name}: form"
    );
    // the fixtures' grids come from np.logspace: compare alphas to 1e-9 relative
    let expected = fixture.values("best_alphas");
    assert_eq!(fitted.alphas.len(), expected.len());
    for (a, e) in fitted.alphas.iter().zip(&expected) {
        assert!(
            ((a - e) / e).abs() < 1e-9,
            "{name}: chose alpha {a}, reference {e}"
        );
    }
    let predicted = npy::read_f32(&pred).unwrap();
    assert_eq!(predicted.shape, fixture.shape("predictions"));
    let predicted: Vec<f64> = predicted.data.iter().map(|&v| v as f64).collect();
    let err = max_rel_err(&predicted, &fixture.values("predictions"));
    assert!(err < 1e-5, "{name}: predictions off by {err:e}");
}

#[test]
fn loo_tall_with_intercept_matches_sklearn() {
    check_against_reference("loo_tall_intercept", &["--cv", "loo"]);
}

/// A small deterministic problem: X (n×p), Y (n×t) row-major.
fn write_problem(dir: &Path, n: usize, p: usize, t: usize) -> (PathBuf, PathBuf) {
    let x: Vec<f32> = (0..n * p)
        .map(|k| ((k * 7919 % 1013) as f32 / 1013.0 - 0.5) + (k as f32 * 0.37).sin())
        .collect();
    let y: Vec<f32> = (0..n * t)
        .map(|k| {
            let (i, j) = (k / t, k % t);
            (0..p)
                .map(|c| x[i * p + c] * ((c + j) % 4) as f32)
                .sum::<f32>()
                + ((i * 31 + j) % 13) as f32 * 0.2
        })
        .collect();
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    npy::write(&xp, &[n, p], &x).unwrap();
    npy::write(&yp, &[n, t], &y).unwrap();
    (xp, yp)
}

/// Runs a failing command: exit 2, one message naming `names`, no output written.
fn fails(args: &[&str], names: &[&str], out: &Path) {
    let (code, stdout, stderr) = brainrecon(args);
    assert_eq!(
        code, 2,
        "brainrecon {args:?}: expected exit 2, got {code}\n{stdout}{stderr}"
    );
    for name in names {
        assert!(
            stderr.contains(name),
            "message should name '{name}': {stderr}"
        );
    }
    assert!(
        !out.exists(),
        "{} was written by a failing command",
        out.display()
    );
}

#[test]
fn bad_input_exits_2_with_a_clear_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = write_problem(dir.path(), 12, 3, 4);
    let out = dir.path().join("model");
    let fit = |extra: &[&str], names: &[&str]| {
        let mut args = vec!["ridge", "fit", "--out", s(&out)];
        args.extend_from_slice(extra);
        fails(&args, names, &out);
    };

    // rows of X and Y disagree
    let y_short = dir.path().join("y_short.npy");
    npy::write(&y_short, &[11, 4], &[0.5f32; 44]).unwrap();
    fit(
        &["--x", s(&x), "--y", s(&y_short)],
        &["y_short.npy", "12 rows"],
    );

    // NaN in X, infinity in Y
    let mut values = npy::read_f32(&x).unwrap().data;
    values[7] = f32::NAN;
    let x_nan = dir.path().join("x_nan.npy");
    npy::write(&x_nan, &[12, 3], &values).unwrap();
    fit(
        &["--x", s(&x_nan), "--y", s(&y)],
        &["x_nan.npy", "row 2, column 1", "finite"],
    );
    let mut values = npy::read_f32(&y).unwrap().data;
    values[5] = f32::INFINITY;
    let y_inf = dir.path().join("y_inf.npy");
    npy::write(&y_inf, &[12, 4], &values).unwrap();
    fit(&["--x", s(&x), "--y", s(&y_inf)], &["y_inf.npy", "finite"]);

    // empty or invalid alpha grid
    fit(
        &["--x", s(&x), "--y", s(&y), "--alphas", ""],
        &["--alphas", "empty"],
    );
    fit(
        &["--x", s(&x), "--y", s(&y), "--alphas", " , "],
        &["--alphas", "empty"],
    );
    fit(
        &["--x", s(&x), "--y", s(&y), "--alphas", "1,-2"],
        &["--alphas", "-2"],
    );

    // not .npy files: a CSV renamed to .npy, and a text file
    let csv = dir.path().join("table.npy");
    std::fs::write(&csv, "a,b,c\n1,2,3\n").unwrap();
    fit(&["--x", s(&csv), "--y", s(&y)], &["table.npy", ".npy"]);
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes\n").unwrap();
    fit(&["--x", s(&x), "--y", s(&text)], &["notes.txt", ".npy"]);
    fit(
        &["--x", s(&dir.path().join("missing.npy")), "--y", s(&y)],
        &["missing.npy"],
    );

    // shard out of range (0-based) or malformed
    fit(
        &["--x", s(&x), "--y", s(&y), "--shard", "3/3"],
        &["--shard", "0-based"],
    );
    fit(
        &["--x", s(&x), "--y", s(&y), "--shard", "0/5"],
        &["--shard", "4 targets"],
    );
    fit(
        &["--x", s(&x), "--y", s(&y), "--shard", "one/two"],
        &["--shard"],
    );

    // the dual form on a tall X (12 × 3), or with shards
    fit(
        &["--x", s(&x), "--y", s(&y), "--dual"],
        &["--dual", "x.npy", "12 rows and 3 columns"],
    );
    std::fs::create_dir(dir.path().join("wide")).unwrap();
    let (wide_x, wide_y) = write_problem(&dir.path().join("wide"), 6, 10, 4);
    fit(
        &[
            "--x",
            s(&wide_x),
            "--y",
            s(&wide_y),
            "--dual",
            "--shard",
            "0/2",
        ],
        &["--dual", "--shard"],
    );

    // groups: wrong length, or with LOO
    let groups = dir.path().join("groups.npy");
    npy::write(&groups, &[10], &[1i64; 10]).unwrap();
    fit(
        &[
            "--x",
            s(&x),
            "--y",
            s(&y),
            "--cv",
            "3",
            "--groups",
            s(&groups),
        ],
        &["groups.npy", "(12,)"],
    );
    npy::write(
        &groups,
        &[12],
        &(0..12).map(|i| i / 2).collect::<Vec<i64>>(),
    )
    .unwrap();
    fit(
        &["--x", s(&x), "--y", s(&y), "--groups", s(&groups)],
        &["--groups", "--cv"],
    );

    // predict: feature count differs from the model's; score: shapes differ
    let model = dir.path().join("good");
    ok(&[
        "ridge",
        "fit",
        "--x",
        s(&x),
        "--y",
        s(&y),
        "--out",
        s(&model),
    ]);
    let pred = dir.path().join("pred.npy");
    fails(
        &[
            "ridge",
            "predict",
            "--model",
            s(&model),
            "--x",
            s(&y),
            "--out",
            s(&pred),
        ],
        &["y.npy", "3 columns"],
        &pred,
    );
    let prefix = dir.path().join("scores");
    fails(
        &[
            "ridge",
            "score",
            "--pred",
            s(&x),
            "--y",
            s(&y),
            "--out-prefix",
            s(&prefix),
        ],
        &["x.npy", "(12, 4)"],
        &dir.path().join("scores_r.npy"),
    );
}

#[test]
fn refused_merges_name_the_shard_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = write_problem(dir.path(), 12, 3, 4);
    let shard = |index: usize, alphas: &str| {
        let out = dir.path().join(format!("shard-{index}-{}", alphas.len()));
        ok(&[
            "ridge",
            "fit",
            "--x",
            s(&x),
            "--y",
            s(&y),
            "--shard",
            &format!("{index}/2"),
            "--alphas",
            alphas,
            "--out",
            s(&out),
        ]);
        out
    };
    let (a, b) = (shard(0, "1,10"), shard(1, "1,10"));
    let other_grid = shard(1, "1,10,100");
    let out = dir.path().join("merged");
    let merge = |shards: &[&Path], names: &[&str]| {
        let mut args = vec!["ridge", "merge", "--out", s(&out)];
        for shard in shards {
            args.extend(["--models", s(shard)]);
        }
        fails(&args, names, &out);
        assert!(!dir.path().join("merged.partial").exists());
    };
    merge(
        &[&a, &other_grid],
        &["shard-1-8", "alpha_grid", "shard-0-4"],
    );
    merge(&[&a], &["shard-0-4", "cover targets 0..2 of 4"]);
    merge(&[&a, &a, &b], &["shard-0-4", "target_range"]);
    // A shard whose weights were damaged after its model.json was written.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(b.join("model.json"), broken.join("model.json")).unwrap();
    std::fs::write(broken.join("weights.safetensors"), b"not safetensors").unwrap();
    merge(&[&a, &broken], &["broken"]);
    // Merged, the model records how many shards it came from, not one shard's index.
    let merged = ok(&[
        "ridge",
        "merge",
        "--models",
        s(&b),
        "--models",
        s(&a),
        "--out",
        s(&out),
    ]);
    assert!(merged.contains('4'), "{merged}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(json["metadata"]["merged_shards"], 2, "{json}");
    assert!(json["metadata"].get("shard").is_none(), "{json}");
}
