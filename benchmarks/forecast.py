#!/usr/bin/env python3
"""Score quartermaster.predictors with the shared forecast benchmark (`make bench-forecast`).

Runs both of issue 3's commands with this interpreter and prints their tables:
  forecast_eval.py --data SHARED/data/traces --forecaster quartermaster.predictors:forecast
  forecast_eval.py --many quartermaster.predictors:forecast_many
Targets: relMASE50 <= 0.65, relSPL90 <= 0.58, COV90 in [0.88, 0.92], <= 5 ms per call;
--many (10,000 x 2,016, horizon 12) under 2 s.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (bench/, data/)")
    args = parser.parse_args(argv)
    script = args.shared / "bench" / "forecast_eval.py"
    commands = [
        [sys.executable, str(script), "--data", str(args.shared / "data" / "traces"),
         "--forecaster", "quartermaster.predictors:forecast"],
        [sys.executable, str(script), "--many", "quartermaster.predictors:forecast_many"],
    ]
    status = 0
    for command in commands:
        print("$", " ".join(command), flush=True)
        status = status or subprocess.run(command, check=False).returncode
        print(flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
