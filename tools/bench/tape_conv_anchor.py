#!/usr/bin/env python3
"""PyTorch's side of tools/bench/tape_conv.sh: one 3x3 convolution (stride 1, padding 1, bias)
forward and backward (y.backward(g): the gradients of input, weight and bias), timed as
crates/nn/examples/tape_conv_bench.rs times the tape's.

    python tools/bench/tape_conv_anchor.py --threads 2 [--shape B C O HW] [--steps 20]

Prints one JSON line like the example's."""

import argparse
import json
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs=4, default=[8, 64, 64, 32])
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    b, c, o, hw = a.shape
    torch.manual_seed(0)
    x = torch.randn(b, c, hw, hw, requires_grad=True)
    w = (0.05 * torch.randn(o, c, 3, 3)).requires_grad_(True)
    bias = (0.1 * torch.randn(o)).requires_grad_(True)
    g = torch.randn(b, o, hw, hw)

    def step():
        for t in (x, w, bias):
            t.grad = None
        F.conv2d(x, w, bias, padding=1).backward(g)

    for _ in range(3):
        step()
    ms = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    print(json.dumps({"engine": "pytorch", "threads": a.threads,
                      "shape": f"[{b}, {c}, {hw}, {hw}] -> [{b}, {o}, {hw}, {hw}]",
                      "ms_min": round(ms[0], 3), "ms_median": round(ms[len(ms) // 2], 3),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
