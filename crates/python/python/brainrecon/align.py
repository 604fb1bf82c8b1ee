"""Functional alignment across subjects on numpy arrays, running brainrecon's Rust code:
fmralign's scaled orthogonal Procrustes and ridge alignment, BrainIAK's shared response model
(SRM and DetSRM, with ``transform_subject``), the shared space of a group (multi-subject
reduced-rank ridge onto stimulus features) and a new subject's encoding map.

    import brainrecon.align as align
    R, scale = align.procrustes(X, Y, scaling=True)      # X @ R * scale ≈ Y
    fit = align.srm([X1, X2, X3], features=20)             # BrainIAK: voxels × samples each
    w_new = align.transform_subject(X_new, fit["s"])

Orientation and names follow the reference libraries: fmralign's maps take samples in rows;
BrainIAK's SRM takes one voxels × samples array per subject. Arrays are float64 (others are
converted); bad shapes or values raise ValueError naming the sizes; the work runs with the GIL
released.
"""

import numpy as np

from . import _native

#: fmralign's default alpha grid and folds of ``RidgeAlignment``.
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
RIDGE_FOLDS = 4


def _f64(array, what):
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array, found {a.ndim} dimension(s) "
                         f"(shape {a.shape})")
    return a


def _f64_list(arrays, what):
    if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
        raise ValueError(f"{what}: expected a list of 2-D arrays (one per subject), "
                         f"found one array of shape {arrays.shape}")
    return [_f64(a, f"{what}[{i}]") for i, a in enumerate(arrays)]


def procrustes(X, Y, scaling=False):
    """fmralign's ``scaled_procrustes``: the map from ``X`` (n × p source) to ``Y`` (n × q
    target), samples in rows, no centring. Returns ``(R, scale)``: R (p × q) is the polar
    factor of XᵀY and ``scale`` (1 unless ``scaling``) minimises ‖scale·X·R − Y‖; a zero X or
    Y gives the identity and scale 1. ``X @ R * scale`` is fmralign's ``transform``."""
    R, scale = _native.align_procrustes(_f64(X, "X"), _f64(Y, "Y"), bool(scaling))
    return R, float(scale)


def ridge_alignment(X, Y, alphas=RIDGE_ALPHAS, cv=RIDGE_FOLDS):
    """fmralign's ``RidgeAlignment(alphas, cv)``: ridge from ``X`` (n × p) to ``Y`` (n × q)
    with an intercept and one alpha chosen by ``cv`` contiguous unshuffled folds (mean R²).

    Returns a dict: ``coef`` (p × q, so ``X @ coef + intercept`` is the transform; scikit-learn's
    ``coef_`` is its transpose), ``intercept`` (q,), ``alpha`` and ``cv_scores`` (the mean R²
    of each alpha)."""
    alphas = [float(a) for a in np.atleast_1d(alphas)]
    fit = _native.align_ridge(_f64(X, "X"), _f64(Y, "Y"), alphas, int(cv))
    fit["alpha"] = float(fit["alpha"])
    return fit


def srm(data_list, features=50, n_iter=10, rand_seed=0):
    """BrainIAK's ``SRM(n_iter, features, rand_seed).fit(data_list)``: the probabilistic shared
    response model. ``data_list[i]`` is subject i's voxels × samples array (the same samples
    in the same order for every subject; at least 2 subjects).

    Returns a dict of BrainIAK's fitted attributes without the trailing underscore: ``w`` (one
    v_i × features array per subject, orthonormal columns), ``s`` (features × samples),
    ``sigma_s`` (features × features), ``rho2`` (subjects,) and ``mu`` (one (v_i,) mean per
    subject)."""
    return _native.align_srm(_f64_list(data_list, "data_list"), int(features), int(n_iter),
                             int(rand_seed), False)


def det_srm(data_list, features=50, n_iter=10, rand_seed=0):
    """BrainIAK's ``DetSRM(n_iter, features, rand_seed).fit(data_list)``: the deterministic
    shared response model, with :func:`srm`'s orientation. Returns a dict: ``w`` and ``s``."""
    return _native.align_srm(_f64_list(data_list, "data_list"), int(features), int(n_iter),
                             int(rand_seed), True)


