"""brainrecon.align against fmralign 0.0.6 and BrainIAK 0.12 on the committed fixtures
(crates/align/tests/fixtures, written by tools/fixtures/align_fixtures.py and
srm_fixtures.py), to the tolerances of the Rust tests (crates/align/tests/*_reference.rs);
the shared space and encoding map on a small planted problem; bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from brainrecon import align

FIXTURES = Path(__file__).resolve().parents[2] / "align" / "tests" / "fixtures"

# fmralign: matrices to 1e-9 relative to the reference's largest entry, scalars 1e-9 relative
RTOL = 1e-9
# BrainIAK (see brainiak_reference.rs): fits 1e-10, the rank-deficient subject's W 1e-6
FIT_RTOL = 1e-10
RANK_DEFICIENT_W_RTOL = 1e-6


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def mat(value):
    return np.asarray(value, dtype=np.float64)


def close(what, got, want, rtol):
    """max |got − want| ≤ rtol · max |want| (a zero reference must be met exactly)."""
    got, want = np.asarray(got, dtype=np.float64), mat(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    diff = np.abs(got - want).max() if want.size else 0.0
    assert not np.isnan(diff), f"{what}: NaN"
    assert diff <= rtol * np.abs(want).max(initial=0.0), \
        f"{what}: max |diff| {diff:.3e} over max |want| {np.abs(want).max():.3e}"


def close_scalar(what, got, want, rtol=RTOL):
    assert abs(got - want) <= rtol * max(abs(want), np.finfo(float).tiny), \
        f"{what}: got {got}, want {want}"


# ---------------------------------------------------------------- fmralign

def source(case):
    """The case's source: stored directly or as the exact product Z·A (rank deficient)."""
    return mat(case["x"]) if "x" in case else mat(case["z"]) @ mat(case["a"])


def test_procrustes_matches_fmralign():
    cases = fixture("fmralign_procrustes.json")["cases"]
    assert len(cases) == 11
    for case in cases:
        x, y = source(case), mat(case["y"])
        assert (x.shape[0], x.shape[1], y.shape[1]) == (case["n"], case["p_x"], case["p_y"])
        for res in case["results"]:
            what = f"{case['name']} (scaling {res['scaling']})"
            R, scale = align.procrustes(x, y, scaling=res["scaling"])
            assert R.shape == (x.shape[1], y.shape[1]), what
            close_scalar(f"{what}: scale", scale, res["scale"])
            # the objective holds even where R is not unique
            close_scalar(f"{what}: objective", np.linalg.norm(x @ R * scale - y),
                         res["objective"])
            if "rotation" in case:
                close(f"{what}: rotation", R, case["rotation"], RTOL)
            if "transform" in res:
                close(f"{what}: transform", x @ R * scale, res["transform"], RTOL)
            if "probe_transform" in res:
                close(f"{what}: probe transform", mat(case["probe"]) @ R * scale,
                      res["probe_transform"], RTOL)


def test_procrustes_zero_input_is_the_identity_with_unit_scale():
    cases = {c["name"]: c for c in fixture("fmralign_procrustes.json")["cases"]}
    for name in ("zero_x", "zero_y"):
        R, scale = align.procrustes(source(cases[name]), cases[name]["y"], scaling=True)
        assert scale == 1.0, name
        np.testing.assert_array_equal(R, mat(cases[name]["rotation"]))


def test_ridge_alignment_matches_fmralign():
    cases = fixture("fmralign_ridge.json")["cases"]
    assert len(cases) == 4
    for case in cases:
        name = case["name"]
        x, y = mat(case["x"]), mat(case["y"])
        kwargs = {}
        if case.get("alphas") is not None:
            kwargs["alphas"] = case["alphas"]
        if case.get("cv") is not None:
            kwargs["cv"] = case["cv"]
        fit = align.ridge_alignment(x, y, **kwargs)
        # the defaults are fmralign's
        assert list(kwargs.get("alphas", align.RIDGE_ALPHAS)) == case["grid"], name
        assert fit["alpha"] == case["alpha"], name
        scores = case["mean_scores"]
        assert len(fit["cv_scores"]) == len(scores), name
        for got, want in zip(fit["cv_scores"], scores):
            assert abs(got - want) <= RTOL * max(abs(want), 1.0), f"{name}: {got} vs {want}"
        close(f"{name}: coef", fit["coef"], case["coef"], RTOL)
        close(f"{name}: intercept", fit["intercept"], case["intercept"], RTOL)
        close(f"{name}: transform", x @ fit["coef"] + fit["intercept"], case["transform"], RTOL)
        close(f"{name}: probe transform", mat(case["probe"]) @ fit["coef"] + fit["intercept"],
              case["probe_transform"], RTOL)


