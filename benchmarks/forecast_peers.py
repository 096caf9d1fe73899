#!/usr/bin/env python3
"""The forecaster beside the library users reach for (`make bench-forecast-peers`).

Scores quartermaster.predictors, Nixtla's statsforecast AutoETS, and statsforecast MSTL (a
daily seasonal decomposition with an AutoETS trend) on SHARED/data/traces with the shared
benchmark's own evaluation (SHARED/bench/forecast_eval.py: the same origins, horizon 12,
stride 24, at most 7 days of history, relMASE50 / relSPL90 / COV90 against seasonal_naive)
and prints the figures with the milliseconds per call, pooled and per trace family.

The peers' 0.9 quantile is the upper end of their 80 % prediction interval and their 0.5
the point forecast, as statsforecast's users read them. Their season is a day of steps.
Unlike R's ets, statsforecast's AutoETS fits seasonal models of any length, so on the
5-minute traces (a 288-step season) it takes 10-40 s a call. `--origins N` scores every
forecaster on about N of the shared evaluation's origins per trace (`stride_for`).
statsforecast is not a dependency of the product: `make bench-forecast-peers` installs the
`bench` extra. Its first call of each model compiles it with numba; that is left out of the
timing by one call before the run.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from forecast_ablation import HISTORY_DAYS, HORIZON, STRIDE, figures, first_origin, load_traces, print_table
from quartermaster.predictors import forecast

DAY = 86400.0


def stride_for(bench, values: np.ndarray, step_seconds: float, origins: int | None) -> int:
    """Steps between a trace's origins: every shared origin (STRIDE) when `origins` is None;
    else the multiple of STRIDE that gives about that many, taken from the shared
    evaluation's own (they start where its do). The multiple is chosen prime to the strides
    in a day, so that the origins drift through every hour of it: a whole day's stride would
    put them all at one hour of the daily cycle."""
    if origins is None:
        return STRIDE
    span = values.size - HORIZON - first_origin(bench, values, step_seconds)
    per_day = round(DAY / step_seconds) // STRIDE if round(DAY / step_seconds) % STRIDE == 0 else 1
    wanted = max(span / STRIDE / origins, 1.0)
    multiples = sorted(range(1, 2 * math.ceil(wanted) + per_day + 1), key=lambda k: (abs(k - wanted), -k))
    return STRIDE * next(k for k in multiples if math.gcd(k, per_day) == 1)


def statsforecast_peer(model_for):
    """A forecaster in the shared benchmark's shape from a statsforecast model factory
    (season length in steps -> model)."""
    def peer(history, step_seconds, horizon, quantiles):
        y = np.asarray(history, dtype=float)
        y = y[np.isfinite(y)]
        season = int(round(DAY / step_seconds))
        model = model_for(season if y.size >= 2 * season else 1)
        levels = sorted({round(abs(2 * q - 1) * 100) for q in quantiles if q != 0.5})
        out = model.forecast(y=y, h=horizon, level=levels) if levels else model.forecast(y=y, h=horizon)
        rows = []
        for q in quantiles:
            key = "mean" if q == 0.5 else f"{'hi' if q > 0.5 else 'lo'}-{round(abs(2 * q - 1) * 100)}"
            rows.append(np.asarray(out[key], dtype=float))
        return np.vstack(rows)
    return peer


def peers() -> dict:
    try:
        from statsforecast.models import MSTL, AutoETS
    except ImportError:
        sys.exit("statsforecast is missing: pip install -e '.[bench]' (make bench-forecast-peers does)")
    return {
        "quartermaster.predictors": forecast,
        "statsforecast AutoETS": statsforecast_peer(lambda season: AutoETS(season_length=season)),
        "statsforecast MSTL + AutoETS trend": statsforecast_peer(
            lambda season: MSTL(season_length=season, trend_forecaster=AutoETS(model="ZZN")) if season > 1
            else AutoETS(model="ZZN")),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (bench/, data/)")
    parser.add_argument("--series", default="", help="only the traces whose name contains this")
    parser.add_argument("--origins", type=int, default=None, help=(
        "about this many origins per trace, a subset of the shared evaluation's (default: all "
        f"of them, every {STRIDE} steps; see stride_for)"))
    parser.add_argument("--results", type=Path, default=None, help=(
        "a JSON file that keeps each trace's figures as it finishes: a run stopped part way "
        "resumes from it (AutoETS takes seconds a call: the whole run takes many hours)"))
    parser.add_argument("--rescore", action="append", default=[], metavar="FORECASTER", help=(
        "score this forecaster again on the traces the results file holds, keeping the others' "
        "rows, and print the tables of those traces only (for example 'quartermaster.predictors' "
        "after a change to it; repeatable)"))
    args = parser.parse_args(argv)
    bench, series, groups = load_traces(args.shared, args.series)

    forecasters = peers()
    if unknown := [label for label in args.rescore if label not in forecasters]:
        parser.error(f"--rescore: no forecaster {unknown}; there are {list(forecasters)}")
    warm = np.sin(np.arange(3 * 288) / 288 * 2 * np.pi) + 2
    for f in forecasters.values():  # numba compiles on the first call: not part of the timing
        f(warm, 300.0, HORIZON, (0.5, 0.9))
    strides = {name: stride_for(bench, values, step, args.origins) for name, (values, step) in series.items()}
    saved = json.loads(args.results.read_text()) if args.results and args.results.exists() else {}
    # a trace's figures are kept only at the stride this run would score it at
    kept = {name: trace["rows"] for name, trace in saved.get("traces", {}).items()
            if name in strides and trace["stride"] == strides[name]}

    def save() -> None:
        if args.results:
            traces = {name: {"stride": strides[name], "rows": rows} for name, rows in kept.items()}
            args.results.write_text(json.dumps({"origins": args.origins, "traces": traces}, indent=1))
    again = {label: forecasters[label] for label in args.rescore}
    if again:  # no new trace: those forecasters scored again on the traces the file holds
        for name in kept:
            rows = bench.evaluate({name: series[name]}, again, HORIZON, strides[name], HISTORY_DAYS)
            kept[name] |= {label: rows[(label, name)] for label in again}
        save()
        series = {name: series[name] for name in kept if name in series}
        groups = {fam: [n for n in names if n in series] for fam, names in groups.items()}
        groups = {fam: names for fam, names in groups.items() if names}
    # one trace at a time, shortest first, so that a run stopped part way keeps the most
    for name in sorted(series, key=lambda name: series[name][0].size):
        if name not in kept:
            labelled = {"ref": bench.seasonal_naive} | forecasters
            rows = bench.evaluate({name: series[name]}, labelled, HORIZON, strides[name], HISTORY_DAYS)
            kept[name] = {label: rows[(label, name)] for label in labelled}
            save()
    reference = {name: kept[name]["ref"] for name in series}
    results = {label: {name: kept[name][label] for name in series} for label in forecasters}

    print(f"{len(series)} series, horizon {HORIZON}, at most {HISTORY_DAYS:g} days of history, "
          f"relative to seasonal_naive (lower is better), COV90 goal 0.88-0.92; steps between origins: "
          + ", ".join(f"{name} {strides[name]}" for name in series))
    print_table({label: figures(r, reference, series) for label, r in results.items()}, "all series")
    for fam, names in groups.items():
        print_table({label: figures(r, reference, names) for label, r in results.items()}, f"family: {fam}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