def transform(w, data_list):
    """BrainIAK's ``transform``: each subject's shared response ``w[i].T @ data_list[i]``
    (features × samples; voxel means are not subtracted, as in BrainIAK)."""
    return [np.asarray(wi, dtype=np.float64).T @ np.asarray(x, dtype=np.float64)
            for wi, x in zip(w, data_list)]


def transform_subject(X, S):
    """BrainIAK's ``transform_subject``: a new subject's W (voxels × features, orthonormal
    columns) from its responses ``X`` (voxels × samples) to the samples of a fitted shared
    response ``S`` (features × samples, e.g. ``srm(...)["s"]``)."""
    return _native.align_transform_subject(_f64(X, "X"), _f64(S, "S"))


def shared_space(X_list, Y_list, k, alphas=None, seed=0, grid=None, center=True):
    """One k-dimensional space for a group, fitted by multi-subject reduced-rank ridge:
    min Σ_s ‖Y_s − X_s M_s Pᵀ‖² + α_s ‖M_s‖² with PᵀP = I (``brainrecon group fit --method
    shared``). ``X_list[s]`` is subject s's betas (n_s × v_s), ``Y_list[s]`` the features of
    the images it saw (n_s × d, the same d for all); samples in rows. Subjects need not share
    images.

    ``alphas`` None chooses each subject's α by generalised cross-validation on ``grid``
    (default: the group route's 17 values from 10⁻¹ to 10⁷). ``center`` subtracts each
    subject's column means first (the fit assumes centred data; with False, centre them
    yourself).

    Returns a dict: ``basis`` P (d × k), ``maps`` (one M_s, v_s × k, per subject: the space's
    coordinates are ``(X_s − x_means[s]) @ M_s``), ``alphas`` (subjects,), ``singular_values``
    (k,), and with ``center`` the ``x_means`` and ``y_means`` it subtracted."""
    xs = _f64_list(X_list, "X_list")
    ys = _f64_list(Y_list, "Y_list")
    x_means = [x.mean(axis=0) for x in xs] if center else None
    y_means = [y.mean(axis=0) for y in ys] if center else None
    if center:
        xs = [x - m for x, m in zip(xs, x_means)]
        ys = [y - m for y, m in zip(ys, y_means)]
    if alphas is not None:
        alphas = [float(a) for a in np.atleast_1d(alphas)]
    if grid is not None:
        grid = [float(a) for a in np.atleast_1d(grid)]
    fit = _native.align_shared_space(xs, ys, int(k), alphas=alphas, grid=grid, seed=int(seed))
    if center:
        fit["x_means"] = x_means
        fit["y_means"] = y_means
    return fit


def encoding_map(X, T, lambdas=None, mus=None, folds=5):
    """A new subject's map into a space through per-voxel encoding models inverted by
    generalised least squares (``brainrecon group adapt --map encoding``). ``X``: the subject's
    betas (n × v, samples in rows; not necessarily centred), ``T``: the space's coordinates of
    the same samples (n × k). The penalties λ (per-voxel embeddings) and μ (prior on the
    coordinates), in units free of the data's scale, are chosen from ``lambdas`` and ``mus``
    (None: 0.01 … 100 and 0.001 … 10) by ``folds``-fold cross-validation.

    Returns a dict: ``map`` M (v × k; ``(X_new − X.mean(0)) @ M`` are coordinates), ``lambda_``,
    ``mu`` and ``cv_error`` (held-out squared error relative to ‖T‖²)."""
    if lambdas is not None:
        lambdas = [float(a) for a in np.atleast_1d(lambdas)]
    if mus is not None:
        mus = [float(a) for a in np.atleast_1d(mus)]
    return _native.align_encoding_map(_f64(X, "X"), _f64(T, "T"), lambdas=lambdas, mus=mus,
                                      folds=int(folds))


__all__ = ["procrustes", "ridge_alignment", "srm", "det_srm", "transform", "transform_subject",
           "shared_space", "encoding_map", "RIDGE_ALPHAS", "RIDGE_FOLDS"]
