"""Fit time and test accuracy of brainrecon's ridge estimators against scikit-learn's RidgeCV
and himalaya's RidgeCV / KernelRidgeCV, in one Python process on the same arrays.

    python crates/python/benchmarks/bench_ridge.py [--workload A B C] [--repeats 1] [--json]
    python crates/python/benchmarks/bench_ridge.py --table run.json   # the table of a saved run

The workloads are the ridge benchmark's (crates/ridge/src/bench.rs, tools/bench/ridge.sh): a
planted rank-8 problem (uniform latent, mixing and noise), 10 alphas log-spaced over 1e1 … 1e6,
test rows without noise on Y. Like is timed against like: leave-one-out against scikit-learn
(which fits in float64), 5-fold against himalaya (numpy backend, the float32 input). A
form that is not sensible for the shape is skipped on both sides, as in the CLI benchmark:
RidgeCV(cv=5) when p > n (five SVDs of n × p), KernelRidgeCV when p < n. The score is the mean over targets
of the Pearson r between test predictions and the noise-free test targets.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

WORKLOADS = {  # name: (n_train, n_test, p, t)
    "A": (8859, 982, 15724, 768),
    "B": (8859, 982, 768, 15724),
    "C": (2000, 500, 4000, 1000),
}
ALPHAS = np.logspace(1, 6, 10)


def planted(n, n_test, p, t, seed=0, rank=8):
    """X (n, p), Y (n, t), X_test (n_test, p), noise-free Y_test (n_test, t), float32."""
    rng = np.random.default_rng(seed)
    uniform = lambda *shape: rng.uniform(-1, 1, size=shape).astype(np.float32)
    mix_x, mix_y = uniform(rank, p), uniform(rank, t)
    latent, latent_test = uniform(n, rank), uniform(n_test, rank)
    X = latent @ mix_x + uniform(n, p)
    Y = latent @ mix_y + uniform(n, t)
    X_test = latent_test @ mix_x + uniform(n_test, p)
    Y_test = latent_test @ mix_y
    return [np.ascontiguousarray(a) for a in (X, Y, X_test, Y_test)]


def mean_pearson(y_true, y_pred):
    """Mean over columns of the Pearson r."""
    a = y_true - y_true.mean(0)
    b = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64).mean(0)
    r = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return float(np.mean(r))


def cases(n, p):
    """(name, comparison group, estimator factory or the reason it is skipped)."""
    import brainrecon
    import himalaya.kernel_ridge
    import himalaya.ridge
    import sklearn.linear_model

    kernel_note = "skipped: p < n, the kernel form is not sensible"
    primal_note = "skipped: p > n, five SVDs of n x p; the kernel form is the sensible one"
    return [
        ("brainrecon.RidgeCV(cv=None) [LOO, float64]", "LOO",
         lambda: brainrecon.RidgeCV(ALPHAS)),
        ("brainrecon.RidgeCV(cv=None, gcv=True, precision='float32') [GCV]", "GCV",
         lambda: brainrecon.RidgeCV(ALPHAS, gcv=True, precision="float32")),
        ("sklearn RidgeCV(alpha_per_target=True) [LOO]", "LOO",
         lambda: sklearn.linear_model.RidgeCV(ALPHAS, alpha_per_target=True)),
        ("brainrecon.RidgeCV(cv=5)", "5-fold",
         (lambda: brainrecon.RidgeCV(ALPHAS, cv=5)) if p <= n else primal_note),
        ("himalaya RidgeCV(cv=5)", "5-fold",
         (lambda: himalaya.ridge.RidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True))
         if p <= n else primal_note),
        ("brainrecon.KernelRidgeCV(cv=5)", "kernel 5-fold",
         (lambda: brainrecon.KernelRidgeCV(ALPHAS, cv=5, fit_intercept=True))
         if p >= n else kernel_note),
        ("himalaya KernelRidgeCV(cv=5)", "kernel 5-fold",
         (lambda: himalaya.kernel_ridge.KernelRidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True))
         if p >= n else kernel_note),
    ]


def run_workload(name, repeats):
    n, n_test, p, t = WORKLOADS[name]
    X, Y, X_test, Y_test = planted(n, n_test, p, t)
    rows = []
    for fit_name, group, make in cases(n, p):
        if isinstance(make, str):
            rows.append({"workload": name, "fit": fit_name, "group": group, "skipped": make})
            continue
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            model = make().fit(X, Y)
            best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        pred = model.predict(X_test)
        predict = time.perf_counter() - start
        rows.append({"workload": name, "fit": fit_name, "group": group, "seconds": best,
                     "predict_seconds": predict, "test_r": mean_pearson(Y_test, pred)})
        # each row as soon as it is measured: a long run that is stopped keeps what it had
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        del model, pred
    # Each anchor against brainrecon's estimator of its group; sklearn's LOO also against GCV.
    ours = {r["group"]: r["seconds"] for r in rows
            if r["fit"].startswith("brainrecon") and "seconds" in r}
    for row in rows:
        if "seconds" in row and not row["fit"].startswith("brainrecon"):
            row["vs_brainrecon"] = row["seconds"] / ours[row["group"]]
            if row["group"] == "LOO":
                row["vs_brainrecon_gcv"] = row["seconds"] / ours["GCV"]
    return {"shape": f"{n}x{p} -> {t} (test {n_test})", "rows": rows}


def print_table(run):
    info, results = run["info"], run["workloads"]
    print(f"{info['alphas']} alphas, {info['cpus']} CPUs, {info['versions']}")
    for w, result in results.items():
        print(f"{w}: {result['shape']}")
    print("| workload | fit | seconds | test mean r | time ÷ brainrecon's |")
    print("| --- | --- | ---: | ---: | ---: |")
    for w, result in results.items():
        for row in result["rows"]:
            if "skipped" in row:
                print(f"| {w} | {row['fit']} | {row['skipped']} | | |")
                continue
            ratio = f"{row['vs_brainrecon']:.2f}" if "vs_brainrecon" in row else ""
            if "vs_brainrecon_gcv" in row:
                ratio += f" ({row['vs_brainrecon_gcv']:.2f} vs GCV f32)"
            print(f"| {w} | {row['fit']} | {row['seconds']:.1f} | {row['test_r']:.4f} | {ratio} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", nargs="+", default=["C"], choices=sorted(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--table", metavar="JSON", help="print the table of a saved --json run")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            print_table(json.load(f))
        return
    import brainrecon
    import himalaya
    import sklearn

    info = {"alphas": len(ALPHAS), "cpus": os.cpu_count(), "python": platform.python_version(),
            "versions": {"brainrecon": brainrecon.__version__, "scikit-learn": sklearn.__version__,
                         "himalaya": himalaya.__version__, "numpy": np.__version__}}
    run = {"info": info, "workloads": {w: run_workload(w, args.repeats) for w in args.workload}}
    if args.json:
        print(json.dumps(run, indent=2))
    else:
        print_table(run)


if __name__ == "__main__":
    main()
