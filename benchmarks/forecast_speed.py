#!/usr/bin/env python3
"""forecast_many's time against an earlier revision's, run by run (`make bench-forecast-speed`).

The shared speed check (`forecast_eval.py --many`) divides the median of three calls by one
seasonal-naive pass, and on a shared two-core machine both wander by a third from minute
to minute, so two of its ratios taken minutes apart cannot tell a 20 % gain. This runs
the predictors of this tree and of REVISION (taken out of git into a temporary folder) in
turn, each call in a fresh process of its own, on the shared check's own input (10,000
series of 2,016 points, a daily sine with noise, horizon 12, quantiles 0.5 and 0.9), and
prints each pair's ratio: the two see the same machine within seconds of each other. A
process of its own for every call, because the engine sets process-wide state (glibc's
malloc thresholds, caches) that one revision would otherwise leave for the other. It
prints the seasonal-naive floor of each round too, timed as the shared check times it
(after this tree's calls, in their process), for the shared check's ratio.
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quartermaster.predictors import forecast_many

ROOT = Path(__file__).resolve().parent.parent
SERIES, LENGTH, HORIZON, STEP, DAY_STEPS = 10_000, 2_016, 12, 300.0, 288


def shared_input() -> np.ndarray:
    """The shared speed check's histories (forecast_eval.py's speed(), same seed)."""
    rng = np.random.default_rng(7)
    base = 50 + 20 * np.sin(2 * np.pi * np.arange(LENGTH) / 288.0)
    return base[None, :] + rng.normal(0, 5, size=(SERIES, LENGTH)) + rng.uniform(0, 30, size=(SERIES, 1))


def predictors_at(revision: str, folder: Path) -> None:
    """Put the predictors package at ``revision`` into ``folder`` as ``predictors_then``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "predictors"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "predictors").rename(folder / "predictors_then")


def time_one_call(folder: str) -> tuple[float, float]:
    """In this process: one warm-up call (it builds caches), then the timed call, of this
    tree's forecast_many, or of ``predictors_then``'s in ``folder`` when it is given; and
    then the seasonal-naive floor, as the shared check times it: after the calls, in their
    process."""
    if folder:
        sys.path.insert(0, folder)
        forecaster = importlib.import_module("predictors_then").forecast_many
    else:
        forecaster = forecast_many
    histories = shared_input()
    forecaster(histories[:1100], STEP, HORIZON, (0.5, 0.9))
    started = time.perf_counter()
    forecaster(histories, STEP, HORIZON, (0.5, 0.9))
    call, started = time.perf_counter() - started, time.perf_counter()
    _ = histories[:, LENGTH - DAY_STEPS:LENGTH - DAY_STEPS + HORIZON] + np.quantile(
        histories[:, DAY_STEPS:] - histories[:, :-DAY_STEPS], 0.9, axis=1)[:, None]
    return call, time.perf_counter() - started


def timed_in_a_process(folder: str) -> tuple[float, float]:
    answer = subprocess.run([sys.executable, __file__, "--time-one-call", folder], check=True,
                            capture_output=True, text=True)
    call, floor = answer.stdout.split()
    return float(call), float(floor)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--time-one-call", metavar="FOLDER", help=argparse.SUPPRESS)  # a round's child process
    args = parser.parse_args(argv)
    if args.time_one_call is not None:
        print(*time_one_call(args.time_one_call))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        predictors_at(args.against, Path(folder))
        rows = []
        for _ in range(args.rounds):
            (before, _), (now, floor) = timed_in_a_process(folder), timed_in_a_process("")
            rows.append((before, now, floor))
    print(f"{'round':>5s} {args.against[:12]:>12s} {'this tree':>10s} {'ratio':>6s} {'floor':>6s} {'tree/floor':>10s}")
    for index, (before, now, floor) in enumerate(rows, 1):
        print(f"{index:5d} {before:11.3f}s {now:9.3f}s {now / before:6.2f} {floor:5.3f}s {now / floor:9.2f}x")
    before, now, floor = np.median(np.array(rows), axis=0)
    ratios = np.array([n / b for b, n, _ in rows])
    print(f"median {before:10.3f}s {now:9.3f}s {np.median(ratios):6.2f} {floor:5.3f}s {now / floor:9.2f}x")
    return 0

if __name__ == "__main__":
    sys.exit(main())
