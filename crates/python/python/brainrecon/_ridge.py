"""RidgeCV with scikit-learn's estimator protocol, fitted by brainrecon's ridge engine."""

import numbers
import json

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils import check_array, check_consistent_length
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _native

_SCORINGS = {None: "neg_mean_squared_error", "neg_mean_squared_error": "neg_mean_squared_error", "r2": "r2"}


def _as_float32(name, array):
    """``array`` as float32, copied only when it is another dtype (float64 inputs are)."""
    array = np.asarray(array)
    if array.dtype != np.float32:
        with np.errstate(over="ignore"):
            array = array.astype(np.float32)
    if array.ndim == 2 and not (array.flags.c_contiguous or array.flags.f_contiguous):
        # the engine takes any strides, but reads strided views slowly
        array = np.ascontiguousarray(array)
    return array


def check_finite(name, array):
    """Raises ValueError naming ``name``, the row and the column of the first NaN/inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(array, axis=None, dtype=np.float64)
    if np.isfinite(total):
        return
    bad = np.argwhere(~np.isfinite(array))
    if len(bad) == 0:
        return  # only the sum overflowed
    where = tuple(int(i) for i in bad[0])
    place = f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"index {where}"
    value = array[where]
    text = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")  # as the CLI prints it
    raise ValueError(f"{name} contains a non-finite value ({text}) at {place}")


def _fold_labels(cv, X, y, groups):
    """One fold label per sample from a splitter whose test folds partition the samples."""
    splits = list(cv.split(X, y, groups) if hasattr(cv, "split") else cv)
    n = X.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    for k, (train, test) in enumerate(splits):
        test = np.asarray(test)
        if np.any(labels[test] >= 0):
            raise ValueError("cv: the splitter's test folds overlap; brainrecon needs folds that partition the samples (KFold, GroupKFold, PredefinedSplit...)")
        labels[test] = k
        expected_train = np.setdiff1d(np.arange(n), test)
        if not np.array_equal(np.sort(np.asarray(train)), expected_train):
            raise ValueError("cv: a training fold is not the complement of its test fold; brainrecon needs K-fold-like splitters")
    if np.any(labels < 0):
        raise ValueError("cv: some samples are in no test fold; brainrecon needs folds that partition the samples")
    return labels, len(splits)


class RidgeCV(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Multi-target ridge regression with cross-validated alphas, one per target by default.

    Parameters (scikit-learn / himalaya names):

    alphas : array-like of float > 0
        The grid.
    cv : None, int, or a splitter / iterable of (train, test)
        None: efficient leave-one-out (scikit-learn ``RidgeCV(cv=None)``), or generalized
        cross-validation with ``gcv=True``. int: contiguous K-fold without shuffling (himalaya
        ``RidgeCV(cv=k)``); with ``fit(..., groups=g)`` all samples of a group stay in one fold.
        A splitter (``KFold``, ``GroupKFold``, ``PredefinedSplit``...) whose test folds
        partition the samples.
    alpha_per_target : bool
        One alpha per target (True) or the alpha with the best mean score for all (False).
    fit_intercept : bool
    gcv : bool
        Generalized cross-validation instead of exact leave-one-out (cv=None only).
    precision : "float64" or "float32"
        Precision of the Gram/covariance matrix and its eigendecomposition. Inputs are stored
        as float32 either way (float64 inputs are converted: one float32 copy).
    n_targets_batch : int or None
        Targets processed together (bounds memory; default 2048). himalaya's
        ``solver_params={"n_targets_batch": ...}``.
    scoring : None, "neg_mean_squared_error" or "r2"
        Per-target validation score (higher is better).
    standardize : bool
        Scale the columns of X to unit variance inside the model.

    Attributes: ``coef_`` (n_targets, n_features) float32, ``intercept_`` (n_targets,),
    ``alpha_`` (n_targets,) or float, ``best_alphas_`` (n_targets,), ``best_score_``,
    ``cv_scores_`` (n_targets,) (himalaya: the score of the chosen alpha),
    ``cv_scores_per_alpha_`` (n_alphas, n_targets), ``n_features_in_``, ``solver_`` ("primal"/"dual").
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0), *, cv=None, alpha_per_target=True,
                 fit_intercept=True, gcv=False, precision="float64", n_targets_batch=None,
                 scoring=None, standardize=False):
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.gcv = gcv
        self.precision = precision
        self.n_targets_batch = n_targets_batch
        self.scoring = scoring
        self.standardize = standardize

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags

    def _cv_arguments(self, X, y, groups):
        """(folds, groups) for the engine."""
        cv = self.cv
        if cv is None:
            if groups is not None:
                raise ValueError("groups need K-fold cross-validation: set cv to an int or a splitter")
            return None, None
        if self.gcv:
            raise ValueError("gcv=True needs cv=None")
        if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            if groups is not None:
                groups = np.asarray(groups)
                if groups.shape != (X.shape[0],):
                    raise ValueError(f"groups: expected shape ({X.shape[0]},), found {groups.shape}")
                # any hashable labels: their rank of first appearance keeps the engine's order
                _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
                groups = first[inverse.ravel()].astype(np.int64)
            return int(cv), groups
        labels, n_splits = _fold_labels(cv, X, y, groups)
        return n_splits, labels

    def fit(self, X, y, groups=None, shard=None):
        """Fits X (n_samples, n_features) → y (n_samples,) or (n_samples, n_targets).

        float32 arrays in C or Fortran order are used in place (no copy); the GIL is released
        during the fit. ``shard=(k, N)`` fits only the k-th of N equal contiguous target ranges
        (as ``brainrecon ridge fit --shard k/N``; ``target_range_`` says which): save each
        shard with :meth:`save_model` and join them with :func:`merge_models`.
        """
        if y is None:
            raise ValueError("RidgeCV requires y to be passed, but the target y is None")
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False)
        # y is checked here rather than by validate_data, so that its NaN/inf message is ours
        y = check_array(y, ensure_2d=False, dtype=[np.float32, np.float64],
                        ensure_all_finite=False, input_name="y")
        if y.ndim > 2:
            raise ValueError(f"y: expected (n_samples,) or (n_samples, n_targets), found shape {y.shape}")
        check_consistent_length(X, y)
        if self.scoring not in _SCORINGS:
            raise ValueError(f"scoring: expected None, 'neg_mean_squared_error' or 'r2', found {self.scoring!r}")
        self._y_1d = y.ndim == 1
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        x32, y32 = _as_float32("X", X), _as_float32("y", y2)
        if x32.shape[0] < 2:
            raise ValueError(f"X: cross-validating ridge needs at least 2 samples, found n_samples = {x32.shape[0]}")
        check_finite("X", x32)
        check_finite("y", y32)
        alphas = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64)).ravel()
        folds, fold_groups = self._cv_arguments(X, y, groups)
        batch = 2048 if self.n_targets_batch is None else int(self.n_targets_batch)
        options = dict(folds=folds, groups=fold_groups, gcv=bool(self.gcv),
                       fit_intercept=bool(self.fit_intercept), standardize=bool(self.standardize),
                       precision=str(self.precision), target_chunk=batch,
                       scoring=_SCORINGS[self.scoring])
        if shard is not None:
            if len(shard) != 2 or not all(isinstance(v, (int, np.integer)) for v in shard):
                raise ValueError(f"shard: expected (k, N) with 0 <= k < N, found {shard!r}")
            options["shard"] = (int(shard[0]), int(shard[1]))
        fitted = _native.ridge_fit(x32, y32, list(alphas), **options)
        if not self.alpha_per_target and y32.shape[1] > 1:
            fitted = self._refit_shared_alpha(x32, y32, fitted, options)
        if self.fit_intercept:
            # the engine stores its intercept in float32, where y_mean - x_mean·w cancels badly
            # when X has a large offset: redo that subtraction in float64 from the same means
            x_mean = np.add.reduce(x32, axis=0, dtype=np.float64) / x32.shape[0]
            start, end, _ = fitted["target_range"]
            y_mean = np.add.reduce(y32[:, start:end], axis=0, dtype=np.float64) / y32.shape[0]
            fitted["intercept"] = y_mean - fitted["coef"].astype(np.float64) @ x_mean
        self._set_fitted(fitted)
        return self

    def _refit_shared_alpha(self, x32, y32, fitted, options):
        """scikit-learn's alpha_per_target=False: the alpha of the best mean score, for all."""
        mean_scores = fitted["cv_scores"].astype(np.float64).mean(axis=1)
        best = int(np.argmax(mean_scores))  # first best, as scikit-learn
        refit = _native.ridge_fit(x32, y32, [float(fitted["alpha_grid"][best])], **options)
        refit["cv_scores"] = fitted["cv_scores"]
        refit["alpha_grid"] = fitted["alpha_grid"]
        return refit

    def _set_fitted(self, fitted):
        self._native_state = {k: fitted[k] for k in ("x_mean", "x_scale", "options", "alpha_grid", "metadata")}
        self.target_range_ = tuple(int(v) for v in fitted["target_range"])
        coef = fitted["coef"]
        intercept = np.asarray(fitted["intercept"], dtype=np.float64)
        alphas, scores = fitted["alphas"], fitted["cv_scores"]
        grid = fitted["alpha_grid"]
        best = np.array([scores[np.flatnonzero(grid == a)[0], j] for j, a in enumerate(alphas)], dtype=np.float64)
        self.cv_scores_per_alpha_ = scores
        self.cv_scores_ = best
        self.best_alphas_ = alphas
        self.solver_ = json.loads(fitted["options"])["solver"]
        single = self._y_1d
        self.coef_ = coef[0] if single else coef
        if self.fit_intercept:
            self.intercept_ = float(intercept[0]) if single else intercept
        else:
            self.intercept_ = 0.0
        shared = single or not self.alpha_per_target
        self.alpha_ = float(alphas[0]) if shared else alphas
        if single:
            self.best_score_ = float(best[0])
        elif not self.alpha_per_target:
            self.best_score_ = float(scores.astype(np.float64).mean(axis=1).max())
        else:
            self.best_score_ = best

    def predict(self, X):
        """Predictions (n_samples, n_targets), or (n_samples,) after a 1-D y; X's float dtype."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False, reset=False)
        check_finite("X", X)
        coef = self.coef_.astype(X.dtype, copy=False)
        return X @ coef.T + np.asarray(self.intercept_, dtype=X.dtype)

    def save_model(self, directory, metadata=None):
        """Writes the model as ``brainrecon ridge fit --out`` does (weights.safetensors +
        model.json), readable by ``brainrecon ridge predict`` and :func:`load_model`."""
        check_is_fitted(self)
        coef = np.atleast_2d(self.coef_).astype(np.float32)
        n_targets = coef.shape[0]
        intercept = np.broadcast_to(np.asarray(self.intercept_, dtype=np.float32), (n_targets,))
        state = self._native_state
        meta = json.loads(state["metadata"])
        meta.update(metadata or {})
        _native.ridge_save(str(directory), np.ascontiguousarray(coef), intercept.tolist(),
                           np.asarray(self.best_alphas_, dtype=np.float64).tolist(),
                           np.ascontiguousarray(self.cv_scores_per_alpha_, dtype=np.float32),
                           np.asarray(state["alpha_grid"]).tolist(), state["x_mean"].tolist(),
                           state["x_scale"].tolist(), state["options"], json.dumps(meta),
                           self.target_range_)


def merge_models(shards, out):
    """Joins shard model directories (from ``save_model`` after ``fit(..., shard=(k, N))``, or
    ``brainrecon ridge fit --shard k/N``; any order) into one model directory ``out``, as
    ``brainrecon ridge merge``, and returns it as a fitted :class:`RidgeCV`."""
    _native.ridge_merge([str(d) for d in shards], str(out))
    return load_model(out)


def load_model(directory):
    """A fitted :class:`RidgeCV` from a model directory of ``brainrecon ridge fit`` (a shard
    keeps its ``target_range_``)."""
    fitted = _native.ridge_load(str(directory))
    options = json.loads(fitted["options"])
    cv = options["cv"]
    estimator = RidgeCV(
        alphas=tuple(float(a) for a in fitted["alpha_grid"]),
        cv=cv["n_folds"] if cv["kind"] == "k_fold" else None,
        gcv=cv["kind"] == "gcv",
        fit_intercept=options["fit_intercept"],
        standardize=options["standardize"],
        scoring=options["scoring"] if options["scoring"] == "r2" else None,
    )
    estimator._y_1d = False
    estimator.n_features_in_ = fitted["coef"].shape[1]
    estimator._set_fitted(fitted)
    return estimator