# ---------------------------------------------------------------- BrainIAK

@pytest.fixture(scope="module")
def srm_inputs():
    v = fixture("brainiak_inputs.json")
    full = [mat(s) for s in v["subjects"]]
    rank_deficient = list(full)
    rank_deficient[v["rank_deficient_replaces"]] = mat(v["rank_deficient"])
    return {"full": full, "rank_deficient": rank_deficient,
            "new_subject": mat(v["new_subject"]), "loose": v["rank_deficient_replaces"]}


def close_subjects(what, got, want, case, inputs):
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        loose = case["dataset"] == "rank_deficient" and i == inputs["loose"]
        close(f"{what}[{i}]", g, w, RANK_DEFICIENT_W_RTOL if loose else FIT_RTOL)


def check_common(name, fit, case, inputs):
    data = inputs[case["dataset"]]
    assert len(fit["w"]) == len(data)
    for w, x in zip(fit["w"], data):
        assert w.shape == (x.shape[0], case["features"]), name
    close(f"{name} s", fit["s"], case["s"], FIT_RTOL)
    if "w" in case:
        close_subjects(f"{name} w", fit["w"], case["w"], case, inputs)
    close_subjects(f"{name} transform", align.transform(fit["w"], data), case["transform"],
                   case, inputs)
    if "transform_subject" in case:
        close(f"{name} transform_subject", align.transform_subject(inputs["new_subject"], fit["s"]),
              case["transform_subject"], FIT_RTOL)


@pytest.mark.parametrize("name", ["srm_k5_it10", "srm_k10_it1", "srm_k5_it10_rank_deficient"])
def test_srm_equals_brainiak(srm_inputs, name):
    case = fixture(f"brainiak_{name}.json")
    assert case["model"] == "SRM"
    fit = align.srm(srm_inputs[case["dataset"]], features=case["features"],
                    n_iter=case["n_iter"], rand_seed=case["rand_seed"])
    close(f"{name} sigma_s", fit["sigma_s"], case["sigma_s"], FIT_RTOL)
    close(f"{name} rho2", fit["rho2"], case["rho2"], FIT_RTOL)
    if "mu" in case:
        for i, (got, want) in enumerate(zip(fit["mu"], case["mu"])):
            close(f"{name} mu[{i}]", got, want, FIT_RTOL)
    check_common(name, fit, case, srm_inputs)


@pytest.mark.parametrize("name", ["detsrm_k5_it1", "detsrm_k10_it10_seed5",
                                  "detsrm_k5_it10_rank_deficient"])
def test_det_srm_equals_brainiak(srm_inputs, name):
    case = fixture(f"brainiak_{name}.json")
    assert case["model"] == "DetSRM"
    fit = align.det_srm(srm_inputs[case["dataset"]], features=case["features"],
                        n_iter=case["n_iter"], rand_seed=case["rand_seed"])
    assert set(fit) == {"w", "s"}
    check_common(name, fit, case, srm_inputs)


def test_srm_tolerance_separates_another_iteration_count(srm_inputs):
    case = fixture("brainiak_srm_k5_it10.json")
    fit = align.srm(srm_inputs["full"], features=5, n_iter=9, rand_seed=0)
    want = mat(case["s"])
    assert np.abs(fit["s"] - want).max() > 1e3 * FIT_RTOL * np.abs(want).max()


def test_srm_takes_any_memory_layout(srm_inputs):
    # Fortran order and a transposed view are read in place and give the C-order fit
    data = srm_inputs["full"]
    want = align.srm(data, features=5, n_iter=2)
    other = [np.asfortranarray(data[0]), data[1].T.copy().T, data[2]]
    got = align.srm(other, features=5, n_iter=2)
    close("s", got["s"], want["s"], 1e-12)
    # integer input is converted to float64
    ints = [np.rint(10 * x).astype(np.int64) for x in data]
    close("s (ints)", align.srm(ints, features=5, n_iter=2)["s"],
          align.srm([i.astype(np.float64) for i in ints], features=5, n_iter=2)["s"], 0.0)


