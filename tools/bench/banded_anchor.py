#!/usr/bin/env python3
"""himalaya anchor for `brainrecon bench banded`: the same .npy data and the same search.

    python tools/bench/banded_anchor.py --data-dir target/bench-banded --threads 2 --out himalaya.json
    python tools/bench/banded_anchor.py --table brainrecon.json himalaya.json

The fit is what a himalaya user writes for banded ridge on three feature spaces:
``make_pipeline(ColumnKernelizer([(band_b, Kernelizer("linear"), columns_b) ...]),
MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", ...))`` with the
candidates of meta.json passed explicitly (``n_iter=array``), the same alphas, R² scoring,
leave-one-run-out splits over the runs of runs.npy, an intercept, numpy backend, float32
arrays, targets in batches of 2048 (brainrecon's chunk). The clock covers the pipeline's fit
(kernels included, as brainrecon's fit forms its Gram matrices); peak memory is this
process's ru_maxrss, including the arrays it loads (as for brainrecon's VmHWM).
"""
import argparse
import json
import os
import resource
import sys
import time


def fit(data_dir, threads):
    import numpy as np
    from threadpoolctl import threadpool_limits
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import ColumnKernelizer, Kernelizer, MultipleKernelRidgeCV
    from himalaya.scoring import r2_score
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline

    set_backend("numpy", on_error="raise")
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    load = lambda name: np.load(os.path.join(data_dir, name))
    widths = meta["widths"]
    x_train = np.hstack([load(f"band{b}_train.npy") for b in range(len(widths))])
    x_test = np.hstack([load(f"band{b}_test.npy") for b in range(len(widths))])
    y_train, y_test, runs = load("y_train.npy"), load("y_test.npy"), load("runs.npy")
    edges = np.concatenate([[0], np.cumsum(widths)])
    kernelizer = ColumnKernelizer([(f"band{b}", Kernelizer(kernel="linear"), slice(int(edges[b]), int(edges[b + 1])))
                                   for b in range(len(widths))])
    splits = list(LeaveOneGroupOut().split(x_train, groups=runs))
    solver_params = dict(n_iter=np.asarray(meta["candidates"], dtype=np.float64), alphas=np.asarray(meta["alphas"]),
                         score_func=r2_score, progress_bar=False, n_targets_batch=2048,
                         n_targets_batch_refit=2048)
    model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", solver_params=solver_params,
                                  fit_intercept=True, cv=splits)
    pipeline = make_pipeline(kernelizer, model)
    with threadpool_limits(limits=threads):
        start = time.perf_counter()
        pipeline.fit(x_train, y_train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        pred = np.asarray(pipeline.predict(x_test), dtype=np.float64)
        predict_seconds = time.perf_counter() - start
    r2 = np.asarray(r2_score(y_test.astype(np.float64), pred))
    return dict(voxels=int(meta["t"]), n_iter=len(meta["candidates"]), threads=threads,
                fit_seconds=fit_seconds, predict_seconds=predict_seconds,
                test_r2_mean=float(np.mean(r2)), test_r2_median=float(np.median(r2)),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
                himalaya_alphas=np.asarray(model.best_alphas_).tolist()[:5])


def table(ours_path, theirs_path):
    ours, theirs = json.load(open(ours_path)), json.load(open(theirs_path))
    print("engine      voxels  candidates  fit s     predict s  test R² mean  test R² median  peak MB")
    for name, r in (("brainrecon", ours), ("himalaya", theirs)):
        print(f"{name:<11} {r['voxels']:<7} {r['n_iter']:<11} {r['fit_seconds']:<9.1f} {r['predict_seconds']:<10.2f} "
              f"{r['test_r2_mean']:<13.5f} {r['test_r2_median']:<15.5f} {r['peak_rss_mb']:.0f}")
    print(f"fit speed-up (himalaya / brainrecon): {theirs['fit_seconds'] / ours['fit_seconds']:.2f}x; "
          f"test R² difference (mean): {ours['test_r2_mean'] - theirs['test_r2_mean']:+.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="target/bench-banded")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--table", nargs=2, metavar=("BRAINRECON_JSON", "HIMALAYA_JSON"))
    args = parser.parse_args()
    if args.table:
        table(*args.table)
        return
    result = fit(args.data_dir, args.threads)
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
