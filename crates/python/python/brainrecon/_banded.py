"""himalaya's kernel and banded ridge estimators on linear kernels (KernelRidgeCV,
MultipleKernelRidgeCV, BandedRidgeCV), fitted by brainrecon's banded ridge engine."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils import check_array, check_consistent_length
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _native
from ._ridge import _as_float32, _fold_labels, check_finite

# himalaya's score functions (by name, so that its solver_params dicts work unchanged)
_SCORE_FUNCS = {None: "neg_mean_squared_error", "l2_neg_loss": "neg_mean_squared_error",
                "neg_mean_squared_error": "neg_mean_squared_error", "r2_score": "r2", "r2": "r2"}
_SOLVER_KEYS = {"n_iter", "concentration", "alphas", "score_func", "n_targets_batch",
                "local_alpha", "progress_bar", "n_targets_batch_refit", "n_alphas_batch"}


def _score_name(score_func):
    key = getattr(score_func, "__name__", score_func)
    if key not in _SCORE_FUNCS:
        raise ValueError(f"solver_params['score_func']: expected himalaya's l2_neg_loss or r2_score "
                         f"(or 'neg_mean_squared_error' / 'r2'), found {score_func!r}")
    return _SCORE_FUNCS[key]


def _fold_arguments(cv, X, y, groups):
    """dict(folds=k) or dict(fold_labels=labels) for the engine."""
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if groups is None:
            return dict(folds=int(cv))
        groups = np.asarray(groups)
        if groups.shape != (X.shape[0],):
            raise ValueError(f"groups: expected shape ({X.shape[0]},), found {groups.shape}")
        # groups in order of first appearance, in cv contiguous blocks (as RidgeCV(cv=k))
        _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))[inverse.ravel()]
        n_groups, k = len(first), int(cv)
        if not 2 <= k <= n_groups:
            raise ValueError(f"cv: {k} folds need 2 ≤ folds ≤ the number of groups ({n_groups})")
        sizes = np.full(k, n_groups // k)
        sizes[: n_groups % k] += 1
        block_of_rank = np.repeat(np.arange(k), sizes)
        return dict(fold_labels=block_of_rank[rank].astype(np.int64).tolist())
    if cv is None:
        raise ValueError("cv: expected an int or a splitter, found None (the banded solver has no leave-one-out)")
    labels, _ = _fold_labels(cv, X, y, groups)
    return dict(fold_labels=labels.tolist())


def _band_indices(bands, n_features, name):
    """Column index arrays of each band from slices, index arrays or boolean masks."""
    if bands is None:
        return [np.arange(n_features)]
    if isinstance(bands, (slice, np.ndarray)) or not hasattr(bands, "__len__") or len(bands) == 0:
        raise ValueError(f"{name}: expected a non-empty list of slices or column index arrays, found {bands!r}")
    out = []
    for b, band in enumerate(bands):
        if isinstance(band, slice):
            index = np.arange(n_features)[band]
        else:
            band = np.asarray(band)
            if band.dtype == bool:
                if band.shape != (n_features,):
                    raise ValueError(f"{name}[{b}]: a boolean mask needs shape ({n_features},), found {band.shape}")
                index = np.flatnonzero(band)
            elif band.ndim == 1 and (band.size == 0 or np.issubdtype(band.dtype, np.integer)):
                index = band.astype(np.int64)
                if index.size and (index.min() < -n_features or index.max() >= n_features):
                    raise ValueError(f"{name}[{b}]: column index out of range for {n_features} features")
                index = np.where(index < 0, index + n_features, index)
            else:
                raise ValueError(f"{name}[{b}]: expected a slice, integer indices or a boolean mask, found {band!r}")
        if index.size == 0:
            raise ValueError(f"{name}[{b}]: selects no column of X ({n_features} features)")
        out.append(index)
    return out


def _band_view(x32, index):
    """X's columns ``index``: a strided view (no copy) when they are evenly spaced."""
    if len(index) == 1:
        return x32[:, index[0]:index[0] + 1]
    step = index[1] - index[0]
    if step > 0 and np.all(np.diff(index) == step):
        return x32[:, index[0]:index[-1] + 1:step]
    return np.ascontiguousarray(x32[:, index])


