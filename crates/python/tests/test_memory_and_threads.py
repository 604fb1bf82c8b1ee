"""No second copy of a large float32 input (peak memory measured), and the GIL is released."""

import os
import subprocess
import sys
import threading
import time

import numpy as np

import brainrecon
from brainrecon import _native

# Size of the input of the zero-copy check; BRAINRECON_ZERO_COPY_MB lowers it on small machines.
INPUT_MB = int(os.environ.get("BRAINRECON_ZERO_COPY_MB", "1024"))

PEAK_SCRIPT = r"""
import resource, sys, numpy as np, brainrecon
mb = int(sys.argv[1])
n, t = 1024, 2
p = mb * 2**20 // (4 * n)
rng = np.random.default_rng(0)
X = np.empty((n, p), dtype=np.float32)
for i in range(0, n, 64):
    rng.random((min(64, n - i), p), dtype=np.float32, out=X[i:i + 64])
Y = X[:, :t] + rng.standard_normal((n, t), dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model = brainrecon.RidgeCV(alphas=[1e2, 1e4, 1e6], gcv=True, precision="float32").fit(X, Y)
after_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model.predict(X)
after_predict = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(X.nbytes, before, after_fit, after_predict)
"""


def test_a_large_float32_input_is_not_copied():
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(INPUT_MB)], check=True,
                         capture_output=True, text=True).stdout.split()
    size, before, after_fit, after_predict = map(int, out)
    # a copy of X would add `size`; the fit's own buffers (n×n Gram matrix, p×t weights) are small
    assert after_fit - before < 0.2 * size, (size, before, after_fit)
    assert after_predict - before < 0.2 * size, (size, before, after_predict)


def test_the_gil_is_released_during_a_fit():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1500, 400), dtype=np.float32)
    Y = rng.standard_normal((1500, 1000), dtype=np.float32)
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    worker = threading.Thread(target=count)
    worker.start()
    try:
        # fits until half a second has passed, so that a fast machine still gives the other
        # thread time to tick (one fit takes 0.17-0.5 s on 2 cores)
        start = time.perf_counter()
        for _ in range(100):
            _native.ridge_fit(X, Y, list(np.logspace(-1, 4, 10)))
            end = time.perf_counter()
            if end - start > 0.5:
                break
    finally:
        stop.set()
        worker.join()
    during = [t for t in ticks if start < t < end]
    assert end - start > 0.2, "the fit should take long enough to measure"
    # with the GIL held the other thread could not tick at all while the fit runs
    assert len(during) > 0.3 * (end - start) / 0.0011, (len(during), end - start)
