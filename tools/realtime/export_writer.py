#!/usr/bin/env python3
"""Writes a scanner's real-time export into a folder the way export tools do, independently
of `brainrecon realtime simulate`'s writer: each file under a random UID name (not in
acquisition order), in several chunks with pauses (the file closed and reopened between
them), at a TR, with the slices of neighbouring volumes interleaved.

The files' contents come from SOURCE (a finished export: one file per volume, or
--per-volume K files per volume of a single-frame series), taken in natural name order.
Standard library only.

    python3 tools/realtime/export_writer.py SOURCE DEST --tr 1.0 --chunks 2 \\
        --chunk-pause 0.3 [--per-volume 24 --interleave] [--seed 0] [--log DEST.log]

--log writes one line per file: the volume, the source name and the name written.
"""
import argparse
import os
import random
import re
import sys
import time


def natural_key(name):
    return [(0, int(run), "") if run.isdigit() else (1, 0, run)
            for run in re.findall(r"\d+|\D+", name)]


def random_uid(rng):
    # Siemens-like: a fixed root, then random digit groups (names say nothing of order).
    groups = [str(rng.randrange(1, 10**9)) for _ in range(4)]
    return "1.3.12.2.1107.5.2." + ".".join(groups) + ".dcm"


def write_chunked(path, data, chunks, pause):
    size = len(data)
    bounds = [size * k // chunks for k in range(chunks + 1)]
    for k in range(chunks):
        with open(path, "ab") as f:
            f.write(data[bounds[k]:bounds[k + 1]])
        if k + 1 < chunks:
            time.sleep(pause)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--tr", type=float, default=1.0)
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--chunk-pause", type=float, default=0.3)
    parser.add_argument("--per-volume", type=int, default=1)
    parser.add_argument("--interleave", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = sorted(os.listdir(args.source), key=natural_key)
    k = args.per_volume
    volumes = [names[i:i + k] for i in range(0, len(names), k)]
    order = []  # (volume, source name)
    if args.interleave:
        # Volume t's slices alternate with volume t+1's: two volumes arrive together, as when
        # an export stalls for a TR and catches up.
        t = 0
        while t < len(volumes):
            pair = volumes[t:t + 2]
            for j in range(max(len(v) for v in pair)):
                for offset, files in enumerate(pair):
                    if j < len(files):
                        order.append((t + offset, files[j]))
            t += 2
    else:
        order = [(t, name) for t, files in enumerate(volumes) for name in files]
    os.makedirs(args.dest, exist_ok=True)
    log = open(args.log, "w") if args.log else None
    start = time.monotonic()
    for volume, name in order:
        # A volume's files start at its TR (a pair of interleaved volumes at the first's).
        due = start + (volume - volume % 2 if args.interleave else volume) * args.tr
        time.sleep(max(0.0, due - time.monotonic()))
        with open(os.path.join(args.source, name), "rb") as f:
            data = f.read()
        written = random_uid(rng)
        write_chunked(os.path.join(args.dest, written), data, args.chunks, args.chunk_pause)
        if log:
            log.write(f"{volume}\t{name}\t{written}\n")
            log.flush()
    if log:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
