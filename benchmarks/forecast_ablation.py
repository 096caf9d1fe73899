#!/usr/bin/env python3
"""Which layers of the forecaster earn their place (`make bench-forecast-ablation`).

Scores quartermaster.predictors on SHARED/data/traces with the shared benchmark's own
evaluation (SHARED/bench/forecast_eval.py: same origins, horizon 12, stride 24, the same
relMASE50 / relSPL90 / COV90 against seasonal_naive), once with every layer on, once with
each layer switched off in turn (``ForecastOptions``), and once per single model with every
layer off (the best of them is "the whole stack replaced by its best single model").

Each configuration is judged in-sample (all 15 series) and by leave-one-family-out
cross-validation over the trace families (CPU, network/requests, tweets, taxi): for each
family held out, the configuration with the lowest objective on the other three families
is chosen and scored on the held-out one. The objective J is the mean over series of
(log relMASE50 + log relSPL90) / 2. The decision rule for a layer: it stays only if
switching it off raises J on the series pooled and by at least 0.005 on at least two of
the four families (so that with any one family held out a gain remains on another);
otherwise it is dropped or simplified (predictors/README.md). The rule is cross-validated
too: for each family held out it is applied on the other three, and the stack it leaves is
scored on the held-out family, which estimates how the stack the rule chooses does on
series of a kind it was not chosen on.

Last, the confidence check: across every forecast of the full configuration, the rank
correlation between `confidence` and the scaled error that followed (should be negative).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from quartermaster.predictors import ForecastOptions, forecast_detailed
from quartermaster.predictors.engine import candidate_models

QUANTILES = (0.5, 0.9)
HORIZON, STRIDE, HISTORY_DAYS = 12, 24, 7.0
FAMILIES = {"ec2_cpu": "cpu", "rds_cpu": "cpu", "grok_asg": "cpu", "ec2_network": "network/requests",
            "elb_request": "network/requests", "Twitter": "tweets", "nyc_taxi": "taxi"}
FULL = ForecastOptions()
# what is switched off for the single models: every layer above the point forecast
BARE = replace(FULL, analog_weight=0.0, anchor_shares=(0.0,))
# each layer the rule judges: the configuration without it, and the settings that switch it off
SWITCHED_OFF = {
    "no analogs": {"analog_weight": 0.0},
    "point anchor only": {"anchor_shares": (0.0,)},
    "best model, no ensemble": {"ensemble_tolerance": 1.0},
    "no fading seasonal": {"seasonal_dampings": (1.0,)},
}
LAYERS = {
    "full": FULL,
    "no analogs": replace(FULL, **SWITCHED_OFF["no analogs"]),
    "analogs 1/4": replace(FULL, analog_weight=0.25),
    "analogs 3/4": replace(FULL, analog_weight=0.75),
    "point anchor only": replace(FULL, **SWITCHED_OFF["point anchor only"]),
    "anchors point, half, last": replace(FULL, anchor_shares=(0.0, 0.5, 1.0)),
    "best model, no ensemble": replace(FULL, **SWITCHED_OFF["best model, no ensemble"]),
    "no fading seasonal": replace(FULL, **SWITCHED_OFF["no fading seasonal"]),
}
# the rule: a layer stays if switching it off raises J pooled, and by this much on at least
# RULE_FAMILIES families
RULE_GAIN, RULE_FAMILIES = 0.005, 2
# each model of the ensemble, left out in turn with all its variants (a seasonal profile's
# deviation held and fading), as the engine lists them for 7 days of 5-minute history (the
# weekly profile needs more)
LEFT_OUT = {model.descriptions[0]: model.descriptions
            for model in candidate_models(np.zeros((1, int(HISTORY_DAYS * 288))), 300.0)[0]}
SINGLE_MODELS = ("last value", "smoothed level (alpha 0.05)",
                 "linear trend over the last day", "decaying-histogram p50",
                 "daily seasonal profile (last cycle)", "daily seasonal profile (median of 3 cycles)")


def family(name: str) -> str:
    return next(f for prefix, f in FAMILIES.items() if name.startswith(prefix))


def first_origin(bench, values, step_seconds: float) -> int:
    """Where the shared evaluation (forecast_eval.evaluate) puts a series' first origin."""
    period = bench.season_steps(step_seconds, values.size) or 24
    return max(int(values.size * 0.3), 2 * period)


