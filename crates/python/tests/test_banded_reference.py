"""brainrecon.KernelRidgeCV, MultipleKernelRidgeCV and BandedRidgeCV against himalaya 0.4.11
(same candidates: explicit gamma arrays), and scikit-learn's estimator protocol."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import brainrecon

himalaya_kernel = pytest.importorskip("himalaya.kernel_ridge")
himalaya_ridge = pytest.importorskip("himalaya.ridge")

ALPHAS = np.logspace(-1, 4, 11)
RTOL = 1e-4
# every band weight > 0: himalaya's BandedRidgeCV takes the SVD of √γ·X, which is NaN at γ = 0
GAMMAS = np.array([[0.5, 0.5], [0.9, 0.1], [0.1, 0.9], [0.99, 0.01], [0.02, 0.98], [0.3, 0.7]])
P1, P2 = 8, 30
BANDS = [slice(0, P1), slice(P1, P1 + P2)]


def two_bands(n, t, seed, offset=0.0):
    """Two feature bands, each driving some targets; a constant column and an offset stress
    the centring."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, P1 + P2))
    X[:, 3] = 1.0
    X += offset
    W = rng.standard_normal((P1 + P2, t))
    W[:P1, : t // 3] *= 5
    W[P1:, t // 3: 2 * t // 3] *= 3
    Y = (X - offset) @ W + 3 * rng.standard_normal((n, t)) + 2.0
    return X, Y, rng.standard_normal((20, P1 + P2)) + offset


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def kernels(X, X_fit):
    return np.stack([X[:, b] @ X_fit[:, b].T for b in BANDS])


def himalaya_params():
    return dict(n_iter=GAMMAS, alphas=ALPHAS, progress_bar=False)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(60, 6), (200, 4)], ids=["dual", "primal"])
def test_kernel_ridge_cv_matches_himalaya(fit_intercept, shape):
    X, Y, X_test = two_bands(*shape, seed=1)
    ours = brainrecon.KernelRidgeCV(ALPHAS, cv=5, fit_intercept=fit_intercept).fit(X, Y)
    ref = himalaya_kernel.KernelRidgeCV(alphas=ALPHAS, cv=5, fit_intercept=fit_intercept, warn=False).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)
    assert len(np.unique(ours.best_alphas_)) >= 2
    assert ours.dual_coef_.shape == ref.dual_coef_.shape == (shape[0], shape[1])
    assert relative_error(ours.dual_coef_, ref.dual_coef_) < RTOL
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=RTOL)
    assert relative_error(ours.predict(X_test), ref.predict(X_test)) < RTOL
    assert ours.X_fit_ is X or np.array_equal(ours.X_fit_, ref.X_fit_)
    if fit_intercept:
        np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=RTOL)


def test_offset_features_match_exact_ridge_at_the_chosen_alphas():
    # with a 50 offset himalaya's kernel-form fit drifts by ~4e-4 (its uncentred kernel has
    # entries ~1e5): the reference is scikit-learn's Ridge at the alphas chosen, on the same
    # float32-rounded inputs brainrecon stores
    from sklearn.linear_model import Ridge
    X, Y, X_test = (a.astype(np.float32).astype(np.float64) for a in two_bands(200, 4, seed=1, offset=50.0))
    ours = brainrecon.KernelRidgeCV(ALPHAS, cv=5).fit(X, Y)
    exact = np.stack([Ridge(alpha=a).fit(X, Y[:, j]).predict(X_test) for j, a in enumerate(ours.best_alphas_)], 1)
    assert relative_error(ours.predict(X_test), exact) < 1e-5
    ref = himalaya_kernel.KernelRidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True, warn=False).fit(X - X.mean(0), Y)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)