class _BandedRidgeBase(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Shared fit/predict of the three estimators: subclasses give the bands and the search."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags

    def _check_xy(self, X, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False)
        y = check_array(y, ensure_2d=False, dtype=[np.float32, np.float64],
                        ensure_all_finite=False, input_name="y")
        if y.ndim > 2:
            raise ValueError(f"y: expected (n_samples,) or (n_samples, n_targets), found shape {y.shape}")
        check_consistent_length(X, y)
        x32, y32 = _as_float32("X", X), _as_float32("y", y.reshape(len(y), -1))
        check_finite("X", x32)
        check_finite("y", y32)
        return X, y, x32, y32

    def _fit_bands(self, X, y, groups, bands, alphas, search, score_func, batch):
        """Fits y from X's column bands; ``search`` is dict(gammas=...) or the Dirichlet draw."""
        X, y, x32, y32 = self._check_xy(X, y)
        if x32.shape[0] < 2:
            raise ValueError(f"X: cross-validation needs at least 2 samples, found n_samples = {x32.shape[0]}")
        alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64)).ravel()
        if not np.all(np.isfinite(alphas)):
            raise ValueError(f"alphas: expected finite values > 0, found {alphas.tolist()}")
        if callable(bands):
            bands = bands(X.shape[1])
        self._bands = _band_indices(bands, X.shape[1], self._bands_name)
        views = [_band_view(x32, index) for index in self._bands]
        fitted = _native.banded_fit(views, y32, alphas.tolist(), **search,
                                    **_fold_arguments(self.cv, X, y, groups),
                                    fit_intercept=bool(self.fit_intercept),
                                    scoring=_score_name(score_func),
                                    target_chunk=2048 if batch is None else int(batch))
        self._set_fitted(fitted, views, y32, y.ndim == 1)
        self.X_fit_ = X
        return self

    def _set_fitted(self, fitted, views, y32, single):
        self._primal = [w.astype(np.float64) for w in fitted["primal"]]
        gammas = fitted["candidates"][fitted["best_candidate"]].T  # (n_bands, n_targets)
        alphas = fitted["alphas"]
        with np.errstate(divide="ignore"):
            deltas = np.log(gammas / alphas[None, :])
        if self.fit_intercept:
            # float64 means of the float32 bands: the float32 intercept cancels badly on offsets
            self._x_mean = [np.add.reduce(v, axis=0, dtype=np.float64) / v.shape[0] for v in views]
            self._y_mean = np.add.reduce(y32, axis=0, dtype=np.float64) / y32.shape[0]
            intercept = self._y_mean - sum(m @ w for m, w in zip(self._x_mean, self._primal))
        else:
            self._x_mean = [np.zeros(v.shape[1]) for v in views]
            self._y_mean = np.zeros(y32.shape[1])
        self._y_1d = single
        dual = fitted["dual"]
        self.best_alphas_ = alphas
        self.deltas_ = deltas[:, 0] if single else deltas
        self.dual_coef_ = dual[:, 0] if single else dual
        self.cv_scores_ = fitted["cv_scores"]
        if self.fit_intercept:
            self.intercept_ = float(intercept[0]) if single else intercept

    def _predict_parts(self, X):
        """Per-band predictions (n_bands, n_samples, n_targets) without intercept, X's dtype."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False, reset=False)
        check_finite("X", X)
        parts = [(X[:, index] - mean.astype(X.dtype)) @ w.astype(X.dtype)
                 for index, mean, w in zip(self._bands, self._x_mean, self._primal)]
        return X, np.stack(parts)

    def predict(self, X, split=False):
        """Predictions (n_samples, n_targets), or (n_samples,) after a 1-D y.

        ``split=True``: the prediction of each band, shape (n_bands, n_samples[, n_targets]);
        with ``fit_intercept=True`` each band's columns are centred by their training means, so
        the parts sum to ``predict(X) - y_mean`` (himalaya refuses ``split`` with an intercept).
        """
        X, parts = self._predict_parts(X)
        if split:
            return parts[..., 0] if self._y_1d else parts
        y_hat = parts.sum(0) + self._y_mean.astype(X.dtype)
        return y_hat[:, 0] if self._y_1d else y_hat

    def score(self, X, y, split=False):
        """R² averaged over targets (scikit-learn's convention; himalaya returns it per target).

        ``split=True``: himalaya's ``r2_score_split`` of the band predictions against ``y``
        centred by the training target means, shape (n_bands, n_targets) (per-band R² that sum
        to the joint R²).
        """
        if not split:
            return super().score(X, y)
        _, parts = self._predict_parts(X)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y").reshape(len(parts[0]), -1)
        centred = y - self._y_mean
        total = parts.astype(np.float64).sum(0)
        sst = (centred ** 2).sum(0)
        r2 = np.stack([((2 * centred * p - p * total) / sst).sum(0) for p in parts.astype(np.float64)])
        return r2[:, 0] if self._y_1d else r2


def _check_solver(solver, solver_params):
    if solver != "random_search":
        raise ValueError(f"solver: only 'random_search' is available, found {solver!r}")
    params = dict(solver_params or {})
    unknown = set(params) - _SOLVER_KEYS
    if unknown:
        raise ValueError(f"solver_params: unsupported keys {sorted(unknown)}; accepted: {sorted(_SOLVER_KEYS)}")
    if not params.get("local_alpha", True):
        raise ValueError("solver_params['local_alpha']: only True (one alpha per target) is available")
    return params


def _search(params, random_state):
    """dict(gammas=...) for an array ``n_iter``, else the Dirichlet draw's parameters."""
    n_iter = params.get("n_iter", 100)
    if isinstance(n_iter, numbers.Integral) and not isinstance(n_iter, bool):
        concentration = np.atleast_1d(np.asarray(params.get("concentration", [0.1, 1.0]), dtype=np.float64))
        if not isinstance(random_state, (type(None), numbers.Integral)):
            raise ValueError(f"random_state: expected None or an int seed, found {random_state!r}")
        return dict(n_iter=int(n_iter), concentrations=concentration.tolist(),
                    seed=0 if random_state is None else int(random_state))
    gammas = np.asarray(n_iter, dtype=np.float64)
    if gammas.ndim != 2:
        raise ValueError(f"solver_params['n_iter']: expected an int or an array (n_iter, n_bands) of "
                         f"band weights, found shape {gammas.shape}")
    if not np.all(np.isfinite(gammas)):
        raise ValueError("solver_params['n_iter']: the gamma array contains a non-finite value")
    return dict(gammas=gammas.tolist())


class KernelRidgeCV(_BandedRidgeBase):
    """Kernel ridge with a linear kernel and cross-validated alphas, one per target (himalaya's
    ``KernelRidgeCV(kernel="linear")``).

    alphas : array-like of float > 0
    kernel : "linear" (the only kernel)
    cv : int (contiguous K-fold; ``fit(..., groups=g)`` keeps groups in one fold) or a splitter
        whose test folds partition the samples
    fit_intercept : bool (himalaya's default is False)
    solver_params : dict or None; ``score_func`` (himalaya's ``l2_neg_loss``, the default, or
        ``r2_score``) and ``n_targets_batch``

    Attributes (himalaya's): ``dual_coef_`` (n_samples[, n_targets]), ``best_alphas_``
    (n_targets,), ``cv_scores_`` (n_targets,) the score of the chosen alpha, ``X_fit_``,
    ``intercept_`` (with ``fit_intercept``), ``n_features_in_``.
    """

    _bands_name = "bands"

    def __init__(self, alphas=(0.1, 1.0), *, kernel="linear", solver_params=None,
                 fit_intercept=True, cv=5):
        self.alphas = alphas
        self.kernel = kernel
        self.solver_params = solver_params
        self.fit_intercept = fit_intercept
        self.cv = cv

    def fit(self, X, y, groups=None):
        if self.kernel != "linear":
            raise ValueError(f"kernel: only 'linear' is available, found {self.kernel!r}")
        params = dict(self.solver_params or {})
        unknown = set(params) - {"score_func", "n_targets_batch", "n_targets_batch_refit", "n_alphas_batch"}
        if unknown:
            raise ValueError(f"solver_params: unsupported keys {sorted(unknown)}")
        self._fit_bands(X, y, groups, None, self.alphas, dict(gammas=[[1.0]]),
                        params.get("score_func"), params.get("n_targets_batch"))
        self.cv_scores_ = self.cv_scores_[0]
        # himalaya's single-kernel dual weights are (K + αI)⁻¹ y; the multiple-kernel ones
        # (the engine's) carry an extra factor α
        self.dual_coef_ = self.dual_coef_ / self.best_alphas_[0 if self._y_1d else slice(None)]
        del self.deltas_
        return self


class MultipleKernelRidgeCV(_BandedRidgeBase):
    """Multiple-kernel ridge on linear kernels over column bands, by random search over the
    kernel weights (himalaya's ``MultipleKernelRidgeCV(solver="random_search")``).

    bands : list of slices, integer index arrays or boolean masks of X's columns, one per
        kernel (None: one band of all columns). himalaya's
        ``make_column_kernelizer(("a", Kernelizer(), cols_a), ...)`` +
        ``MultipleKernelRidgeCV(kernels="precomputed")`` is ``bands=[cols_a, ...]``
    kernels : None or a list of "linear", one per band
    solver_params : ``n_iter`` (int, Dirichlet draws, or an array (n_iter, n_bands) of band
        weights), ``concentration``, ``alphas`` (default 1.0 as himalaya), ``score_func``,
        ``n_targets_batch``
    random_state : int seed of the Dirichlet draws (brainrecon's generator: the draws differ
        from numpy's; pass an array ``n_iter`` to search himalaya's exact candidates)

    Attributes: ``deltas_`` (n_bands, n_targets) = ln(γ/α), ``best_alphas_``, ``dual_coef_``
    (n_samples, n_targets), ``cv_scores_`` (n_iter, n_targets), ``intercept_``, ``X_fit_``.
    """

    _bands_name = "bands"

    def __init__(self, bands=None, *, kernels=None, solver="random_search", solver_params=None,
                 fit_intercept=True, cv=5, random_state=None):
        self.bands = bands
        self.kernels = kernels
        self.solver = solver
        self.solver_params = solver_params
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        n_bands = 1 if self.bands is None else len(self.bands)
        if self.kernels is not None and (isinstance(self.kernels, str) or len(self.kernels) != n_bands
                                         or any(k != "linear" for k in self.kernels)):
            raise ValueError(f"kernels: expected None or {n_bands} times 'linear' (one per band), found {self.kernels!r}")
        params = _check_solver(self.solver, self.solver_params)
        return self._fit_bands(X, y, groups, self.bands, params.get("alphas", 1.0),
                               _search(params, self.random_state), params.get("score_func"),
                               params.get("n_targets_batch"))


class BandedRidgeCV(_BandedRidgeBase):
    """Banded ridge (himalaya's ``BandedRidgeCV`` = ``GroupRidgeCV``): one regularization per
    group of features, by random search.

    groups : array (n_features,) of group labels (negative labels: columns left out), or None
        (one group); bands are the groups in increasing label order, as himalaya
    solver_params, random_state, cv, fit_intercept : as :class:`MultipleKernelRidgeCV`

    Attributes: ``coef_`` (n_used_features, n_targets) in himalaya's orientation, rows in
    band order; ``deltas_``, ``best_alphas_``, ``cv_scores_`` (n_iter, n_targets),
    ``intercept_``, ``dual_coef_``.
    """

    _bands_name = "groups"

    def __init__(self, groups=None, *, solver="random_search", solver_params=None,
                 fit_intercept=True, cv=5, random_state=None):
        self.groups = groups
        self.solver = solver
        self.solver_params = solver_params
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.random_state = random_state

    def _group_bands(self, n_features):
        if self.groups is None:
            return None
        labels = np.asarray(self.groups)
        if labels.shape != (n_features,) or not np.issubdtype(labels.dtype, np.number):
            raise ValueError(f"groups: expected one numeric label per feature ({n_features},), found {labels.shape}")
        bands = [np.flatnonzero(labels == u) for u in np.unique(labels) if u >= 0]
        if not bands:
            raise ValueError("groups: every label is negative, no feature is used")
        return bands

    def fit(self, X, y, groups=None):
        params = _check_solver(self.solver, self.solver_params)
        self._fit_bands(X, y, groups, self._group_bands, params.get("alphas", 1.0),
                        _search(params, self.random_state), params.get("score_func"),
                        params.get("n_targets_batch"))
        coef = np.concatenate(self._primal, axis=0)
        self.coef_ = coef[:, 0] if self._y_1d else coef
        return self
