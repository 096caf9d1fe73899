#!/usr/bin/env python3
"""Score quartermaster.planner:plan with the shared swap_eval.py and check the speed targets.

Targets (issue 4): at 2,000 instances x 3 resources the planner takes at most 1/50 of the
reference HiGHS LP's time in the same run; 100,000 x 3 takes under 2 s; "optimal" throughout.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

RATIO_TARGET = 1 / 50
SECONDS_TARGET = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared/ folder")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    command = [sys.executable, str(args.shared / "bench" / "swap_eval.py"),
               "--planner", "quartermaster.planner:plan", "--sizes", "2000,100000",
               "--reference-up-to", "2000", "--resources", "3", "--seeds", str(args.seeds)]
    print("$", " ".join(command), flush=True)
    run = subprocess.run(command, capture_output=True, text=True)
    print(run.stdout, end="")
    print(run.stderr, end="", file=sys.stderr)
    ratio = re.search(r"n=\s*2000 R=3: .*\(ratio ([\d.]+)\)", run.stdout)
    seconds = re.search(r"n=\s*100000 R=3: .*planner ([\d.]+) s", run.stdout)
    if run.returncode != 0 or not ratio or not seconds:
        print("planner benchmark: the shared script failed or reported NOT OPTIMAL")
        return 1
    # the script prints the ratio to 3 decimals: count the rounding against the planner
    ratio_ok = float(ratio.group(1)) + 0.0005 <= RATIO_TARGET
    seconds_ok = float(seconds.group(1)) < SECONDS_TARGET
    print(f"2,000 x 3: planner/reference time ratio {ratio.group(1)} (target <= {RATIO_TARGET:.3f}):"
          f" {'ok' if ratio_ok else 'MISSED'}")
    print(f"100,000 x 3: planner {seconds.group(1)} s (target < {SECONDS_TARGET:g} s):"
          f" {'ok' if seconds_ok else 'MISSED'}")
    return 0 if ratio_ok and seconds_ok else 1


if __name__ == "__main__":
    sys.exit(main())
