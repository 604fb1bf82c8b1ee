"""Metrics against the code papers report with: MindEye's numpy formulas and scikit-image's SSIM."""

import numpy as np
import pytest

import brainrecon

skimage_metrics = pytest.importorskip("skimage.metrics")
skimage_color = pytest.importorskip("skimage.color")


def images(n, h, w, seed):
    """Noise, flat regions and smooth gradients: the cases that stress SSIM's variances."""
    rng = np.random.default_rng(seed)
    out = rng.uniform(0, 1, size=(n, h, w, 3)).astype(np.float32)
    out[0] = 0.5                                   # flat
    out[1, : h // 2] = 0.25                        # half flat
    out[2] = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]  # gradient
    return out


def mindeye_two_way(preds, reals):
    """MindEye's two_way_identification(return_avg=False) / (n - 1), on flattened features."""
    n = len(reals)
    r = np.corrcoef(reals.reshape(n, -1), preds.reshape(n, -1))[:n, n:]
    success = r < np.diag(r)
    return np.sum(success, 0) / (n - 1)


def test_two_way_identification_matches_mindeye():
    rng = np.random.default_rng(0)
    truths = rng.standard_normal((40, 512)).astype(np.float32)
    preds = (truths + 2.0 * rng.standard_normal((40, 512))).astype(np.float32)
    preds[5] = truths[7]  # a confusion
    ours = brainrecon.metrics.two_way_identification(preds, truths, return_mean=False)
    np.testing.assert_allclose(ours, mindeye_two_way(preds, truths), rtol=0, atol=1e-12)
    assert 0.5 < brainrecon.metrics.two_way_identification(preds, truths) < 1.0


def test_pixcorr_matches_numpy():
    a, b = images(6, 32, 32, 1), images(6, 32, 32, 2)
    b[3] = a[3] * 0.5 + 0.1
    ours = brainrecon.metrics.pixcorr(a, b)
    expected = [np.corrcoef(x.flatten(), y.flatten())[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(ours[0])  # a flat image has no correlation, as in numpy


@pytest.mark.parametrize("size", [(11, 11), (48, 40)])
def test_ssim_matches_scikit_image(size):
    a, b = images(5, *size, seed=3), images(5, *size, seed=4)
    b[1] = a[1] + 0.01
    ours = brainrecon.metrics.ssim(a, b)
    expected = [
        skimage_metrics.structural_similarity(
            skimage_color.rgb2gray(x.astype(np.float64)), skimage_color.rgb2gray(y.astype(np.float64)),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
        for x, y in zip(a, b)
    ]
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)
    gray = brainrecon.metrics.ssim(a[..., 0], b[..., 0])
    expected_gray = [skimage_metrics.structural_similarity(
        x[..., 0].astype(np.float64), y[..., 0].astype(np.float64), gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False, data_range=1.0) for x, y in zip(a, b)]
    np.testing.assert_allclose(gray, expected_gray, rtol=1e-6, atol=1e-9)


def test_uint8_images_are_scaled_to_unit_range():
    a = images(3, 16, 16, 5)
    as_bytes = np.round(a * 255).astype(np.uint8)
    np.testing.assert_allclose(brainrecon.metrics.ssim(as_bytes, as_bytes[::-1]),
                               brainrecon.metrics.ssim(as_bytes / 255.0, as_bytes[::-1] / 255.0), rtol=1e-6)


def test_metric_errors():
    with pytest.raises(ValueError, match="smaller than the 11x11 SSIM window"):
        brainrecon.metrics.ssim(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match=r"preds has shape \[3, 4\] but truths has shape \[3, 5\]"):
        brainrecon.metrics.two_way_identification(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 items"):
        brainrecon.metrics.two_way_identification(np.ones((1, 4)), np.ones((1, 4)))
