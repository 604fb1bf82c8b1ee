"""Reconstruction metrics on numpy arrays, computed by brainrecon's metrics crate.

The first axis is always the item axis: ``preds[i]`` is the reconstruction of ``truths[i]``.
Images are float in [0, 1] (uint8 images are divided by 255), shaped (n, h, w, 3) for RGB or
(n, h, w) for grayscale. Every function returns one value per item; average them for the
number papers report.
"""

import numpy as np

from . import _native


def _rows(name, array):
    """``array`` (n, ...) as a C-contiguous float32 (n, m) matrix (copied only when needed)."""
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"{name}: expected an array of shape (n, ...), found shape {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name}: expected a numeric array, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32).reshape(array.shape[0], -1)


def two_way_identification(preds, truths, return_mean=True):
    """MindEye's two-way identification: for each prediction, the share of other truths that
    correlate less with it than its own truth (chance 0.5).

    preds, truths: (n, ...) features or images, n >= 2. Returns the mean, or the (n,) values with
    ``return_mean=False``.
    """
    per = _native.two_way_identification(_rows("preds", preds), _rows("truths", truths))
    return float(per.mean()) if return_mean else per


def pixcorr(a, b):
    """PixCorr (MindEye): Pearson r of each pair of images flattened. (n,) values."""
    return _native.pixcorr(_rows("a", a), _rows("b", b))


def ssim(a, b):
    """SSIM as scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``; RGB images (n, h, w, 3) are compared through
    ``rgb2gray`` as MindEye does. (n,) values."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a has shape {a_arr.shape} but b has shape {b_arr.shape}")
    if a_arr.ndim == 4 and a_arr.shape[-1] == 3:
        rgb = True
    elif a_arr.ndim == 3:
        rgb = False
    else:
        raise ValueError(f"a: expected images (n, h, w, 3) or (n, h, w), found shape {a_arr.shape}")
    h, w = a_arr.shape[1], a_arr.shape[2]
    return _native.ssim(_rows("a", a_arr), _rows("b", b_arr), h, w, rgb)


def _targets(name, array):
    array = np.asarray(array)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected (n_samples, n_targets), found shape {array.shape}")
    return np.asarray(array, dtype=np.float32)


def pearson_per_target(y_true, y_pred):
    """Pearson r of each target (column), as ``brainrecon ridge score``. (n_targets,)."""
    return _native.pearson_per_target(_targets("y_true", y_true), _targets("y_pred", y_pred))


def r2_per_target(y_true, y_pred):
    """R² of each target (column), as ``brainrecon ridge score``. (n_targets,)."""
    return _native.r2_per_target(_targets("y_true", y_true), _targets("y_pred", y_pred))
