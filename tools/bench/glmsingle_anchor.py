#!/usr/bin/env python3
"""GLMsingle on a seeded event-related experiment, timed, beside brainrecon-glm
(crates/glm/examples/glmsingle.rs) on the same files: the Python side of tools/bench/glmsingle.sh.

    glmsingle_anchor.py make DIR --runs R --volumes T --voxels V --conditions C --every K
    glmsingle_anchor.py fit DIR --glmsingle CHECKOUT --models ab|all  (GLMsingle, timed)
    glmsingle_anchor.py compare DIR --models ab|all --threads "1 2" --sides both|brainrecon
                                                        (table of costs and agreement)

The experiment: TR 1.6 s, 3-s stimuli (NSD's), a trial every K TRs (K may be fractional: onsets
rounded to the TR grid, as NSD's 4-s trials at TR 1.6 s would be), every condition shown
equally often over the session in shuffled order across runs;
half of the voxels respond, each with one of GLMsingle's library HRFs; three global noise
components that all voxels carry (what GLMdenoise removes), drifts and noise. Models: `ab` is
TYPEA + TYPEB (`wantglmdenoise=0, wantfracridge=0`), `all` GLMsingle's defaults (TYPEA-D).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

TR, STIMDUR = 1.6, 3.0


def make(args):
    sys.path.insert(0, os.path.abspath(args.glmsingle))
    from glmsingle.hrf.gethrf import getcanonicalhrflibrary

    library = getcanonicalhrflibrary(STIMDUR, TR).T
    rng = np.random.default_rng(7)
    v, t = args.voxels, args.volumes
    hrf_of_voxel = rng.integers(0, library.shape[1], v)
    hrfs = library[:, hrf_of_voxel] / library[:, hrf_of_voxel].max(axis=0)
    baseline = 1000 + 50 * rng.normal(size=v)
    responsive = np.arange(v) % 2 == 0
    amplitude = rng.normal(1.0, 0.5, size=(args.conditions, v)) * baseline / 100 * responsive
    loadings = rng.normal(0, 3, size=(3, v))
    time_axis = np.linspace(-1, 1, t)
    os.makedirs(args.dir, exist_ok=True)
    onsets = np.unique(np.round(np.arange(2, t - 10, args.every)).astype(int))
    # Every condition shown equally often over the session, in shuffled order across runs.
    order = rng.permutation(np.resize(np.arange(args.conditions), args.runs * len(onsets)))
    for run in range(1, args.runs + 1):
        design = np.zeros((t, args.conditions))
        design[onsets, order[(run - 1) * len(onsets):run * len(onsets)]] = 1
        signal = np.zeros((t, v))
        for onset, condition in zip(*np.nonzero(design)):
            span = min(len(hrfs), t - onset)
            signal[onset:onset + span] += hrfs[:span] * amplitude[condition]
        drift = rng.normal(0, 2, v) * time_axis[:, None] + rng.normal(0, 1, v) * time_axis[:, None] ** 2
        components = np.cumsum(rng.normal(0, 0.3, (t, 3)), axis=0)
        components -= components.mean(axis=0)
        data = (baseline + signal + drift + components @ loadings
                + rng.normal(0, 3, (t, v))).astype(np.float32)
        np.save(os.path.join(args.dir, f"data_run{run}.npy"), data)
        np.save(os.path.join(args.dir, f"design_run{run}.npy"), design)
    degree = int(np.sign(t * TR / 120) * np.ceil(np.floor(abs(t * TR / 120) * 2) / 2))
    with open(os.path.join(args.dir, "meta.json"), "w") as f:
        json.dump({"tr": TR, "stimdur": STIMDUR, "runs": args.runs, "degree": degree,
                   "voxels": v, "volumes": t, "conditions": args.conditions}, f)


def fit(args):
    sys.path.insert(0, os.path.abspath(args.glmsingle))
    from glmsingle.glmsingle import GLM_single

    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    runs = range(1, meta["runs"] + 1)
    data = [np.load(os.path.join(args.dir, f"data_run{r}.npy")).T for r in runs]
    designs = [np.load(os.path.join(args.dir, f"design_run{r}.npy")) for r in runs]
    if args.models == "ab":
        options = {"wantlibrary": 1, "wantglmdenoise": 0, "wantfracridge": 0,
                   "wantfileoutputs": [0, 0, 0, 0], "wantmemoryoutputs": [1, 1, 0, 0]}
    else:
        options = {"wantfileoutputs": [0, 0, 0, 0], "wantmemoryoutputs": [1, 1, 1, 1]}
    glm = GLM_single(options)
    np.random.seed(0)  # scikit-learn's mixture behind the tail threshold draws from it
    # No figuredir: GLMsingle then draws no figures (wantfig 0), but still makes an empty figure
    # folder in the working directory, so run from the data folder.
    os.chdir(args.dir)
    started = time.perf_counter()
    results = glm.fit(designs, data, STIMDUR, TR, outputdir="glmsingle_outputs")
    seconds = time.perf_counter() - started
    save = lambda name, value: np.save(f"glmsingle_{name}.npy", value)
    save("onoffR2", np.ravel(results["typea"]["onoffR2"]))
    last = results["typeb" if args.models == "ab" else "typed"]
    save("HRFindex", np.ravel(last["HRFindex"]))
    save("R2", np.ravel(last["R2"]))
    save("betasmd", np.reshape(last["betasmd"], (meta["voxels"], -1)))
    if args.models == "all":
        save("FRACvalue", np.ravel(last["FRACvalue"]))
        save("pcnum", np.array([int(last["pcnum"])]))
    with open("glmsingle_time.json", "w") as f:
        json.dump({"seconds": seconds}, f)


def compare(args):
    d = args.dir
    meta = json.load(open(os.path.join(d, "meta.json")))
    threads = args.threads.split()
    sides = ["glmsingle", "brainrecon"] if args.sides == "both" else ["brainrecon"]
    models = "TYPEA+B" if args.models == "ab" else "TYPEA-D"
    read = lambda name: json.load(open(os.path.join(d, name)))
    costs = {(side, t): {**read(f"{side}_t{t}.time"), **read(f"{side}_t{t}.fit.json")}
             for side in sides for t in threads}
    for cost in costs.values():
        cost["cpu_s"] = cost["user_s"] + cost["system_s"]
    trials = np.load(os.path.join(d, "brainrecon_betasmd.npy")).shape[1]
    print(f"{meta['runs']} runs × {meta['volumes']} volumes, {meta['voxels']} voxels, {trials} trials, "
          f"{models}; wall, CPU (user + system) and peak memory of each whole process "
          f"(the fit alone in brackets)")
    print()
    names = {"glmsingle": "GLMsingle", "brainrecon": "brainrecon-glm"}
    header = "| threads | " + " | ".join(f"{names[s]} wall (fit) | CPU | peak" for s in sides)
    if len(sides) == 2:
        header += " | wall ratio | CPU ratio | memory ratio"
    print(header + " |")
    print("|" + "---:|" * (header.count("|")))
    for t in threads:
        row = f"| {t} |"
        for side in sides:
            c = costs[(side, t)]
            row += f" {c['wall_s']:.1f} s ({c['seconds']:.1f}) | {c['cpu_s']:.1f} s | {c['peak_kb'] / 1048576:.2f} GB |"
        if len(sides) == 2:
            g, b = costs[("glmsingle", t)], costs[("brainrecon", t)]
            row += (f" {g['wall_s'] / b['wall_s']:.1f}× | {g['cpu_s'] / b['cpu_s']:.1f}× "
                    f"| {g['peak_kb'] / b['peak_kb']:.1f}× |")
        print(row)
    print()
    for side in sides:
        best = min(threads, key=lambda t: costs[(side, t)]["wall_s"])
        print(f"{names[side]}'s fastest setting here: {best} thread(s), "
              f"{costs[(side, best)]['wall_s']:.1f} s wall")
    if len(sides) == 2:
        gb = min(costs[("glmsingle", t)]["wall_s"] for t in threads)
        bb = min(costs[("brainrecon", t)]["wall_s"] for t in threads)
        print(f"best against best: {gb / bb:.1f}×")
        agreement(d, args.models)


def agreement(d, models):
    load = lambda side, name: np.load(os.path.join(d, f"{side}_{name}.npy"))
    same = load("brainrecon", "HRFindex") == load("glmsingle", "HRFindex")
    if models == "all":
        same &= np.abs(load("brainrecon", "FRACvalue") - load("glmsingle", "FRACvalue")) < 1e-6
    betas = np.abs(load("brainrecon", "betasmd") - load("glmsingle", "betasmd"))[same]
    r2 = np.abs(load("brainrecon", "R2") - load("glmsingle", "R2"))[same]
    onoff = np.abs(load("brainrecon", "onoffR2") - load("glmsingle", "onoffR2"))
    extra = ""
    if models == "all":
        extra = (f"; pcnum {int(load('brainrecon', 'pcnum')[0])} against "
                 f"{int(load('glmsingle', 'pcnum')[0])}; FRACvalue equal for "
                 f"{(np.abs(load('brainrecon', 'FRACvalue') - load('glmsingle', 'FRACvalue')) < 1e-6).mean():.4f}")
    print(f"HRFindex{' and FRACvalue' if models == 'all' else ''} equal for {same.mean():.4f} of voxels; "
          f"where equal, betas within {betas.max():.2e} "
          f"(largest {np.abs(load('glmsingle', 'betasmd')).max():.2f}); R2 within {r2.max():.2e}; "
          f"onoffR2 within {onoff.max():.2e}{extra}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["make", "fit", "compare"])
    parser.add_argument("dir")
    parser.add_argument("--glmsingle", default="GLMsingle")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--volumes", type=int, default=188)
    parser.add_argument("--voxels", type=int, default=20000)
    parser.add_argument("--conditions", type=int, default=80)
    parser.add_argument("--every", type=float, default=3)
    parser.add_argument("--models", choices=["ab", "all"], default="all")
    parser.add_argument("--threads", default="1 2", help="compare: the thread settings timed")
    parser.add_argument("--sides", choices=["both", "brainrecon"], default="both")
    args = parser.parse_args()
    {"make": make, "fit": fit, "compare": compare}[args.step](args)


if __name__ == "__main__":
    main()
