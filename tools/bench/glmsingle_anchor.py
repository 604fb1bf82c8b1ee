#!/usr/bin/env python3
"""GLMsingle's TYPEA + TYPEB on a seeded event-related experiment, timed, beside brainrecon-glm
(crates/glm/examples/typeb.rs) on the same files: the Python side of tools/bench/glmsingle.sh.

    glmsingle_anchor.py make DIR --runs R --volumes T --voxels V --conditions C --every K
    glmsingle_anchor.py fit DIR --glmsingle CHECKOUT        (GLMsingle, timed)
    glmsingle_anchor.py compare DIR                          (table of times and agreement)

The experiment: TR 1.6 s, 3-s stimuli (NSD's), a trial every K TRs in shuffled condition
order, each voxel's responses made with one of GLMsingle's library HRFs, drifts and noise.
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
    amplitude = rng.normal(1.0, 0.5, size=(args.conditions, v)) * baseline / 100
    time_axis = np.linspace(-1, 1, t)
    os.makedirs(args.dir, exist_ok=True)
    for run in range(1, args.runs + 1):
        design = np.zeros((t, args.conditions))
        onsets = np.arange(2, t - 10, args.every)
        design[onsets, rng.permutation(np.resize(np.arange(args.conditions), len(onsets)))] = 1
        signal = np.zeros((t, v))
        for onset, condition in zip(*np.nonzero(design)):
            span = min(len(hrfs), t - onset)
            signal[onset:onset + span] += hrfs[:span] * amplitude[condition]
        drift = rng.normal(0, 2, v) * time_axis[:, None] + rng.normal(0, 1, v) * time_axis[:, None] ** 2
        data = (baseline + signal + drift + rng.normal(0, 3, (t, v))).astype(np.float32)
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
    glm = GLM_single({"wantlibrary": 1, "wantglmdenoise": 0, "wantfracridge": 0,
                      "wantfileoutputs": [0, 0, 0, 0], "wantmemoryoutputs": [1, 1, 0, 0]})
    started = time.perf_counter()
    # GLMsingle writes design files and figures even when asked for memory outputs only.
    results = glm.fit(designs, data, STIMDUR, TR,
                      outputdir=os.path.join(args.dir, "glmsingle_outputs"),
                      figuredir=os.path.join(args.dir, "glmsingle_figures"))
    seconds = time.perf_counter() - started
    b = results["typeb"]
    np.save(os.path.join(args.dir, "glmsingle_onoffR2.npy"), np.ravel(results["typea"]["onoffR2"]))
    np.save(os.path.join(args.dir, "glmsingle_HRFindex.npy"), np.ravel(b["HRFindex"]))
    np.save(os.path.join(args.dir, "glmsingle_R2.npy"), np.ravel(b["R2"]))
    np.save(os.path.join(args.dir, "glmsingle_betasmd.npy"),
            np.reshape(b["betasmd"], (meta["voxels"], -1)))
    with open(os.path.join(args.dir, "glmsingle_time.json"), "w") as f:
        json.dump({"seconds": seconds}, f)


def compare(args):
    d = args.dir
    meta = json.load(open(os.path.join(d, "meta.json")))
    ours = json.load(open(os.path.join(d, "brainrecon_time.json")))
    theirs = json.load(open(os.path.join(d, "glmsingle_time.json")))
    load = lambda side, name: np.load(os.path.join(d, f"{side}_{name}.npy"))
    same = load("brainrecon", "HRFindex") == load("glmsingle", "HRFindex")
    betas = np.abs(load("brainrecon", "betasmd") - load("glmsingle", "betasmd"))[same]
    r2 = np.abs(load("brainrecon", "R2") - load("glmsingle", "R2"))
    onoff = np.abs(load("brainrecon", "onoffR2") - load("glmsingle", "onoffR2"))
    ours_total = ours["seconds_typea"] + ours["seconds_typeb"]
    print(f"| runs × volumes | voxels | trials | GLMsingle TYPEA+B | brainrecon TYPEA+B | speed-up |")
    print(f"| {meta['runs']} × {meta['volumes']} | {meta['voxels']} | {load('brainrecon', 'betasmd').shape[1]} "
          f"| {theirs['seconds']:.1f} s | {ours_total:.1f} s (A {ours['seconds_typea']:.1f}, B {ours['seconds_typeb']:.1f}) "
          f"| {theirs['seconds'] / ours_total:.1f}× |")
    print(f"HRFindex equal for {same.mean():.4f} of voxels; where equal, betas within {betas.max():.2e} "
          f"(largest {np.abs(load('glmsingle', 'betasmd')).max():.2f}); R2 within {r2.max():.2e}; "
          f"onoffR2 within {onoff.max():.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["make", "fit", "compare"])
    parser.add_argument("dir")
    parser.add_argument("--glmsingle", default="GLMsingle")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--volumes", type=int, default=188)
    parser.add_argument("--voxels", type=int, default=20000)
    parser.add_argument("--conditions", type=int, default=80)
    parser.add_argument("--every", type=int, default=3)
    args = parser.parse_args()
    {"make": make, "fit": fit, "compare": compare}[args.step](args)


if __name__ == "__main__":
    main()
