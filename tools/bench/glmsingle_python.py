#!/usr/bin/env python3
"""GLMsingle's GLM_single(opt).fit against brainrecon.glm.GLM_single(opt).fit, each side in its
own process on the same files: the Python side of tools/bench/glmsingle_python.sh.

    glmsingle_python.py make DIR --size small|moderate
    glmsingle_python.py fit DIR --side glmsingle|brainrecon --name NAME [--glmsingle CHECKOUT]
    glmsingle_python.py compare DIR [DIR ...]        (table of times, ratios and agreement)

The experiment is crates/python/benchmarks/bench_glmsingle.py's (its sizes and seeded
simulation, imported from it), so the figures compare with that script's one-process runs.
Both sides fit GLMsingle's defaults (TYPEA-D) with memory outputs only.

The work differs in one place: GLMsingle's fit always fits a diagnostic run-wise FIR model
(every trial as one condition, an FIR up to `firdelay` = 30 s, each run apart) before TYPEA;
no option turns it off, and brainrecon does not compute it. Its share is timed inside
GLMsingle's fit by wrapping the `glm_estimatemodel` calls made with the 'fir' model, so each
GLMsingle fit reports its whole time and the FIR diagnostic's part of it.
"""

import argparse
import contextlib
import glob
import io
import json
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "crates", "python", "benchmarks"))
import bench_glmsingle  # noqa: E402  (the sizes, the simulation, TR and stimulus duration)

OPTIONS = {"wantfileoutputs": [0, 0, 0, 0], "wantmemoryoutputs": [1, 1, 1, 1]}


def make(args):
    sys.path.insert(0, os.path.abspath(args.glmsingle))
    from glmsingle.hrf.gethrf import getcanonicalhrflibrary

    runs, n_times, voxels, conditions = bench_glmsingle.SIZES[args.size]
    library = getcanonicalhrflibrary(bench_glmsingle.STIMDUR, bench_glmsingle.TR).T
    designs, data = bench_glmsingle.simulate(runs, n_times, voxels, conditions, library)
    os.makedirs(args.dir, exist_ok=True)
    for run, (design, run_data) in enumerate(zip(designs, data), start=1):
        np.save(os.path.join(args.dir, f"design_run{run}.npy"), design)
        np.save(os.path.join(args.dir, f"data_run{run}.npy"), run_data)  # voxels x time, float32
    with open(os.path.join(args.dir, "meta.json"), "w") as f:
        json.dump({"size": args.size, "runs": runs, "volumes": n_times, "voxels": voxels,
                   "conditions": conditions, "trials": int(sum(d.sum() for d in designs))}, f)


def read_runs(d):
    runs = json.load(open(os.path.join(d, "meta.json")))["runs"]
    designs = [np.load(os.path.join(d, f"design_run{r}.npy")) for r in range(1, runs + 1)]
    data = [np.load(os.path.join(d, f"data_run{r}.npy")) for r in range(1, runs + 1)]
    return designs, data


def fit_glmsingle(designs, data, checkout, scratch):
    sys.path.insert(0, os.path.abspath(checkout))
    import glmsingle.glmsingle as module

    fir = {"seconds": 0.0, "calls": 0}
    estimate = module.glm_estimatemodel

    def timed_estimate(*args, **kwargs):
        started = time.perf_counter()
        out = estimate(*args, **kwargs)
        if len(args) > 4 and args[4] == "fir":
            fir["seconds"] += time.perf_counter() - started
            fir["calls"] += 1
        return out

    module.glm_estimatemodel = timed_estimate
    np.random.seed(0)  # scikit-learn's mixture behind the tail threshold draws from it
    os.makedirs(scratch, exist_ok=True)
    os.chdir(scratch)  # GLMsingle makes its default figure folder in the working folder
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = module.GLM_single(dict(OPTIONS)).fit(
            designs, data, bench_glmsingle.STIMDUR, bench_glmsingle.TR,
            outputdir=os.path.join(scratch, "out"))
    seconds = time.perf_counter() - started
    if fir["calls"] != len(data):
        raise SystemExit(f"error: expected one FIR diagnostic fit per run ({len(data)}), "
                         f"timed {fir['calls']}: GLMsingle's fit changed")
    return results, {"seconds": seconds, "fir_seconds": fir["seconds"]}


def fit_brainrecon(designs, data):
    from brainrecon.glm import GLM_single

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = GLM_single({**OPTIONS, "suppressoutput": 1}).fit(
            designs, data, bench_glmsingle.STIMDUR, bench_glmsingle.TR)
    return results, {"seconds": time.perf_counter() - started}