def test_kernel_ridge_cv_one_target_and_splitter():
    X, Y, X_test = two_bands(50, 3, seed=2)
    folds = list(KFold(4, shuffle=True, random_state=0).split(X))
    ours = brainrecon.KernelRidgeCV(ALPHAS, cv=KFold(4, shuffle=True, random_state=0)).fit(X, Y[:, 1])
    ref = himalaya_kernel.KernelRidgeCV(alphas=ALPHAS, cv=folds, fit_intercept=True, warn=False).fit(X, Y[:, 1])
    assert ours.dual_coef_.shape == (50,) and ours.predict(X_test).shape == (20,)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)
    assert relative_error(ours.predict(X_test), ref.predict(X_test)) < RTOL


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_multiple_kernel_ridge_cv_matches_himalaya(fit_intercept):
    X, Y, X_test = two_bands(60, 6, seed=3)
    ours = brainrecon.MultipleKernelRidgeCV(BANDS, solver_params=himalaya_params(),
                                            fit_intercept=fit_intercept).fit(X, Y)
    ref = himalaya_kernel.MultipleKernelRidgeCV(kernels="precomputed", solver_params=himalaya_params(),
                                                fit_intercept=fit_intercept).fit(kernels(X, X), Y)
    np.testing.assert_allclose(ours.deltas_, ref.deltas_, rtol=RTOL)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)
    # the search is not trivial: targets pick different band weights
    assert len({tuple(d) for d in np.round(ours.deltas_.T, 6)}) >= 3
    assert relative_error(ours.dual_coef_, ref.dual_coef_) < RTOL
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=RTOL)
    assert relative_error(ours.predict(X_test), ref.predict(kernels(X_test, X))) < RTOL
    if not fit_intercept:
        split = ours.predict(X_test, split=True)
        assert split.shape == (2, 20, 6)
        assert relative_error(split, ref.predict(kernels(X_test, X), split=True)) < RTOL


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_banded_ridge_cv_matches_himalaya(fit_intercept):
    X, Y, X_test = two_bands(90, 6, seed=4)
    # groups given out of order: bands are the labels in increasing order, -1 leaves a column out
    groups = np.r_[np.full(P1, 3), np.full(P2, 1)]
    groups[5] = -1
    ours = brainrecon.BandedRidgeCV(groups=groups, solver_params=himalaya_params(),
                                    fit_intercept=fit_intercept).fit(X, Y)
    ref = himalaya_ridge.BandedRidgeCV(groups=groups, solver_params=himalaya_params(),
                                       fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_allclose(ours.deltas_, ref.deltas_, rtol=RTOL)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-12)
    assert ours.coef_.shape == ref.coef_.shape == (P1 + P2 - 1, 6)
    assert relative_error(ours.coef_, ref.coef_) < RTOL
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=RTOL)
    assert relative_error(ours.predict(X_test), ref.predict(X_test)) < RTOL
    if not fit_intercept:
        assert relative_error(ours.predict(X_test, split=True), ref.predict(X_test, split=True)) < RTOL
        y_test = X_test @ np.ones((P1 + P2, 6))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # himalaya warns that y_test is not zero-mean
            expected = ref.score(X_test, y_test, split=True)
        np.testing.assert_allclose(ours.score(X_test, y_test, split=True), expected, rtol=RTOL)


