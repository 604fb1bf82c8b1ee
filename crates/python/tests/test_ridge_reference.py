"""brainrecon.RidgeCV against scikit-learn's RidgeCV (leave-one-out) and himalaya's RidgeCV (K-fold)."""

import numpy as np
import pytest
import sklearn.linear_model
from sklearn.model_selection import GroupKFold, KFold, PredefinedSplit

import brainrecon

himalaya_ridge = pytest.importorskip("himalaya.ridge")

ALPHAS = np.logspace(-2, 4, 13)
RTOL = 1e-5


def planted(n, p, t, seed, noise=1.0, offset=0.0):
    """Targets linear in X plus noise; a few targets are pure noise (they want the largest alphas)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + offset
    W = rng.standard_normal((p, t)) * rng.uniform(0.0, 1.0, size=t)
    W[:, : max(1, t // 4)] = 0.0
    Y = X @ W + noise * rng.standard_normal((n, t)) + 3.0
    return X, Y


def ill_conditioned(n, p, t, seed):
    """Nearly collinear columns (condition number ~1e5), a constant column and a 1e3 offset."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, p // 2))
    X = np.hstack([base, base + 1e-5 * rng.standard_normal((n, p - p // 2))])
    X[:, 0] = 1.0
    X += 1e3
    Y = base @ rng.standard_normal((p // 2, t)) + rng.standard_normal((n, t))
    return X, Y


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def predictions_close(ours, reference, X):
    assert relative_error(ours.predict(X), reference.predict(X)) < RTOL


@pytest.mark.parametrize("shape", [(80, 20, 12), (40, 120, 9)], ids=["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_loo_matches_sklearn(shape, fit_intercept):
    X, Y = planted(*shape, seed=1)
    ours = brainrecon.RidgeCV(ALPHAS, fit_intercept=fit_intercept).fit(X, Y)
    ref = sklearn.linear_model.RidgeCV(ALPHAS, alpha_per_target=True, fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    np.testing.assert_allclose(ours.best_score_, ref.best_score_, rtol=RTOL)
    assert relative_error(ours.coef_, ref.coef_) < RTOL
    predictions_close(ours, ref, X)
    # the chosen alphas span the grid: the comparison is not on one trivial alpha
    assert len(np.unique(ours.alpha_)) >= 3


def test_loo_matches_sklearn_on_ill_conditioned_data():
    X, Y = ill_conditioned(120, 40, 8, seed=2)
    # the engine stores X as float32: the reference sees the same rounded values (rounding X
    # itself moves these predictions by ~3e-5 relative, see the README)
    X, Y = X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)
    ours = brainrecon.RidgeCV(ALPHAS).fit(X, Y)
    ref = sklearn.linear_model.RidgeCV(ALPHAS, alpha_per_target=True).fit(X, Y)
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    predictions_close(ours, ref, X)


def test_single_target_and_shared_alpha_match_sklearn():
    X, Y = planted(70, 15, 6, seed=3)
    ours = brainrecon.RidgeCV(ALPHAS, alpha_per_target=False).fit(X, Y)
    ref = sklearn.linear_model.RidgeCV(ALPHAS, alpha_per_target=False).fit(X, Y)
    assert ours.alpha_ == ref.alpha_
    np.testing.assert_allclose(ours.best_score_, ref.best_score_, rtol=RTOL)
    predictions_close(ours, ref, X)
    y = Y[:, 2]
    ours = brainrecon.RidgeCV(ALPHAS).fit(X, y)
    ref = sklearn.linear_model.RidgeCV(ALPHAS).fit(X, y)
    assert ours.coef_.shape == ref.coef_.shape == (15,)
    assert isinstance(ours.alpha_, float) and ours.alpha_ == ref.alpha_
    assert ours.predict(X).shape == (70,)
    predictions_close(ours, ref, X)


@pytest.mark.parametrize("shape", [(90, 25, 10), (50, 140, 7)], ids=["primal", "dual"])
def test_kfold_matches_himalaya(shape):
    X, Y = planted(*shape, seed=4)
    ours = brainrecon.RidgeCV(ALPHAS, cv=5).fit(X, Y)
    ref = himalaya_ridge.RidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=RTOL)
    assert ours.cv_scores_per_alpha_.shape == (len(ALPHAS), shape[2])
    # himalaya's coef_ is (n_features, n_targets): brainrecon keeps scikit-learn's orientation
    assert relative_error(ours.coef_, ref.coef_.T) < RTOL
    assert relative_error(ours.predict(X), ref.predict(X)) < RTOL


def test_kfold_ill_conditioned_matches_himalaya():
    X, Y = ill_conditioned(100, 30, 6, seed=5)
    X, Y = X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)
    ours = brainrecon.RidgeCV(ALPHAS, cv=4).fit(X, Y)
    ref = himalaya_ridge.RidgeCV(alphas=ALPHAS, cv=4, fit_intercept=True).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)
    assert relative_error(ours.predict(X), ref.predict(X)) < RTOL


def test_groups_and_splitters_give_the_folds_himalaya_is_given():
    X, Y = planted(60, 12, 5, seed=6)
    groups = np.repeat(np.arange(20), 3)[np.random.default_rng(0).permutation(60)]
    ours = brainrecon.RidgeCV(ALPHAS, cv=4).fit(X, Y, groups=groups)
    # the same folds, spelled out for himalaya: groups in order of first appearance, 4 blocks
    _, first = np.unique(groups, return_index=True)
    rank = np.argsort(np.argsort(first))[np.searchsorted(np.unique(groups), groups)]
    fold = rank // 5
    ref = himalaya_ridge.RidgeCV(alphas=ALPHAS, cv=PredefinedSplit(fold), fit_intercept=True).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=RTOL)
    # a splitter object: KFold(4) is cv=4, GroupKFold uses fit's groups
    a = brainrecon.RidgeCV(ALPHAS, cv=KFold(4)).fit(X, Y)
    b = brainrecon.RidgeCV(ALPHAS, cv=4).fit(X, Y)
    np.testing.assert_array_equal(a.cv_scores_per_alpha_, b.cv_scores_per_alpha_)
    c = brainrecon.RidgeCV(ALPHAS, cv=GroupKFold(4)).fit(X, Y, groups=groups)
    splits = list(GroupKFold(4).split(X, Y, groups))
    d = himalaya_ridge.RidgeCV(alphas=ALPHAS, cv=splits, fit_intercept=True).fit(X, Y)
    np.testing.assert_allclose(c.best_alphas_, d.best_alphas_, rtol=1e-12)


def test_float32_and_fortran_order_give_the_float64_fit():
    X, Y = planted(64, 16, 4, seed=7)
    reference = brainrecon.RidgeCV(ALPHAS).fit(X, Y)
    for x, y in [(X.astype(np.float32), Y.astype(np.float32)),
                 (np.asfortranarray(X, dtype=np.float32), np.asfortranarray(Y, dtype=np.float32))]:
        fit = brainrecon.RidgeCV(ALPHAS).fit(x, y)
        np.testing.assert_array_equal(fit.alpha_, reference.alpha_)
        np.testing.assert_allclose(fit.coef_, reference.coef_, rtol=1e-5, atol=1e-6)
        assert fit.predict(x).dtype == np.float32
    assert reference.predict(X).dtype == np.float64


def gcv_reference(X, y, alphas):
    """GCV from its definition: -mean((y - H y)^2) / (1 - tr(H)/n)^2, H with the intercept."""
    n = len(X)
    Xc = X - X.mean(0)
    scores = []
    for alpha in alphas:
        H = Xc @ np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T) + 1.0 / n
        residual = y - H @ y
        scores.append(-np.mean(residual ** 2, axis=0) / (1 - np.trace(H) / n) ** 2)
    return np.array(scores)


@pytest.mark.parametrize("shape", [(60, 25, 6), (40, 90, 6)], ids=["primal", "band"])
def test_gcv_matches_its_definition(shape):
    X, Y = planted(*shape, seed=8)
    gcv = brainrecon.RidgeCV(ALPHAS, gcv=True).fit(X, Y)
    expected = gcv_reference(X, Y, ALPHAS)
    np.testing.assert_allclose(gcv.cv_scores_per_alpha_, expected, rtol=1e-5)
    np.testing.assert_array_equal(gcv.alpha_, ALPHAS[np.argmax(expected, axis=0)])


def test_float32_precision_stays_close_to_float64():
    # float32 eigenvalues carry an absolute error ~1e-7·‖XXᵀ‖ (~1e-3 here): alphas far above it
    X, Y = planted(60, 150, 6, seed=8)
    alphas = np.logspace(1, 4, 7)
    f64 = brainrecon.RidgeCV(alphas).fit(X, Y)
    f32 = brainrecon.RidgeCV(alphas, precision="float32").fit(X, Y)
    np.testing.assert_array_equal(f32.alpha_, f64.alpha_)
    assert relative_error(f32.predict(X), f64.predict(X)) < 1e-4


@pytest.mark.parametrize("where,name", [("X", "X"), ("y", "y")])
@pytest.mark.parametrize("bad,text", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_values_are_value_errors_naming_the_argument(where, name, bad, text):
    X, Y = planted(30, 5, 2, seed=9)
    (X if where == "X" else Y)[4, 1] = bad
    with pytest.raises(ValueError, match=rf"^{name} contains a non-finite value \({text}\) at row 4, column 1"):
        brainrecon.RidgeCV().fit(X, Y)


def test_bad_input_messages():
    X, Y = planted(30, 5, 2, seed=10)
    with pytest.raises(ValueError, match="invalid alpha grid: alpha -1 is not strictly positive"):
        brainrecon.RidgeCV(alphas=[1.0, -1.0]).fit(X, Y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        brainrecon.RidgeCV().fit(X, Y[:-1])
    with pytest.raises(ValueError, match="n_folds = 40 must be between 2 and the number of groups"):
        brainrecon.RidgeCV(cv=40).fit(X, Y)
    with pytest.raises(ValueError, match="groups need K-fold"):
        brainrecon.RidgeCV().fit(X, Y, groups=np.arange(30))
    with pytest.raises(ValueError, match="precision: expected 'float64' or 'float32'"):
        brainrecon.RidgeCV(precision="half").fit(X, Y)
    fit = brainrecon.RidgeCV().fit(X, Y)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^X contains a non-finite value \(NaN\) at row 0, column 0"):
        fit.predict(X)


def test_saved_model_round_trips_in_the_cli_format(tmp_path):
    X, Y = planted(50, 10, 3, seed=11)
    fit = brainrecon.RidgeCV(ALPHAS, cv=5).fit(X, Y)
    fit.save_model(tmp_path / "model", metadata={"roi": "nsdgeneral"})
    assert (tmp_path / "model" / "weights.safetensors").exists()
    loaded = brainrecon.load_model(tmp_path / "model")
    # the file stores the intercept in float32, the fitted estimator keeps it in float64
    np.testing.assert_allclose(loaded.predict(X), fit.predict(X), rtol=0, atol=1e-6 * np.abs(fit.predict(X)).max())
    np.testing.assert_array_equal(loaded.best_alphas_, fit.best_alphas_)
    assert loaded.cv == 5
    with pytest.raises(FileNotFoundError, match="model.json"):
        brainrecon.load_model(tmp_path / "absent")


def test_target_shards_merge_to_the_whole_fit(tmp_path):
    X, Y = planted(60, 12, 7, seed=13)
    whole = brainrecon.RidgeCV(ALPHAS, gcv=True).fit(X, Y)
    # shards saved in any order; 7 targets in 3 shards of 3, 2, 2
    ranges = []
    for k in (2, 0, 1):
        part = brainrecon.RidgeCV(ALPHAS, gcv=True).fit(X, Y, shard=(k, 3))
        ranges.append(part.target_range_)
        start, end, total = part.target_range_
        assert part.coef_.shape == (end - start, 12) and total == 7
        np.testing.assert_array_equal(part.best_alphas_, whole.best_alphas_[start:end])
        part.save_model(tmp_path / f"shard{k}")
    assert sorted(ranges) == [(0, 3, 7), (3, 5, 7), (5, 7, 7)]
    assert brainrecon.load_model(tmp_path / "shard1").target_range_ == (3, 5, 7)
    merged = brainrecon.merge_models([tmp_path / f"shard{k}" for k in range(3)], tmp_path / "merged")
    assert merged.target_range_ == (0, 7, 7)
    np.testing.assert_array_equal(merged.best_alphas_, whole.best_alphas_)
    np.testing.assert_allclose(merged.predict(X), whole.predict(X), rtol=0,
                               atol=1e-5 * np.abs(whole.predict(X)).max())
    with pytest.raises(ValueError, match="expected to start at 3"):
        brainrecon.merge_models([tmp_path / "shard0", tmp_path / "shard2"], tmp_path / "gap")
    with pytest.raises(ValueError, match=r"shard: expected \(k, N\) with 0 <= k < N <= n_targets = 7"):
        brainrecon.RidgeCV(ALPHAS).fit(X, Y, shard=(3, 3))


def test_metrics_per_target():
    X, Y = planted(50, 10, 3, seed=12)
    pred = brainrecon.RidgeCV().fit(X, Y).predict(X)
    r = brainrecon.metrics.pearson_per_target(Y, pred)
    expected = [np.corrcoef(Y[:, j], pred[:, j])[0, 1] for j in range(3)]
    np.testing.assert_allclose(r, expected, rtol=1e-5)
    from sklearn.metrics import r2_score
    np.testing.assert_allclose(brainrecon.metrics.r2_per_target(Y, pred),
                               r2_score(Y, pred, multioutput="raw_values"), rtol=1e-4)