def blas_threads():
    """The thread counts numpy's BLAS and OpenMP pools run with, as threadpoolctl reads them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return sorted({(p["internal_api"], p["num_threads"]) for p in threadpool_info()})


def fit(args):
    d = os.path.abspath(args.dir)
    designs, data = read_runs(d)
    if args.side == "glmsingle":
        if not args.glmsingle:
            raise SystemExit("error: --side glmsingle needs --glmsingle CHECKOUT")
        results, cost = fit_glmsingle(designs, data, args.glmsingle,
                                      os.path.join(d, "scratch-glmsingle"))
    else:
        results, cost = fit_brainrecon(designs, data)
    cost["blas_threads"] = blas_threads()
    cost["rayon_threads"] = os.environ.get("RAYON_NUM_THREADS")
    with open(os.path.join(d, f"{args.name}.fit.json"), "w") as f:
        json.dump(cost, f)
    for name, value in [("onoffR2", results["typea"]["onoffR2"]),
                        ("HRFindex", results["typeb"]["HRFindex"]),
                        ("noisepool", results["typec"]["noisepool"]),
                        ("pcnum", np.array([int(results["typec"]["pcnum"])])),
                        ("FRACvalue", results["typed"]["FRACvalue"]),
                        ("betasmd", results["typed"]["betasmd"])]:
        np.save(os.path.join(d, f"{args.side}_{name}.npy"), np.asarray(value))


def span(values, fmt):
    low, high = min(values), max(values)
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else \
        f"{fmt.format(low)}–{fmt.format(high)}"


def agreement(d):
    load = lambda side, name: np.load(os.path.join(d, f"{side}_{name}.npy"))
    hrf = np.mean(load("brainrecon", "HRFindex") == load("glmsingle", "HRFindex"))
    pool = np.mean(load("brainrecon", "noisepool") == load("glmsingle", "noisepool"))
    frac = np.mean(np.abs(load("brainrecon", "FRACvalue") - load("glmsingle", "FRACvalue")) < 1e-6)
    pcnum = (int(load("brainrecon", "pcnum")[0]), int(load("glmsingle", "pcnum")[0]))
    ours = load("brainrecon", "betasmd").astype(np.float64)
    theirs = load("glmsingle", "betasmd").astype(np.float64)
    ours, theirs = ours.reshape(-1, ours.shape[-1]), theirs.reshape(-1, theirs.shape[-1])
    a, b = ours - ours.mean(1, keepdims=True), theirs - theirs.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    r = (a * b).sum(1)[den > 0] / den[den > 0]
    return (f"HRFindex equal {hrf:.2%}, noise pool equal {pool:.2%}, FRACvalue equal {frac:.2%}, "
            f"pcnum {pcnum[0]} against {pcnum[1]}, TYPED betas correlate ≥ {r.min():.10f} per voxel")


def compare(args):
    print("Fit times inside each process (s); ratio = GLMsingle / brainrecon within one repeat; "
          "'less FIR' = GLMsingle's fit without its run-wise FIR diagnostic, which brainrecon "
          "does not compute; ranges over repeats; load = 1-minute load average before the pair.")
    print()
    print("| size | threads | repeats | GLMsingle fit | of it FIR diagnostic | brainrecon fit "
          "| ratio | ratio less FIR | whole-process wall ratio | peak memory | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in args.dirs:
        meta = json.load(open(os.path.join(d, "meta.json")))
        size = (f"{meta['runs']} × {meta['volumes']}, {meta['voxels']:,} voxels, "
                f"{meta['trials']} trials")
        pairs = {}
        for path in sorted(glob.glob(os.path.join(d, "glmsingle_t*_r*.fit.json"))):
            key = os.path.basename(path)[len("glmsingle_"):-len(".fit.json")]
            if os.path.exists(os.path.join(d, f"brainrecon_{key}.fit.json")):
                threads = int(key.split("_")[0][1:])
                pairs.setdefault(threads, []).append(key)
        for threads in sorted(pairs):
            rows = []
            for key in pairs[threads]:
                read = lambda side, ext: json.load(open(os.path.join(d, f"{side}_{key}.{ext}")))
                g = {**read("glmsingle", "fit.json"), **read("glmsingle", "time")}
                b = {**read("brainrecon", "fit.json"), **read("brainrecon", "time")}
                rows.append((g, b))
            g_fit = [g["seconds"] for g, _ in rows]
            fir = [g["fir_seconds"] for g, _ in rows]
            b_fit = [b["seconds"] for _, b in rows]
            ratio = [g["seconds"] / b["seconds"] for g, b in rows]
            ratio_less = [(g["seconds"] - g["fir_seconds"]) / b["seconds"] for g, b in rows]
            wall = [g["wall_s"] / b["wall_s"] for g, b in rows]
            peak = (span([g["peak_kb"] / 1048576 for g, _ in rows], "{:.2f}") + " / "
                    + span([b["peak_kb"] / 1048576 for _, b in rows], "{:.2f}") + " GB")
            load = span([g["load"] for g, _ in rows] + [b["load"] for _, b in rows], "{:.2f}")
            print(f"| {size} | {threads} | {len(rows)} | {span(g_fit, '{:.1f}')} s "
                  f"| {span(fir, '{:.2f}')} s | {span(b_fit, '{:.2f}')} s "
                  f"| **{span(ratio, '{:.1f}')}×** | {span(ratio_less, '{:.1f}')}× "
                  f"| {span(wall, '{:.1f}')}× | {peak} | {load} |")
    print()
    for d in args.dirs:
        print(f"{os.path.basename(os.path.normpath(d))} (last repeat): {agreement(d)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make")
    p.add_argument("dir")
    p.add_argument("--size", required=True, choices=sorted(bench_glmsingle.SIZES))
    p.add_argument("--glmsingle", required=True, help="a checkout of cvnlab/GLMsingle")
    p = sub.add_parser("fit")
    p.add_argument("dir")
    p.add_argument("--side", required=True, choices=["glmsingle", "brainrecon"])
    p.add_argument("--name", required=True, help="the cost file's name: DIR/NAME.fit.json")
    p.add_argument("--glmsingle", help="a checkout of cvnlab/GLMsingle (--side glmsingle)")
    p = sub.add_parser("compare")
    p.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    {"make": make, "fit": fit, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
