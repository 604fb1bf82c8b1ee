"""GLMsingle's GLM_single(opt).fit against brainrecon.glm.GLM_single(opt).fit, in one Python
process on the same simulated runs: wall time of each and how far their outputs agree.

    python crates/python/benchmarks/bench_glmsingle.py --glmsingle PATH/TO/GLMsingle \
        [--size small moderate] [--threads N] [--json]

GLMsingle is not on PyPI: PATH is a checkout of cvnlab/GLMsingle (its dependencies' pins are
tools/fixtures/requirements-glmsingle.txt). Both fit GLMsingle's defaults (all four models,
library HRFs, GLMdenoise, fractional ridge) with memory outputs only; GLMsingle still writes its
design files (into a scratch folder). The simulated experiment is tools/fixtures'
glmsingle_denoise.py's, scaled: runs at TR 1.5 s, 2-s stimuli, conditions repeated in every
run, a third of the voxels responding with one of the library's HRFs, half silent but carrying
three global noise components, the rest dark.

Threads: --threads N (default 1) pins numpy's BLAS (through threadpoolctl, which scikit-learn,
a GLMsingle dependency, installs) and brainrecon's pool to the same count for both fits.
GLMsingle's time includes its run-wise FIR diagnostic, which brainrecon does not compute. The
project's published figures come from tools/bench/glmsingle_python.sh (each fit in its own
process, three repeats); this script is the quick check in one process.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np

SIZES = {  # name: (runs, volumes per run, voxels, conditions)
    "small": (4, 120, 2000, 10),
    "moderate": (5, 150, 6000, 16),
}
TR, STIMDUR = 1.5, 2.0


def simulate(runs, n_times, voxels, conditions, library, seed=0):
    """Designs (time x conditions) and data (voxels x time, float32) of every run."""
    rng = np.random.default_rng(seed)
    responsive, silent = voxels // 3, voxels // 2
    dark = voxels - responsive - silent
    in_brain = responsive + silent
    hrfs = library / library.max(axis=0)
    hrf_of_voxel = rng.integers(0, library.shape[1], responsive)
    baseline = np.r_[1000 + 50 * rng.normal(size=in_brain), 30 + rng.random(dark)]
    amplitude = rng.normal(1.0, 0.6, (responsive, conditions)) * baseline[:responsive, None] / 100
    loadings = rng.normal(0, 4, (in_brain, 3))
    onsets = np.arange(3, n_times - 12, 4)
    designs, data = [], []
    for _ in range(runs):
        order = np.resize(rng.permutation(np.tile(np.arange(conditions), 4)), len(onsets))
        design = np.zeros((n_times, conditions))
        design[onsets, order] = 1
        # every HRF's response to every condition, then each voxel's mix of its own HRF
        responses = np.stack([np.stack([np.convolve(design[:, c], hrfs[:, h])[:n_times]
                                        for c in range(conditions)])
                              for h in range(library.shape[1])])  # H x C x T
        signal = np.zeros((voxels, n_times))
        signal[:responsive] = np.einsum("vc,vct->vt", amplitude, responses[hrf_of_voxel])
        kernel = np.exp(-0.5 * (np.arange(-9, 10) / 3) ** 2)
        components = np.stack([np.convolve(rng.normal(size=n_times + 18), kernel, "valid")[:n_times]
                               for _ in range(3)])
        components = (components - components.mean(1, keepdims=True)) / components.std(1, keepdims=True)
        signal[:in_brain] += loadings @ components
        noise = rng.normal(0, 3, (voxels, n_times))
        designs.append(design)
        data.append((baseline[:, None] + signal + noise).astype(np.float32))
    return designs, data


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fit_glmsingle(designs, data):
    from glmsingle.glmsingle import GLM_single
    opt = {"wantfileoutputs": [0, 0, 0, 0], "wantmemoryoutputs": [1, 1, 1, 1]}
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)  # GLMsingle makes its default figure folder in the working folder
        try:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = GLM_single(opt).fit(designs, data, STIMDUR, TR,
                                              outputdir=os.path.join(scratch, "out"))
            seconds = time.perf_counter() - start
        finally:
            os.chdir(cwd)
    return results, seconds


def fit_brainrecon(designs, data):
    from brainrecon.glm import GLM_single
    opt = {"wantfileoutputs": [0, 0, 0, 0], "wantmemoryoutputs": [1, 1, 1, 1],
           "suppressoutput": 1}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = GLM_single(opt).fit(designs, data, STIMDUR, TR)
    return results, time.perf_counter() - start


def agreement(theirs, ours):
    """How far the two fits agree, model by model."""
    def rel(key, model):
        a = np.asarray(ours[model][key], np.float64).ravel()
        b = np.asarray(theirs[model][key], np.float64).ravel()
        keep = np.isfinite(a) & np.isfinite(b)
        return float(np.abs(a[keep] - b[keep]).max() / max(np.abs(b[keep]).max(), 1e-30))

    def median_r(model):
        a = np.asarray(ours[model]["betasmd"], np.float64).reshape(-1, ours[model]["betasmd"].shape[-1])
        b = np.asarray(theirs[model]["betasmd"], np.float64).reshape(a.shape)
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
        r = (a * b).sum(1)[den > 0] / den[den > 0]
        return float(np.median(r)), float(np.min(r))

    out = {
        "typea_onoffR2_rel": rel("onoffR2", "typea"),
        "typea_betasmd_rel": rel("betasmd", "typea"),
        "typeb_HRFindex_equal": float(np.mean(ours["typeb"]["HRFindex"] == theirs["typeb"]["HRFindex"])),
        "typeb_betasmd_rel": rel("betasmd", "typeb"),
    }
    if "typec" in ours and "typec" in theirs:
        out["pcnum"] = [int(ours["typec"]["pcnum"]), int(theirs["typec"]["pcnum"])]
        out["noisepool_equal"] = float(np.mean(ours["typec"]["noisepool"] == theirs["typec"]["noisepool"]))
        out["typec_betasmd_rel"] = rel("betasmd", "typec")
    if "typed" in ours and "typed" in theirs:
        out["typed_FRACvalue_equal"] = float(np.mean(np.abs(ours["typed"]["FRACvalue"]
                                                            - theirs["typed"]["FRACvalue"]) < 1e-6))
        out["typed_betasmd_median_r"], out["typed_betasmd_min_r"] = median_r("typed")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glmsingle", required=True, help="a checkout of cvnlab/GLMsingle")
    parser.add_argument("--size", nargs="+", default=["small"], choices=sorted(SIZES))
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and brainrecon threads for both fits (default 1)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, not {args.threads}")
    # brainrecon's pool reads this when the extension first starts it
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=args.threads)
    sys.path.insert(0, os.path.abspath(args.glmsingle))
    from glmsingle.hrf.gethrf import getcanonicalhrflibrary
    rows = []
    for name in args.size:
        runs, n_times, voxels, conditions = SIZES[name]
        designs, data = simulate(runs, n_times, voxels, conditions,
                                 getcanonicalhrflibrary(STIMDUR, TR).T)
        ours, ours_s = fit_brainrecon(designs, data)
        theirs, theirs_s = fit_glmsingle(designs, data)
        row = {"size": name, "runs": runs, "volumes": n_times, "voxels": voxels,
               "conditions": conditions, "trials": int(sum(d.sum() for d in designs)),
               "glmsingle_s": round(theirs_s, 2), "brainrecon_s": round(ours_s, 2),
               "speedup": round(theirs_s / ours_s, 1), "agreement": agreement(theirs, ours)}
        rows.append(row)
        if not args.json:
            print(f"{name}: {runs} runs x {n_times} volumes, {voxels} voxels, {row['trials']} "
                  f"trials: GLMsingle {theirs_s:.1f} s, brainrecon {ours_s:.2f} s "
                  f"({row['speedup']}x)")
            for key, value in row["agreement"].items():
                print(f"  {key}: {value}")
    meta = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
            "python": platform.python_version(), "numpy": np.__version__}
    if args.json:
        print(json.dumps({"machine": meta, "results": rows}, indent=1))
    else:
        print(f"CPU: {meta['cpu']} ({meta['cores']} logical cores), {args.threads} thread(s) "
              f"each side, Python {meta['python']}, numpy {meta['numpy']}")


if __name__ == "__main__":
    main()
