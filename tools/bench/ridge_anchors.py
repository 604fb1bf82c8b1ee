#!/usr/bin/env python3
"""Python anchors for `brainrecon bench ridge`: the same .npy data, fitted with
scikit-learn and himalaya, each anchor in its own subprocess (peak memory =
that process's ru_maxrss, including the arrays it loads, as for brainrecon).

    python tools/bench/ridge_anchors.py --data-dir target/bench-data --workloads A,B,C --threads 2 --out anchors.json
    python tools/bench/ridge_anchors.py --table brainrecon.json anchors.json

Anchors (alphas from <data-dir>/<workload>/meta.json, one alpha per target):
  sklearn_loo        scikit-learn RidgeCV(alphas, alpha_per_target=True): efficient LOO
  himalaya_kernel    himalaya KernelRidgeCV(kernel="linear", cv=5), numpy backend
  himalaya_svd       himalaya RidgeCV(solver="svd", cv=5), numpy backend
  himalaya_kernel_cuda  himalaya KernelRidgeCV(kernel="linear", cv=5), torch_cuda backend (GPU;
                     not in the default list: tools/bench/gpu.sh asks for it). CUDA is started
                     before the clock, the clock stops after the device has finished, and the
                     peak is torch's reserved GPU memory.
An anchor is skipped where it is not sensible or would exceed ~10 minutes or
20 GB on a 2-core machine (SKIPS says why); each run is also killed after
--timeout seconds.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ANCHORS = ("sklearn_loo", "himalaya_kernel", "himalaya_svd")
GPU_ANCHORS = ("himalaya_kernel_cuda",)

# (workload, anchor) -> why it is not run
SKIPS = {
    ("B", "himalaya_kernel"): "p < n: the kernel form (five 7087x7087 kernels for 768 features) is not sensible",
    ("A", "himalaya_svd"): "p > n: five SVDs of 7087x15724 float32 (> 10 min on 2 cores); the kernel form is the sensible one",
    ("A16k", "himalaya_svd"): "p > n: five SVDs of 7087x15724 float32 (> 10 min on 2 cores); the kernel form is the sensible one",
}


def run_one(anchor, data_dir, threads):
    """Fits one anchor in this process; returns the measurement as a dict."""
    import resource

    import numpy as np
    from threadpoolctl import threadpool_limits

    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    load = lambda name: np.load(os.path.join(data_dir, name))
    x, y, x_test, y_test = (load(f) for f in ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"))
    alphas = np.asarray(meta["alphas"])
    gpu = anchor in GPU_ANCHORS
    if gpu:
        import torch
        torch.ones(1, device="cuda").sum().item()  # CUDA context and cuBLAS before the clock
        (torch.ones(64, 64, device="cuda") @ torch.ones(64, 64, device="cuda")).sum().item()
    with threadpool_limits(limits=threads):
        start = time.perf_counter()
        if gpu:
            from himalaya.backend import set_backend
            from himalaya.kernel_ridge import KernelRidgeCV
            backend = set_backend("torch_cuda", on_error="raise")
            model = KernelRidgeCV(alphas=alphas, kernel="linear", fit_intercept=True, cv=5).fit(x, y)
            torch.cuda.synchronize()
        elif anchor == "sklearn_loo":
            from sklearn.linear_model import RidgeCV
            model = RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=True).fit(x, y)
        else:
            from himalaya.backend import set_backend
            set_backend("numpy", on_error="raise")
            if anchor == "himalaya_kernel":
                from himalaya.kernel_ridge import KernelRidgeCV
                model = KernelRidgeCV(alphas=alphas, kernel="linear", fit_intercept=True, cv=5).fit(x, y)
            else:
                from himalaya.ridge import RidgeCV as HimalayaRidgeCV
                model = HimalayaRidgeCV(alphas=alphas, fit_intercept=True, solver="svd", cv=5,
                                        solver_params=dict(warn=False)).fit(x, y)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        pred = model.predict(x_test)
        pred = np.asarray(backend.to_numpy(pred) if gpu else pred, dtype=np.float64)
        predict_seconds = time.perf_counter() - start
    yt = y_test.astype(np.float64)
    pc, yc = pred - pred.mean(0), yt - yt.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (pc * yc).sum(0) / np.sqrt((pc ** 2).sum(0) * (yc ** 2).sum(0))
    result = dict(workload=meta["workload"], anchor=anchor, threads=threads, fit_seconds=fit_seconds,
                  predict_seconds=predict_seconds, mean_test_r=float(np.nanmean(r)),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6)
    if gpu:
        result.update(peak_gpu_mb=torch.cuda.max_memory_reserved() / 1e6, device=torch.cuda.get_device_name(),
                      torch=torch.__version__)
    return result


def spawn(anchor, data_dir, threads, timeout):
    """Runs one anchor in a fresh interpreter limited to `threads` BLAS/OpenMP threads."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, __file__, "--run", anchor, "--dir", data_dir, "--threads", str(threads)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(skipped=f"killed after {timeout} s")
    if done.returncode != 0:
        return dict(skipped=f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(brainrecon_json, anchors_json):
    """Markdown table: every run of both sides, and Python time / brainrecon time per anchor."""
    ours = json.load(open(brainrecon_json))
    theirs = json.load(open(anchors_json))
    key = lambda r: (r.get("cv", "loo"), r["precision"], r.get("device", "cpu"))  # noqa: E731
    configs = sorted({key(r) for r in ours})
    label = lambda cv, precision, device: f"{cv.upper()} {precision}" + ("" if device == "cpu" else f" {device}")  # noqa: E731
    lines = ["| workload | method | fit s | predict s | peak MB | test mean r | "
             + " | ".join(f"ratio vs brainrecon {label(*c)}" for c in configs) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(configs)]
    blank = " |" * len(configs)
    for workload in sorted({r["workload"] for r in ours} | {r["workload"] for r in theirs}):
        mine = {key(r): r for r in ours if r["workload"] == workload}
        for config, r in sorted(mine.items()):
            form = ", dual form" if r.get("form") == "dual" else ""
            lines.append(f"| {workload} | brainrecon {label(*config)} ({r['solver']}{form}) | {r['fit_seconds']:.2f} | "
                         f"{r['predict_seconds']:.2f} | {r['peak_rss_mb']:.0f} | {r['mean_test_r']:.4f} |{blank}")
        for r in (r for r in theirs if r["workload"] == workload):
            if "skipped" in r:
                lines.append(f"| {workload} | {r['anchor']} | skipped: {r['skipped']} | | | |{blank}")
                continue
            ratios = [f"{r['fit_seconds'] / mine[c]['fit_seconds']:.1f}x" if c in mine else "" for c in configs]
            lines.append(f"| {workload} | {r['anchor']} | {r['fit_seconds']:.2f} | {r['predict_seconds']:.2f} | "
                         f"{r['peak_rss_mb']:.0f} | {r['mean_test_r']:.4f} | " + " | ".join(ratios) + " |")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="target/bench-data")
    parser.add_argument("--workloads", default="A,B,C")
    parser.add_argument("--anchors", default=",".join(ANCHORS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--table", nargs=2, metavar=("BRAINRECON_JSON", "ANCHORS_JSON"),
                        help="print the combined table of two earlier runs and exit")
    parser.add_argument("--run", choices=ANCHORS + GPU_ANCHORS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run, args.dir, args.threads)))
        return
    if args.table:
        table(*args.table)
        return
    results = []
    for workload in args.workloads.split(","):
        data_dir = os.path.join(args.data_dir, workload)
        if not os.path.exists(os.path.join(data_dir, "meta.json")):
            sys.exit(f"error: {data_dir}/meta.json not found; run `brainrecon bench ridge --data-dir {args.data_dir}` first")
        for anchor in args.anchors.split(","):
            reason = SKIPS.get((workload, anchor))
            print(f"anchors: workload {workload} {anchor}" + (f": skipped ({reason})" if reason else "…"),
                  file=sys.stderr, flush=True)
            result = dict(skipped=reason) if reason else spawn(anchor, data_dir, args.threads, args.timeout)
            results.append(dict(dict(workload=workload, anchor=anchor), **result))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    text = json.dumps(results, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
