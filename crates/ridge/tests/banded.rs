//! Banded ridge, variance splitting and time alignment against himalaya 0.4.11,
//! voxelwise_tutorials 0.2.3 and scipy fixtures (tools/fixtures/banded_fixtures.py).

use brainrecon_ridge::temporal::{delay, delay_mean, lanczos, lanczos_interp, tr_mean};
use brainrecon_ridge::{
    correlation_score_split, r2_score_split, BandedCv, BandedModel, BandedRidgeCv, Candidates,
    RidgeError, Scoring,
};
use faer::{Mat, MatRef};
use serde_json::Value;

struct Case {
    name: String,
    json: Value,
}

impl Case {
    fn load(name: &str) -> Case {
        let path = format!(
            "{}/tests/fixtures/banded/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Case {
            name: name.into(),
            json: serde_json::from_str(&text).unwrap(),
        }
    }

    fn shape(&self, key: &str) -> Vec<usize> {
        self.json["shapes"][key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no shape for {key}", self.name))
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    }

    fn values(&self, key: &str) -> Vec<f64> {
        self.json[key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }

    fn has(&self, key: &str) -> bool {
        !self.json[key].is_null()
    }

    /// Row-major 2-D array `key` (or the 2-D slice `index` of a 3-D one) as f64.
    fn matrix(&self, key: &str) -> Mat<f64> {
        let (shape, values) = (self.shape(key), self.values(key));
        Mat::from_fn(shape[0], shape[1], |i, j| values[i * shape[1] + j])
    }

    fn slice(&self, key: &str, index: usize) -> Mat<f64> {
        let (shape, values) = (self.shape(key), self.values(key));
        let offset = index * shape[1] * shape[2];
        Mat::from_fn(shape[1], shape[2], |i, j| values[offset + i * shape[2] + j])
    }

    fn matrix32(&self, key: &str) -> Mat<f32> {
        f32_of(self.matrix(key).as_ref())
    }

    fn bands(&self, suffix: &str) -> Vec<Mat<f32>> {
        let count = self.json["widths"].as_array().unwrap().len();
        (0..count)
            .map(|b| self.matrix32(&format!("x{b}{suffix}")))
            .collect()
    }
}

fn f32_of(m: MatRef<'_, f64>) -> Mat<f32> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32)
}

fn views(bands: &[Mat<f32>]) -> Vec<MatRef<'_, f32>> {
    bands.iter().map(|b| b.as_ref()).collect()
}

/// Max |actual − reference| over max |reference|.
fn rel_err(actual: MatRef<'_, f64>, reference: MatRef<'_, f64>) -> f64 {
    assert_eq!(
        (actual.nrows(), actual.ncols()),
        (reference.nrows(), reference.ncols()),
        "shapes"
    );
    let (mut diff, mut scale) = (0f64, 0f64);
    for j in 0..reference.ncols() {
        for i in 0..reference.nrows() {
            diff = diff.max((actual[(i, j)] - reference[(i, j)]).abs());
            scale = scale.max(reference[(i, j)].abs());
        }
    }
    diff / scale.max(f64::MIN_POSITIVE)
}

fn f64_of(m: MatRef<'_, f32>) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f64)
}

fn assert_close(what: &str, actual: MatRef<'_, f64>, reference: MatRef<'_, f64>, tol: f64) {
    let err = rel_err(actual, reference);
    assert!(err <= tol, "{what}: relative error {err:e} > {tol:e}");
}

fn estimator(case: &Case) -> BandedRidgeCv {
    let gammas = case.matrix("gammas");
    let candidates = (0..gammas.nrows())
        .map(|g| (0..gammas.ncols()).map(|b| gammas[(g, b)]).collect())
        .collect();
    let cv = match case.has("kfold") {
        true => BandedCv::KFold(case.json["kfold"].as_u64().unwrap() as usize),
        false => BandedCv::Groups(case.values("groups").iter().map(|&g| g as i64).collect()),
    };
    BandedRidgeCv {
        alphas: case.values("alphas"),
        candidates: Candidates::Explicit(candidates),
        cv,
        scoring: match case.json["scoring"].as_str().unwrap() {
            "r2" => Scoring::R2,
            _ => Scoring::NegMse,
        },
        fit_intercept: case.json["fit_intercept"].as_bool().unwrap(),
        target_chunk: 4, // several chunks, the last one ragged
    }
}

fn fit_case(name: &str) -> (Case, BandedModel, Vec<Mat<f32>>) {
    let case = Case::load(name);
    let train = case.bands("");
    let model = estimator(&case)
        .fit(&views(&train), case.matrix32("y").as_ref())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (case, model, train)
}

/// Hyperparameters, CV scores, weights and predictions against himalaya.
fn check_against_himalaya(name: &str) {
    let (case, model, train) = fit_case(name);
    let chosen: Vec<usize> = case
        .values("chosen_candidate")
        .iter()
        .map(|&c| c as usize)
        .collect();
    assert_eq!(model.best_candidate, chosen, "{name}: chosen candidates");
    for (a, e) in model.alphas.iter().zip(case.values("best_alphas")) {
        assert!((a / e - 1.0).abs() < 1e-9, "{name}: alpha {a} vs {e}");
    }
    assert_close(
        &format!("{name}: best gammas"),
        model.best_gammas().as_ref(),
        case.matrix("best_gammas").as_ref(),
        1e-12,
    );
    check_deltas(&case, &model);
    let tol = 1e-4;
    assert_close(
        &format!("{name}: cv_scores"),
        f64_of(model.cv_scores.as_ref()).as_ref(),
        case.matrix("cv_scores").as_ref(),
        tol,
    );
    assert_close(
        &format!("{name}: dual coefficients"),
        f64_of(model.dual.as_ref()).as_ref(),
        case.matrix("dual").as_ref(),
        tol,
    );
    for (b, weights) in model.primal.iter().enumerate() {
        assert_close(
            &format!("{name}: primal weights of band {b}"),
            f64_of(weights.as_ref()).as_ref(),
            case.matrix(&format!("primal{b}")).as_ref(),
            tol,
        );
    }
    check_intercept(&case, &model, &train);
    let test = case.bands("_test");
    let pred = model.predict(&views(&test)).unwrap();
    assert_close(
        &format!("{name}: predictions"),
        f64_of(pred.as_ref()).as_ref(),
        case.matrix("predictions").as_ref(),
        tol,
    );
    check_split(&case, &model, &test, pred.as_ref());
}

fn check_deltas(case: &Case, model: &BandedModel) {
    let deltas = model.deltas();
    for (b, row) in case.json["deltas"].as_array().unwrap().iter().enumerate() {
        for (j, value) in row.as_array().unwrap().iter().enumerate() {
            match value.as_f64() {
                None => assert_eq!(deltas[(b, j)], f64::NEG_INFINITY, "{}: delta", case.name),
                Some(e) => assert!(
                    (deltas[(b, j)] - e).abs() < 1e-9 * e.abs().max(1.0),
                    "{}: delta[{b}, {j}] {} vs {e}",
                    case.name,
                    deltas[(b, j)]
                ),
            }
        }
    }
}

/// The raw-feature intercept: himalaya's (fitted on centered bands) minus Σ_b meanᵀ primal_b.
fn check_intercept(case: &Case, model: &BandedModel, train: &[Mat<f32>]) {
    let reference = case.values("intercept_centered");
    let expected: Vec<f64> = (0..reference.len())
        .map(|j| {
            let mut value = reference[j];
            if model.fit_intercept {
                for (b, band) in train.iter().enumerate() {
                    let weights = case.matrix(&format!("primal{b}"));
                    for c in 0..band.ncols() {
                        let mean = (0..band.nrows()).map(|i| band[(i, c)] as f64).sum::<f64>()
                            / band.nrows() as f64;
                        value -= mean * weights[(c, j)];
                    }
                }
            }
            value
        })
        .collect();
    let scale = expected.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    for (a, e) in model.intercept.iter().zip(&expected) {
        assert!(
            (*a as f64 - e).abs() <= 1e-4 * scale,
            "{}: intercept {a} vs {e}",
            case.name
        );
    }
}

/// himalaya's `predict(split=True)` without intercept; with one, the parts and the target
/// mean add up to the prediction.
fn check_split(case: &Case, model: &BandedModel, test: &[Mat<f32>], pred: MatRef<'_, f32>) {
    let parts = model.predict_split(&views(test)).unwrap();
    let mut total = Mat::<f64>::from_fn(pred.nrows(), pred.ncols(), |_, j| model.y_mean[j] as f64);
    for (b, part) in parts.iter().enumerate() {
        if case.has(&format!("split{b}")) {
            assert_close(
                &format!("{}: split prediction {b}", case.name),
                f64_of(part.as_ref()).as_ref(),
                case.matrix(&format!("split{b}")).as_ref(),
                1e-4,
            );
        }
        total += f64_of(part.as_ref());
    }
    assert_close(
        &format!("{}: Σ parts + mean", case.name),
        total.as_ref(),
        f64_of(pred).as_ref(),
        1e-5,
    );
}

#[test]
fn two_bands_tall_kfold_r2_flat_column_and_scales_match_himalaya() {
    check_against_himalaya("tall_two_bands_kfold_r2");
}

#[test]
fn three_bands_wide_leave_one_run_out_match_himalaya() {
    check_against_himalaya("wide_three_bands_runs_r2");
}

#[test]
fn three_bands_tall_neg_mse_without_intercept_match_himalaya() {
    check_against_himalaya("tall_three_bands_negmse_nointercept");
}

#[test]
fn two_bands_wide_without_intercept_match_himalaya() {
    check_against_himalaya("wide_two_bands_kfold_nointercept");
}

#[test]
fn chunk_size_does_not_change_the_fit() {
    let (case, model, train) = fit_case("tall_three_bands_negmse_nointercept");
    let one_chunk = BandedRidgeCv {
        target_chunk: 1000,
        ..estimator(&case)
    }
    .fit(&views(&train), case.matrix32("y").as_ref())
    .unwrap();
    assert_eq!(model.best_candidate, one_chunk.best_candidate);
    assert_eq!(model.alphas, one_chunk.alphas);
    assert_close(
        "dual",
        f64_of(model.dual.as_ref()).as_ref(),
        f64_of(one_chunk.dual.as_ref()).as_ref(),
        1e-6,
    );
}

#[test]
fn r2_and_correlation_splits_match_himalaya() {
    let case = Case::load("score_split");
    let y = case.matrix32("y");
    let parts: Vec<Mat<f32>> = (0..3)
        .map(|b| f32_of(case.slice("parts", b).as_ref()))
        .collect();
    let with = r2_score_split(y.as_ref(), &views(&parts), true).unwrap();
    assert_close(
        "r2 split",
        with.as_ref(),
        case.matrix("r2_split").as_ref(),
        1e-6,
    );
    let without = r2_score_split(y.as_ref(), &views(&parts), false).unwrap();
    assert_close(
        "r2 split without correlations",
        without.as_ref(),
        case.matrix("r2_split_nocorr").as_ref(),
        1e-6,
    );
    // with correlations the parts add up to the joint R²
    let joint = case.values("r2_joint");
    for (j, &r2) in joint.iter().enumerate() {
        let sum: f64 = (0..3).map(|b| with[(b, j)]).sum();
        assert!((sum - r2).abs() < 1e-6, "target {j}: Σ {sum} vs joint {r2}");
    }
    let corr = correlation_score_split(y.as_ref(), &views(&parts)).unwrap();
    assert_close(
        "correlation split",
        corr.as_ref(),
        case.matrix("correlation_split").as_ref(),
        1e-6,
    );
}

#[test]
fn delays_match_voxelwise_tutorials_delayer() {
    let case = Case::load("delays");
    let x = case.matrix32("x");
    for key in ["a", "b", "c"] {
        let delays: Vec<i64> = case
            .values(&format!("delays_{key}"))
            .iter()
            .map(|&d| d as i64)
            .collect();
        let delayed = delay(x.as_ref(), &delays).unwrap();
        let expected = case.matrix(&format!("delayed_{key}"));
        assert_eq!(
            f64_of(delayed.as_ref()),
            expected,
            "Delayer({delays:?}) output"
        );
        let mean = delay_mean(x.as_ref(), &delays).unwrap();
        assert_close(
            &format!("delay mean {delays:?}"),
            f64_of(mean.as_ref()).as_ref(),
            case.matrix(&format!("delay_mean_{key}")).as_ref(),
            1e-6,
        );
    }
}

#[test]
fn tr_means_match_scipy_binned_statistic() {
    let case = Case::load("alignment");
    let rows = case.matrix32("per_second");
    let n_trs = case.json["n_trs"].as_u64().unwrap() as usize;
    let tr = case.json["tr"].as_f64().unwrap();
    let means = tr_mean(rows.as_ref(), &case.values("seconds"), tr, n_trs).unwrap();
    assert_close(
        "TR means",
        f64_of(means.as_ref()).as_ref(),
        case.matrix("tr_mean").as_ref(),
        1e-6,
    );
}

#[test]
fn lanczos_resampling_matches_the_interpdata_definition() {
    let case = Case::load("alignment");
    for (t, expected) in case
        .values("lanczos_fun_t")
        .iter()
        .zip(case.values("lanczos_fun"))
    {
        let value = lanczos(0.5, *t, 3.0);
        assert!(
            (value - expected).abs() < 1e-12,
            "lanczos({t}) = {value} vs {expected}"
        );
    }
    let words = case.matrix32("words");
    let times = case.values("word_times");
    for key in ["2", "15"] {
        let new_times = case.values(&format!("tr_times_{key}"));
        let out = lanczos_interp(words.as_ref(), &times, &new_times, 3).unwrap();
        assert_close(
            &format!("Lanczos onto TR times {key}"),
            f64_of(out.as_ref()).as_ref(),
            case.matrix(&format!("lanczos_{key}")).as_ref(),
            1e-6,
        );
    }
}

/// Small valid problem for the error tests: 12 samples, bands of 2 and 3 columns, 2 targets.
fn toy() -> (Mat<f32>, Mat<f32>, Mat<f32>) {
    let a = Mat::from_fn(12, 2, |i, j| ((i * 7 + j * 3) % 5) as f32 - 2.0);
    let b = Mat::from_fn(12, 3, |i, j| ((i * 5 + j) % 7) as f32 * 0.5);
    let y = Mat::from_fn(12, 2, |i, j| (i as f32 * 0.3 + j as f32).sin());
    (a, b, y)
}

fn small_estimator(candidates: Candidates) -> BandedRidgeCv {
    BandedRidgeCv {
        alphas: vec![0.1, 1.0, 10.0],
        candidates,
        cv: BandedCv::KFold(3),
        ..BandedRidgeCv::default()
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let (a, b, y) = toy();
    let ok = small_estimator(Candidates::Explicit(vec![vec![0.5, 0.5]]));
    let err = |e: RidgeError| e.to_string();
    let short = Mat::<f32>::zeros(11, 3);
    let message = err(ok
        .fit(&[a.as_ref(), short.as_ref()], y.as_ref())
        .unwrap_err());
    assert!(
        message.contains("feature band 1 has 11 rows, expected 12"),
        "{message}"
    );
    let mut nan = b.clone();
    nan[(4, 2)] = f32::NAN;
    let message = err(ok.fit(&[a.as_ref(), nan.as_ref()], y.as_ref()).unwrap_err());
    assert!(
        message.contains("feature band 1") && message.contains("row 4, column 2"),
        "{message}"
    );
    let empty = Mat::<f32>::zeros(12, 0);
    let message = err(ok
        .fit(&[a.as_ref(), empty.as_ref()], y.as_ref())
        .unwrap_err());
    assert!(
        message.contains("feature band 1 has no column"),
        "{message}"
    );
    assert!(ok.fit(&[], y.as_ref()).is_err());
    for (gammas, expected) in [
        (vec![vec![0.6, 0.6]], "sums to 1.2"),
        (vec![vec![1.5, -0.5]], "-0.5"),
        (vec![vec![1.0]], "has 1 weights"),
    ] {
        let message = err(small_estimator(Candidates::Explicit(gammas))
            .fit(&[a.as_ref(), b.as_ref()], y.as_ref())
            .unwrap_err());
        assert!(message.contains(expected), "{message}");
    }
    let folds = BandedRidgeCv {
        cv: BandedCv::Groups(vec![1; 12]),
        ..ok.clone()
    };
    assert!(err(folds
        .fit(&[a.as_ref(), b.as_ref()], y.as_ref())
        .unwrap_err())
    .contains("2 distinct"));
    let alphas = BandedRidgeCv {
        alphas: vec![1.0, 0.0],
        ..ok.clone()
    };
    assert!(alphas.fit(&[a.as_ref(), b.as_ref()], y.as_ref()).is_err());
    let model = ok.fit(&[a.as_ref(), b.as_ref()], y.as_ref()).unwrap();
    assert!(model.predict(&[a.as_ref()]).is_err());
    assert!(model.predict(&[b.as_ref(), a.as_ref()]).is_err());
}

#[test]
fn time_alignment_rejects_bad_input() {
    let x = Mat::<f32>::zeros(4, 2);
    assert!(delay(x.as_ref(), &[]).is_err());
    let message = tr_mean(x.as_ref(), &[0.0, 0.5, 1.0, 1.5], 0.25, 8)
        .unwrap_err()
        .to_string();
    assert!(message.contains("TR 1"), "{message}");
    assert!(tr_mean(x.as_ref(), &[0.0, 1.0], 1.0, 2).is_err());
    assert!(lanczos_interp(x.as_ref(), &[0.0, 2.0, 1.0, 3.0], &[0.0, 1.0], 3).is_err());
    assert!(lanczos_interp(x.as_ref(), &[0.0, 1.0, 2.0, 3.0], &[1.0], 3).is_err());
    assert!(lanczos_interp(x.as_ref(), &[0.0, 1.0, 2.0, f64::NAN], &[0.0, 1.0], 3).is_err());
}

#[test]
fn dirichlet_search_starts_uniform_and_is_reproducible() {
    let (a, b, y) = toy();
    let search = small_estimator(Candidates::Dirichlet {
        n_iter: 6,
        concentrations: vec![0.1, 1.0],
        seed: 3,
    });
    let first = search.fit(&[a.as_ref(), b.as_ref()], y.as_ref()).unwrap();
    let again = search.fit(&[a.as_ref(), b.as_ref()], y.as_ref()).unwrap();
    assert_eq!(first.candidates.len(), 6);
    assert_eq!(first.candidates[0], vec![0.5, 0.5]);
    assert_eq!(first, again);
    // each target's chosen candidate scores at least as well as every other one
    for j in 0..first.n_targets() {
        let best = first.cv_scores[(first.best_candidate[j], j)];
        for g in 0..6 {
            assert!(first.cv_scores[(g, j)] <= best + 1e-6);
        }
    }
}

/// With many targets (t > n_alphas × held-out rows) the search forms one resolvent per alpha
/// instead of projecting each chunk; the replicated targets must still match himalaya.
fn check_many_targets(name: &str) {
    let case = Case::load(name);
    let train = case.bands("");
    let y = case.matrix32("y");
    let copies = 20;
    let t = y.ncols();
    let many = Mat::from_fn(y.nrows(), t * copies, |i, j| y[(i, j % t)]);
    let model = BandedRidgeCv {
        target_chunk: 37,
        ..estimator(&case)
    }
    .fit(&views(&train), many.as_ref())
    .unwrap();
    let chosen = case.values("chosen_candidate");
    let alphas = case.values("best_alphas");
    let scores = case.matrix("cv_scores");
    let dual = case.matrix("dual");
    for j in 0..t * copies {
        assert_eq!(
            model.best_candidate[j],
            chosen[j % t] as usize,
            "{name}: target {j}"
        );
        assert!((model.alphas[j] / alphas[j % t] - 1.0).abs() < 1e-9);
    }
    let pick = |m: &Mat<f64>| Mat::from_fn(m.nrows(), t * copies, |i, j| m[(i, j % t)]);
    assert_close(
        &format!("{name}: cv_scores (resolvents)"),
        f64_of(model.cv_scores.as_ref()).as_ref(),
        pick(&scores).as_ref(),
        1e-4,
    );
    assert_close(
        &format!("{name}: dual (resolvents)"),
        f64_of(model.dual.as_ref()).as_ref(),
        pick(&dual).as_ref(),
        1e-4,
    );
}

#[test]
fn many_targets_primal_view_match_himalaya() {
    check_many_targets("tall_two_bands_kfold_r2");
}

#[test]
fn many_targets_dual_view_match_himalaya() {
    check_many_targets("wide_three_bands_runs_r2");
}

#[test]
fn row_major_input_gives_the_same_model() {
    let (case, model, train) = fit_case("wide_two_bands_kfold_nointercept");
    let row_major = |m: &Mat<f32>| {
        let data: Vec<f32> = (0..m.nrows())
            .flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)]))
            .collect();
        (data, (m.nrows(), m.ncols()))
    };
    let bands: Vec<_> = train.iter().map(row_major).collect();
    let (y, y_shape) = row_major(&case.matrix32("y"));
    let refs: Vec<(&[f32], (usize, usize))> =
        bands.iter().map(|(d, s)| (d.as_slice(), *s)).collect();
    let again = estimator(&case).fit_row_major(&refs, &y, y_shape).unwrap();
    assert_eq!(again.best_candidate, model.best_candidate);
    assert_eq!(again.alphas, model.alphas);
    assert_close(
        "dual (row-major input)",
        f64_of(again.dual.as_ref()).as_ref(),
        f64_of(model.dual.as_ref()).as_ref(),
        1e-6,
    );
    let short = estimator(&case).fit_row_major(&refs, &y[1..], y_shape);
    assert!(matches!(short, Err(RidgeError::Shape(_))));
}
