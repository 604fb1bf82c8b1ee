"""Fit time of brainrecon.RidgeCV against scikit-learn's RidgeCV and himalaya's RidgeCV /
KernelRidgeCV, in one Python process on the same arrays.

    python crates/python/benchmarks/bench_ridge.py [--workload C] [--repeats 1]

The workloads are the ridge benchmark's (crates/ridge/src/bench.rs): a planted rank-8 problem,
the 10-value alpha grid over 1e1 … 1e6. Like is timed against like: leave-one-out against
scikit-learn (which fits float64), 5-fold against himalaya (numpy backend, the float32 input).
"""

import argparse
import json
import os
import platform
import time

import numpy as np

WORKLOADS = {  # name: (n_train, p, t)
    "A": (8859, 15724, 768),
    "B": (8859, 768, 15724),
    "C": (2000, 4000, 1000),
}
ALPHAS = np.logspace(1, 6, 10)


def planted(n, p, t, seed=0, rank=8):
    rng = np.random.default_rng(seed)
    uniform = lambda *shape: rng.uniform(-1, 1, size=shape).astype(np.float32)
    latent = uniform(n, rank)
    X = latent @ uniform(rank, p) + uniform(n, p)
    Y = latent @ uniform(rank, t) + uniform(n, t)
    return np.ascontiguousarray(X), np.ascontiguousarray(Y)


def timed(fit, repeats):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model = fit()
        best = min(best, time.perf_counter() - start)
    return best, model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="C", choices=sorted(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import brainrecon
    import sklearn
    import sklearn.linear_model
    import himalaya
    import himalaya.kernel_ridge
    import himalaya.ridge

    n, p, t = WORKLOADS[args.workload]
    X, Y = planted(n, p, t)
    rows = []
    cases = [
        ("brainrecon.RidgeCV(cv=None) [LOO]", lambda: brainrecon.RidgeCV(ALPHAS).fit(X, Y)),
        ("sklearn RidgeCV(alpha_per_target=True) [LOO]",
         lambda: sklearn.linear_model.RidgeCV(ALPHAS, alpha_per_target=True).fit(X, Y)),
        ("brainrecon.RidgeCV(cv=5)", lambda: brainrecon.RidgeCV(ALPHAS, cv=5).fit(X, Y)),
        ("himalaya RidgeCV(cv=5)",
         lambda: himalaya.ridge.RidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True).fit(X, Y)),
        ("himalaya KernelRidgeCV(cv=5)",
         lambda: himalaya.kernel_ridge.KernelRidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True).fit(X, Y)),
    ]
    for name, fit in cases:
        seconds, _ = timed(fit, args.repeats)
        rows.append({"fit": name, "seconds": seconds})
    loo, kfold = rows[0]["seconds"], rows[2]["seconds"]
    for row in rows:
        row["vs_brainrecon"] = row["seconds"] / (loo if "LOO" in row["fit"] else kfold)
    info = {"workload": args.workload, "shape": f"{n}x{p} -> {t}", "alphas": len(ALPHAS),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "versions": {"brainrecon": brainrecon.__version__, "scikit-learn": sklearn.__version__,
                         "himalaya": himalaya.__version__, "numpy": np.__version__}}
    if args.json:
        print(json.dumps({"info": info, "rows": rows}, indent=2))
        return
    print(f"workload {args.workload}: X {n}x{p} -> Y {t}, {len(ALPHAS)} alphas, {os.cpu_count()} CPUs")
    print(f"{'fit':48s} {'seconds':>9s} {'time / brainrecon':>18s}")
    for row in rows:
        print(f"{row['fit']:48s} {row['seconds']:9.2f} {row['vs_brainrecon']:17.2f}x")


if __name__ == "__main__":
    main()
