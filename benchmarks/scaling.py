#!/usr/bin/env python3
"""Score the Predictive policy with the shared scaling benchmark (`make bench-scaling`).

Runs ../shared/bench/scaling_eval.py on SHARED/data/traces: every trace scaled so that its
95th percentile needs 10 replicas of 0.5 cores, the project replayed through its own CLI
(`quartermaster replay`, no policy file: Predictive, quantile 0.9, horizon 30 min,
confidence threshold 0.7) beside the script's HPA-like, VPA-like, static-peak and oracle
references and the plain "forecast p90 peak / target" rule on quartermaster.predictors;
then prints the project's medians against the goal:

    shortage <= the VPA-like reference's and <= half the HPA-like one's
    cost <= 1.35 x demand
    replica changes <= 24 a day

The rule's constants (planner/scaling.py) and why (medians over these 15 traces):

* hysteresis, +30 % / -20 %: the forecast raises replicas only when it needs more than
  30 % above the current count, and lowers them only below 80 % of it. The 0.9 quantile's
  peak over 30 minutes wiggles by a replica or two from step to step on a steady load;
  following it is the plain rule's 127 changes a day. With the windows below, no band
  gives 32.9 changes a day, +-10 % 31.5, +-20 % 23.7, +-30 % 15.3 at a cost of 1.64
  (capacity held while the forecast eases: a steady trace sits up to 30 % over).
  Upwards the band can be wide because the reactive floor still follows demand as it
  rises; downwards a narrower one gives back most of that cost: +30/-20 % is 21.0 changes
  at 1.56, and the steady traces cost 1.18 on average against 1.28 at +-30 %.
* trusted-forecast scale-down window = the strategy's scale-down delay (600 s, Balanced):
  the forecast already covers the next 30 minutes, so the window only rides out its noise.
* fallback window (confidence below the threshold) = one hour: then only the recent past
  says what the next horizon holds. Noisy series are the ones whose forecasts fall below
  0.7 confidence (the Twitter volumes, most of the time), and they set the shortage
  median: a 10-minute window gives 5.5 % shortage, 30 minutes 4.6 %, an hour 3.5 %, 90
  minutes 2.9 %, for a median cost of 1.37, 1.54, 1.56 and 1.57.

Measured here: shortage 0.0353 (goal: VPA-like 0.0426, half the HPA-like 0.1485), 21.0
changes a day (goal 24), cost 1.560: the cost goal (1.35) is missed. On these traces
even the plain rule's forecast at the first step alone (no peak over the horizon, no
hysteresis, no stabilisation) costs 1.42 x demand for 4.1 % shortage, and on the peak
over the horizon 1.54; 1.35 needs a lower quantile (0.75 at the first step gives about
1.26 at 6.4 % shortage). Medians hide the spread: the steady traces cost 1.06 to 1.26,
the noisy ones whose forecasts are mostly not trusted 1.9 to 3.4 (the hour-long fallback
window is what buys their shortage down), and two spiky ones keep 5 % and 19 % shortage
whatever the window (spikes of one step that no causal rule sees coming).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

COST_GOAL = 1.35
CHANGES_GOAL = 24.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (bench/, data/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores.json"
        command = [sys.executable, str(args.shared / "bench" / "scaling_eval.py"),
                   "--data", str(args.shared / "data" / "traces"),
                   "--replay", f"{sys.executable} -m quartermaster.operator.cli replay",
                   "--forecaster", "quartermaster.predictors:forecast_many", "--json", str(scores)]
        print("$", " ".join(command), flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            print("scaling benchmark: the shared script failed")
            return 1
        summary = json.loads(scores.read_text())["summary"]
    project, hpa, vpa = summary["project"], summary["hpa_like"], summary["vpa_like"]
    shortage_goal = min(vpa["shortage"], hpa["shortage"] / 2)
    goals = [("shortage", project["shortage"], shortage_goal,
              f"<= min(VPA-like {vpa['shortage']:.4f}, HPA-like {hpa['shortage']:.4f} / 2)", "{:.4f}"),
             ("cost", project["cost"], COST_GOAL, f"<= {COST_GOAL:g} x demand", "{:.3f}"),
             ("changes_per_day", project["changes_per_day"], CHANGES_GOAL, f"<= {CHANGES_GOAL:g} a day", "{:.1f}")]
    print()
    print(f"{'Predictive (medians)':22s} {'measured':>9s} {'goal':>9s}")
    met = True
    for name, value, goal, rule, digits in goals:
        ok = value <= goal
        met &= ok
        print(f"{name:22s} {digits.format(value):>9s} {digits.format(goal):>9s}  {rule}: {'ok' if ok else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