def load_traces(shared: Path, only: str = "") -> tuple[object, dict, dict[str, list[str]]]:
    """The shared evaluation module, the traces whose name contains `only`, and their names by family."""
    spec = importlib.util.spec_from_file_location("forecast_eval", shared / "bench" / "forecast_eval.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    series = {p.stem: bench.load_series(p) for p in sorted((shared / "data" / "traces").glob("*.csv")) if only in p.stem}
    groups: dict[str, list[str]] = {}
    for name in series:
        groups.setdefault(family(name), []).append(name)
    return bench, series, groups


def configurations() -> dict[str, ForecastOptions]:
    singles = {f"single: {model}": replace(BARE, only_model=model) for model in SINGLE_MODELS}
    without = {f"without: {model}": replace(FULL, without_models=variants) for model, variants in LEFT_OUT.items()}
    return LAYERS | singles | without


def forecaster(options: ForecastOptions, log: list | None = None):
    def forecast(history, step_seconds, horizon, quantiles):
        result = forecast_detailed(history, step_seconds, horizon, quantiles, options=options)
        if log is not None:
            log.append((result.confidence, result.at(0.5)))
        return result.values
    return forecast


def score(bench, series, options: ForecastOptions) -> dict[str, dict]:
    """Per series: mase50, spl90, cov90 (the shared evaluation's rows) and seconds, calls."""
    rows = bench.evaluate(series, {"x": forecaster(options)}, HORIZON, STRIDE, HISTORY_DAYS)
    return {name: rows[("x", name)] for name in series}


def figures(rows: dict, reference: dict, names) -> dict[str, float]:
    """relMASE50, relSPL90 (geometric means of the ratios to the reference), COV90, ms/call, J."""
    names = list(names)
    rel_m = np.array([max(rows[s]["mase50"], 1e-12) / max(reference[s]["mase50"], 1e-12) for s in names])
    rel_s = np.array([max(rows[s]["spl90"], 1e-12) / max(reference[s]["spl90"], 1e-12) for s in names])
    calls = sum(rows[s]["calls"] for s in names)
    return {"relMASE50": float(np.exp(np.log(rel_m).mean())), "relSPL90": float(np.exp(np.log(rel_s).mean())),
            "COV90": float(np.mean([rows[s]["cov90"] for s in names])),
            "ms/call": 1000 * sum(rows[s]["seconds"] for s in names) / max(calls, 1),
            "J": float(np.mean((np.log(rel_m) + np.log(rel_s)) / 2))}


def cross_validated(results: dict, reference: dict, candidates, groups: dict[str, list[str]]) -> tuple[dict, dict]:
    """Leave one family out: per fold, the candidate with the lowest J on the other families,
    scored on the held-out one; (figures over every series so held out, choice per family)."""
    held_out, chosen = {}, {}
    for fam, names in groups.items():
        train = [s for f, ns in groups.items() if f != fam for s in ns]
        chosen[fam] = min(candidates, key=lambda c: figures(results[c], reference, train)["J"])
        held_out |= {s: results[chosen[fam]][s] for s in names}
    return figures(held_out, reference, held_out), chosen


def layers_kept(results: dict, reference: dict, groups: dict[str, list[str]]) -> list[str]:
    """The switch-off configurations (SWITCHED_OFF) whose layer the rule keeps on these
    families: switching it off raises J on their series pooled, and by RULE_GAIN or more
    on at least RULE_FAMILIES of them."""
    def gain(off: str, names) -> float:
        return figures(results[off], reference, names)["J"] - figures(results["full"], reference, names)["J"]
    pooled = [s for names in groups.values() for s in names]
    return [off for off in SWITCHED_OFF
            if gain(off, pooled) > 0 and sum(gain(off, n) >= RULE_GAIN for n in groups.values()) >= RULE_FAMILIES]


def rule_cross_validated(results: dict, reference: dict, groups: dict[str, list[str]],
                         rows_of) -> tuple[dict, dict]:
    """The rule itself, cross-validated: for each family held out, the rule is applied on
    the other families, and the stack it leaves (the full one less the layers it drops) is
    scored on the held-out family. ``rows_of(options, names)`` scores a configuration the
    results may not hold yet. (figures over every series, the layers dropped per family)."""
    held_out, dropped = {}, {}
    for fam, names in groups.items():
        kept = layers_kept(results, reference, {f: n for f, n in groups.items() if f != fam})
        dropped[fam] = [off for off in SWITCHED_OFF if off not in kept]
        options = replace(FULL, **{k: v for off in dropped[fam] for k, v in SWITCHED_OFF[off].items()})
        held_out |= rows_of(options, names)
    return figures(held_out, reference, held_out), dropped


def confidence_check(bench, series, options: ForecastOptions) -> dict[str, float]:
    """Rank correlation of confidence with the scaled absolute error of the median that
    followed, over every forecast (pooled) and within series (mean)."""
    pooled_conf, pooled_err, within = [], [], []
    for name, (values, step) in series.items():
        log: list = []
        bench.evaluate({name: (values, step)}, {"x": forecaster(options, log)}, HORIZON, STRIDE, HISTORY_DAYS)
        # the same origins and scale as the shared evaluation
        start = first_origin(bench, values, step)
        origins = range(start, values.size - HORIZON, STRIDE)
        scale = np.mean(np.abs(np.diff(values[:start]))) or max(np.mean(np.abs(values[:start])), 1e-9)
        error = np.array([np.mean(np.abs(values[t:t + HORIZON] - median)) / scale
                          for t, (_, median) in zip(origins, log)])
        confidence = np.array([c for c, _ in log])
        pooled_conf.append(confidence)
        pooled_err.append(error)
        if np.ptp(confidence) > 0:
            within.append(spearmanr(confidence, error).statistic)
    return {"pooled": float(spearmanr(np.concatenate(pooled_conf), np.concatenate(pooled_err)).statistic),
            "within series": float(np.mean(within))}


def print_table(rows: dict[str, dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'configuration':56s} {'relMASE50':>9s} {'relSPL90':>9s} {'COV90':>6s} {'ms/call':>8s} {'J':>7s}")
    for name, f in rows.items():
        print(f"{name:56s} {f['relMASE50']:9.3f} {f['relSPL90']:9.3f} {f['COV90']:6.3f} {f['ms/call']:8.2f} "
              f"{f['J']:7.3f}")


def print_per_family(results: dict, reference: dict, groups: dict[str, list[str]], names, title: str) -> None:
    """J of each configuration per family, its change from the full stack's, and J pooled."""
    print(f"\n{title}")
    print(f"{'configuration':56s} " + " ".join(f"{f:>17s}" for f in groups) + f" {'J':>7s}")
    full = {f: figures(results["full"], reference, series)["J"] for f, series in groups.items()}
    pooled = [s for series in groups.values() for s in series]
    for name in names:
        per = {f: figures(results[name], reference, series)["J"] for f, series in groups.items()}
        print(f"{name:56s} " + " ".join(f"{per[f]:8.3f} ({per[f] - full[f]:+6.3f})" for f in groups)
              + f" {figures(results[name], reference, pooled)['J']:7.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (bench/, data/)")
    parser.add_argument("--series", default="", help="only the traces whose name contains this")
    parser.add_argument("--cache", type=Path, help="JSON file that keeps each configuration's rows between runs")
    args = parser.parse_args(argv)
    bench, series, groups = load_traces(args.shared, args.series)

    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}
    reference_rows = bench.evaluate(series, {"ref": bench.seasonal_naive}, HORIZON, STRIDE, HISTORY_DAYS)
    reference = {name: reference_rows[("ref", name)] for name in series}

    def rows_of(options: ForecastOptions, names, label: str = "") -> dict[str, dict]:
        key = repr(options)
        missing = {s: series[s] for s in names if s not in cache.get(key, {})}
        if missing:
            started = time.perf_counter()
            cache.setdefault(key, {}).update(score(bench, missing, options))
            print(f"  {label or key}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            if args.cache:
                args.cache.write_text(json.dumps(cache))
        return {s: cache[key][s] for s in names}

    results = {name: rows_of(options, series, name) for name, options in configurations().items()}

    singles = [name for name in results if name.startswith("single: ")]
    best_single = min(singles, key=lambda c: figures(results[c], reference, series)["J"])
    table = {name: figures(results[name], reference, series) for name in [*LAYERS, best_single]}
    print(f"{len(series)} series in {len(groups)} families ({', '.join(f'{f} {len(n)}' for f, n in groups.items())}),"
          f" horizon {HORIZON}, stride {STRIDE}; J = mean over series of (log relMASE50 + log relSPL90) / 2")
    print_table(table | {f"(single models, best in-sample: {best_single[8:]})": table[best_single]}, "in-sample")

    print_per_family(results, reference, groups, [*LAYERS, best_single],
                     "J per family, and the change from switching the layer off (+ = the layer helps that family)")
    print_per_family(results, reference, groups, [c for c in results if c.startswith("without: ")],
                     "Each model of the ensemble left out in turn: J per family, and the change (+ = the model helps)")

    cv_rows = {}
    for label, candidates in (("full stack as it is", ["full"]), ("choosing among the layer switches", list(LAYERS)),
                              ("choosing among the single models", singles)):
        cv, chosen = cross_validated(results, reference, candidates, groups)
        cv_rows[label] = cv
        print(f"  cv {label}: chosen per held-out family {chosen}", file=sys.stderr)
    cv, dropped = rule_cross_validated(results, reference, groups, rows_of)
    cv_rows["the rule applied to the other families"] = cv
    print(f"  cv the rule: layers dropped per held-out family {dropped}", file=sys.stderr)
    print_table(cv_rows, "leave-one-family-out cross-validated (each family scored with the choice made on the others)")
    print(f"the rule on all {len(groups)} families keeps: every layer but "
          f"{[off for off in SWITCHED_OFF if off not in layers_kept(results, reference, groups)] or 'none'}")

    check = confidence_check(bench, series, FULL)
    print(f"\nconfidence vs the scaled error that followed, Spearman: pooled {check['pooled']:+.3f}, "
          f"within series {check['within series']:+.3f} (negative: higher confidence, lower error)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
