//! Procrustes and ridge alignment against fmralign 0.0.6 (fixtures written by
//! tools/fixtures/align_fixtures.py). Everything in f64; matrices agree to 1e-9 relative to
//! the reference's largest entry, scalars to 1e-9 relative.

use std::path::Path;

use brainrecon_align::procrustes::fit_procrustes;
use brainrecon_align::ridge_align::{fit_ridge_alignment, DEFAULT_ALPHAS, DEFAULT_FOLDS};
use faer::Mat;
use serde_json::Value;

const RTOL: f64 = 1e-9;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    brainrecon_testkit::json(&path)
}

fn mat(v: &Value) -> Mat<f64> {
    let rows = v.as_array().expect("rows");
    let ncols = rows.first().map_or(0, |r| r.as_array().unwrap().len());
    Mat::from_fn(rows.len(), ncols, |i, j| rows[i][j].as_f64().unwrap())
}

fn num(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn assert_scalar(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= RTOL * want.abs().max(f64::MIN_POSITIVE),
        "{what}: got {got}, want {want}"
    );
}

fn assert_mat(what: &str, got: &Mat<f64>, want: &Mat<f64>) {
    assert_eq!(
        (got.nrows(), got.ncols()),
        (want.nrows(), want.ncols()),
        "{what}: shape"
    );
    let diff = (got - want).norm_max();
    let scale = want.norm_max();
    assert!(
        diff <= RTOL * scale,
        "{what}: max |diff| {diff:e} over max |want| {scale:e}"
    );
}

/// The case's source: stored directly or as the exact product Z·A (rank deficient).
fn source(case: &Value) -> Mat<f64> {
    match case.get("x") {
        Some(x) => mat(x),
        None => mat(&case["z"]) * mat(&case["a"]),
    }
}

#[test]
fn procrustes_matches_fmralign() {
    let data = fixture("fmralign_procrustes.json");
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 11);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let x = source(case);
        let y = mat(&case["y"]);
        assert_eq!(
            (x.nrows(), x.ncols(), y.ncols()),
            (
                case["n"].as_u64().unwrap() as usize,
                case["p_x"].as_u64().unwrap() as usize,
                case["p_y"].as_u64().unwrap() as usize
            ),
            "{name}: sizes"
        );
        for res in case["results"].as_array().unwrap() {
            let scaling = res["scaling"].as_bool().unwrap();
            let what = format!("{name} (scaling {scaling})");
            let fit = fit_procrustes(x.as_ref(), y.as_ref(), scaling).unwrap();
            assert_eq!(
                (fit.rotation.nrows(), fit.rotation.ncols()),
                (x.ncols(), y.ncols()),
                "{what}: rotation shape"
            );
            assert_scalar(&format!("{what}: scale"), fit.scale, num(&res["scale"]));
            // The objective ‖sc·X·R − Y‖ holds even where R is not unique.
            let objective = (fit.transform(x.as_ref()) - &y).norm_l2();
            assert_scalar(
                &format!("{what}: objective"),
                objective,
                num(&res["objective"]),
            );
            if let Some(rotation) = case.get("rotation") {
                assert_mat(&format!("{what}: rotation"), &fit.rotation, &mat(rotation));
            }
            if let Some(want) = res.get("transform") {
                assert_mat(
                    &format!("{what}: transform"),
                    &fit.transform(x.as_ref()),
                    &mat(want),
                );
            }
            if let Some(want) = res.get("probe_transform") {
                let probe = mat(&case["probe"]);
                assert_mat(
                    &format!("{what}: probe transform"),
                    &fit.transform(probe.as_ref()),
                    &mat(want),
                );
            }
        }
    }
}

#[test]
fn procrustes_zero_input_is_the_identity_with_unit_scale() {
    let data = fixture("fmralign_procrustes.json");
    for name in ["zero_x", "zero_y"] {
        let case = data["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let fit = fit_procrustes(source(case).as_ref(), mat(&case["y"]).as_ref(), true).unwrap();
        assert_eq!(fit.scale, 1.0, "{name}");
        assert_eq!(fit.rotation, mat(&case["rotation"]), "{name}");
    }
}

/// The scale is Σs/‖X‖², not a rule that merely looks close (‖Y‖/‖X‖, Σs/‖Y‖²): each
/// alternative misses the reference on the fixtures.
#[test]
fn procrustes_scale_rule_is_discriminated_by_the_fixtures() {
    let data = fixture("fmralign_procrustes.json");
    let case = &data["cases"][4];
    assert_eq!(case["name"], "dual_30x120_to_80");
    let x = source(case);
    let y = mat(&case["y"]);
    let want = num(&case["results"][1]["scale"]);
    let fit = fit_procrustes(x.as_ref(), y.as_ref(), true).unwrap();
    let sum_s = fit.scale * x.squared_norm_l2();
    for wrong in [y.norm_l2() / x.norm_l2(), sum_s / y.squared_norm_l2()] {
        assert!(
            (wrong - want).abs() > 1e3 * RTOL * want,
            "{wrong} vs {want}"
        );
    }
}

#[test]
fn ridge_alignment_matches_fmralign() {
    let data = fixture("fmralign_ridge.json");
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let x = mat(&case["x"]);
        let y = mat(&case["y"]);
        let alphas: Vec<f64> = match case["alphas"].as_array() {
            Some(a) => a.iter().map(num).collect(),
            None => DEFAULT_ALPHAS.to_vec(),
        };
        let folds = case["cv"].as_u64().map_or(DEFAULT_FOLDS, |k| k as usize);
        let grid: Vec<f64> = case["grid"].as_array().unwrap().iter().map(num).collect();
        assert_eq!(alphas, grid, "{name}: the grid fmralign searched");
        let fit = fit_ridge_alignment(x.as_ref(), y.as_ref(), &alphas, folds).unwrap();
        assert_eq!(fit.alpha, num(&case["alpha"]), "{name}: chosen alpha");
        let scores = case["mean_scores"].as_array().unwrap();
        assert_eq!(fit.cv_scores.len(), scores.len(), "{name}");
        for (i, (got, want)) in fit.cv_scores.iter().zip(scores).enumerate() {
            let want = num(want);
            assert!(
                (got - want).abs() <= RTOL * want.abs().max(1.0),
                "{name}: mean R² of alpha {}: got {got}, want {want}",
                alphas[i]
            );
        }
        assert_mat(&format!("{name}: coef"), &fit.coef, &mat(&case["coef"]));
        let intercept = case["intercept"].as_array().unwrap();
        let want_intercept = Mat::from_fn(1, intercept.len(), |_, j| num(&intercept[j]));
        let got_intercept = Mat::from_fn(1, fit.intercept.len(), |_, j| fit.intercept[j]);
        assert_mat(
            &format!("{name}: intercept"),
            &got_intercept,
            &want_intercept,
        );
        assert_mat(
            &format!("{name}: transform"),
            &fit.transform(x.as_ref()),
            &mat(&case["transform"]),
        );
        let probe = mat(&case["probe"]);
        assert_mat(
            &format!("{name}: probe transform"),
            &fit.transform(probe.as_ref()),
            &mat(&case["probe_transform"]),
        );
    }
}