def test_r2_score_split_matches_himalaya_on_centred_targets():
    X, Y, _ = two_bands(80, 5, seed=5)
    fit = brainrecon.BandedRidgeCV(groups=np.r_[np.zeros(P1), np.ones(P2)],
                                   solver_params=himalaya_params()).fit(X, Y)
    from himalaya.scoring import r2_score_split
    centred = Y - Y.mean(0)
    parts = fit.predict(X, split=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = r2_score_split(centred, parts)
    np.testing.assert_allclose(fit.score(X, Y, split=True), expected, rtol=1e-6)
    # the parts plus the target means are the joint prediction
    np.testing.assert_allclose(parts.sum(0) + Y.mean(0), fit.predict(X), rtol=1e-6, atol=1e-6)


def test_dirichlet_search_is_seeded_and_on_the_simplex():
    X, Y, _ = two_bands(50, 3, seed=6)
    params = dict(n_iter=12, alphas=ALPHAS, concentration=[0.1, 1.0])
    a = brainrecon.MultipleKernelRidgeCV(BANDS, solver_params=params, random_state=3).fit(X, Y)
    b = brainrecon.MultipleKernelRidgeCV(BANDS, solver_params=params, random_state=3).fit(X, Y)
    np.testing.assert_array_equal(a.deltas_, b.deltas_)
    assert a.cv_scores_.shape == (12, 3)
    np.testing.assert_allclose((np.exp(a.deltas_) * a.best_alphas_).sum(0), 1.0, rtol=1e-12)


@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("cls", ["KernelRidgeCV", "MultipleKernelRidgeCV", "BandedRidgeCV"])
def test_non_finite_values_are_value_errors_naming_the_argument(where, cls):
    X, Y, _ = two_bands(30, 2, seed=7)
    (X if where == "X" else Y)[4, 1] = np.nan
    with pytest.raises(ValueError, match=rf"^{where} contains a non-finite value \(NaN\) at row 4, column 1"):
        getattr(brainrecon, cls)().fit(X, Y)


def test_bad_options_are_named():
    X, Y, _ = two_bands(30, 2, seed=8)
    with pytest.raises(ValueError, match=r"gamma candidate 0 \[0.3\] sums to 0.3"):
        brainrecon.BandedRidgeCV(solver_params={"n_iter": [[0.3]]}).fit(X, Y)
    with pytest.raises(ValueError, match="solver_params: unsupported keys \\['jitter'\\]"):
        brainrecon.BandedRidgeCV(solver_params={"jitter": 1}).fit(X, Y)
    with pytest.raises(ValueError, match="kernel: only 'linear'"):
        brainrecon.KernelRidgeCV(kernel="rbf").fit(X, Y)
    with pytest.raises(ValueError, match=r"bands\[1\]: selects no column"):
        brainrecon.MultipleKernelRidgeCV([slice(0, 3), slice(5, 5)]).fit(X, Y)
    with pytest.raises(ValueError, match="alpha -1 is not strictly positive"):
        brainrecon.KernelRidgeCV(alphas=[1.0, -1.0]).fit(X, Y)
    fit = brainrecon.MultipleKernelRidgeCV(BANDS).fit(X, Y)
    X[0, 2] = np.inf
    with pytest.raises(ValueError, match=r"^X contains a non-finite value \(inf\) at row 0, column 2"):
        fit.predict(X)


@parametrize_with_checks([brainrecon.KernelRidgeCV(cv=3), brainrecon.MultipleKernelRidgeCV(cv=3),
                          brainrecon.BandedRidgeCV(cv=3, solver_params={"n_iter": 3, "alphas": [0.1, 1.0]})],
                         expected_failed_checks=lambda est: {})
def test_check_estimator(estimator, check):
    check(estimator)


def test_clone_params_pipeline_and_grid_search():
    est = brainrecon.MultipleKernelRidgeCV(BANDS, solver_params={"n_iter": GAMMAS, "alphas": ALPHAS}, cv=4)
    copy = clone(est)
    assert copy is not est and copy.get_params()["bands"] == BANDS
    copy.set_params(fit_intercept=False)
    assert est.fit_intercept and not copy.fit_intercept
    X, Y, _ = two_bands(120, 4, seed=9)
    X *= np.linspace(0.1, 10, P1 + P2)
    for model in [brainrecon.KernelRidgeCV(ALPHAS), est,
                  brainrecon.BandedRidgeCV(np.r_[np.zeros(P1), np.ones(P2)], solver_params=himalaya_params())]:
        name = type(model).__name__.lower()
        pipe = make_pipeline(StandardScaler(), model)
        grid = GridSearchCV(pipe, {f"{name}__fit_intercept": [True, False]}, cv=KFold(3)).fit(X, Y)
        assert grid.best_params_[f"{name}__fit_intercept"] is True
        assert grid.best_score_ > 0.5
        assert grid.predict(X).shape == (120, 4)


def test_groups_are_routed_through_fit():
    X, Y, _ = two_bands(60, 3, seed=10)
    groups = np.repeat(np.arange(12), 5)
    a = brainrecon.KernelRidgeCV(ALPHAS, cv=GroupKFold(4)).fit(X, Y, groups=groups)
    splits = list(GroupKFold(4).split(X, Y, groups))
    ref = himalaya_kernel.KernelRidgeCV(alphas=ALPHAS, cv=splits, fit_intercept=True, warn=False).fit(X, Y)
    np.testing.assert_allclose(a.best_alphas_, ref.best_alphas_, rtol=1e-12)
    np.testing.assert_allclose(a.cv_scores_, ref.cv_scores_, rtol=RTOL)
    # cv=int with groups: whole groups in contiguous blocks, as RidgeCV
    b = brainrecon.KernelRidgeCV(ALPHAS, cv=4).fit(X, Y, groups=groups)
    c = brainrecon.KernelRidgeCV(ALPHAS, cv=4).fit(X, Y)
    np.testing.assert_allclose(b.cv_scores_, c.cv_scores_, rtol=1e-6)  # 60 = 4 × 15: same blocks
    pipe = make_pipeline(StandardScaler(), brainrecon.BandedRidgeCV(cv=4))
    pipe.fit(X, Y, bandedridgecv__groups=groups)
    assert pipe.score(X, Y) > 0.5