# ---------------------------------------------------------------- shared space, encoding map

def planted_group(seed=0, subjects=3, n=300, d=12, k=3):
    """Subjects whose betas carry the same k directions of the features, through their own
    random voxel maps."""
    rng = np.random.default_rng(seed)
    P = np.linalg.qr(rng.standard_normal((d, k)))[0]
    xs, ys = [], []
    for s in range(subjects):
        y = rng.standard_normal((n, d))
        v = 20 + 5 * s
        A = rng.standard_normal((k, v))
        xs.append(y @ P @ A + 0.05 * rng.standard_normal((n, v)))
        ys.append(y)
    return xs, ys, P


def test_shared_space_recovers_the_planted_directions():
    xs, ys, P = planted_group()
    fit = align.shared_space(xs, ys, k=3)
    basis = fit["basis"]
    assert basis.shape == (12, 3)
    assert [m.shape for m in fit["maps"]] == [(20, 3), (25, 3), (30, 3)]
    assert fit["alphas"].shape == (3,) and np.all(fit["alphas"] > 0)
    assert fit["singular_values"].shape == (3,)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-10)
    # the fitted span is the planted one (up to the features' chance overlap with the betas'
    # column space, ~v/n): a random 3-dimensional span of 12 would give cosines near 0.5
    cosines = np.linalg.svd(basis.T @ P, compute_uv=False)
    assert cosines.min() > 0.98, cosines
    # with given alphas, those are kept; the seed does not matter on the exact path
    given = align.shared_space(xs, ys, k=3, alphas=[1.0, 2.0, 3.0], seed=5)
    np.testing.assert_array_equal(given["alphas"], [1.0, 2.0, 3.0])


def test_encoding_map_maps_a_new_subject_into_the_space():
    rng = np.random.default_rng(1)
    n, v, k = 80, 40, 3
    t = rng.standard_normal((n, k))
    E = rng.standard_normal((k, v))
    x = t @ E + 0.1 * rng.standard_normal((n, v)) + 5.0
    fit = align.encoding_map(x, t)
    assert fit["map"].shape == (v, k)
    assert fit["lambda_"] > 0 and fit["mu"] > 0 and fit["cv_error"] >= 0
    pred = (x - x.mean(axis=0)) @ fit["map"]
    assert np.corrcoef(pred.ravel(), (t - t.mean(axis=0)).ravel())[0, 1] > 0.95


# ---------------------------------------------------------------- bad input

def test_bad_input_raises_value_error_naming_sizes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="source has 10 rows.*target 9"):
        align.procrustes(rng.standard_normal((10, 4)), rng.standard_normal((9, 4)))
    with pytest.raises(ValueError, match="10 rows"):
        align.ridge_alignment(rng.standard_normal((10, 4)), rng.standard_normal((12, 4)))
    with pytest.raises(ValueError, match="subject 1 has 30 samples but subject 0 has 40"):
        align.srm([rng.standard_normal((20, 40)), rng.standard_normal((20, 30))], features=5)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        align.det_srm([rng.standard_normal((20, 40))], features=5)
    with pytest.raises(ValueError, match="new subject has 30 samples, the shared response has 40"):
        align.transform_subject(rng.standard_normal((20, 30)), rng.standard_normal((5, 40)))
    with pytest.raises(ValueError, match="non-finite"):
        x = rng.standard_normal((10, 4))
        x[3, 2] = np.nan
        align.procrustes(x, rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match="2-D"):
        align.procrustes(np.zeros(5), np.zeros((5, 2)))
    xs, ys, _ = planted_group()
    with pytest.raises(ValueError):
        align.shared_space(xs, ys[:2], k=3)
    with pytest.raises(ValueError):
        align.shared_space(xs, ys, k=13)
    with pytest.raises(ValueError, match="rows"):
        align.encoding_map(rng.standard_normal((6, 4)), rng.standard_normal((6, 2)))
