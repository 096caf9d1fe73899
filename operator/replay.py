"""`quartermaster replay`: a horizontal ScalingPolicy's decisions on recorded demand, offline.

    quartermaster replay [--csv FILE ...] [--target-per-replica CORES] [--policy POLICY.yaml]
                         [--json OUT] [--plot OUT.png]

Each CSV (`timestamp,value`, one row per step, oldest first; timestamps ISO 8601 in UTC
or unix seconds) is one workload's total cpu demand in cores. The replay runs the very
function the control cycle runs, `planner.scaling.decide_replicas`, once per step: the
decision made at the end of step t-1, from the samples up to t-1 and the forecast made
from them, is the replica count in place at step t (nothing in place before the first
sample: the policy's minimum). The forecasts are `predictors.forecast_many_detailed`'s at
the policy's quantile and at the median (where decide_replicas' band starts) over its
horizon, from at most the history the operator keeps (7
days); all origins of a series are forecast in a few batched calls over sliding windows,
not one call per step.

Writes `{"series": [{"name", "timestamps", "demand", "replicas"}]}` (`--json`), prints a
summary per series (shortage: unmet demand / demand; slack: idle capacity / demand; cost:
capacity / demand; replica changes per day; the share of decisions the forecast set), and
plots demand against provisioned capacity (`--plot`, a PNG).

Without `--csv` it replays the traces the repository carries (testbed/traces/), each
scaled as the scaling benchmark scales its traces (its 95th percentile needs 10 replicas
of 0.5 cores), and writes replay.json and replay.png here.

Without `--policy` the policy is `ScalingRules()`'s defaults: Predictive at the 0.9 quantile
over 30 minutes, confidence threshold 0.6, at least one replica and no other bound, no
step limit or cooldown. A policy file is an ordinary ScalingPolicy manifest, read as the
apiserver would (the CRD's defaults for what it leaves out; a forecast quantile or horizon
left out is what the operator gives a policy whose target is in no ResourcePool); its
signals' targets are ignored for `--target-per-replica`.

Bad input (a missing or malformed CSV, a policy that is not a valid horizontal
ScalingPolicy) is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml
from pydantic import ValidationError

from quartermaster.operator.models import GROUP, VERSION, ScalingMode, ScalingPolicySpec, validation_message
from quartermaster.operator.settings import MetricsSettings
from quartermaster.planner.pools import NO_POOL_DEFAULTS
from quartermaster.planner.scaling import ScalingRules, ScalingState, decide_replicas
from quartermaster.predictors import forecast_many_detailed
from quartermaster.testbed.traces import TRACES

DAY_SECONDS = 86400.0
# The bundled traces are in their own units (CPU %, requests); as the shared scaling benchmark
# does, each is scaled so that its 95th percentile needs this many replicas of this many cores.
BUNDLED_TARGET_PER_REPLICA = 0.5
BUNDLED_P95_REPLICAS = 10
MEDIAN = 0.5  # the quantile decide_replicas' band starts from
# Origins forecast per call: a chunk's windows are copied out ([chunk, window] floats), so
# this bounds the replay's memory (about 32 MB for a week of 5-minute steps).
FORECAST_CHUNK = 2000


class ReplayError(Exception):
    """Input the replay cannot use; its message is the one line the user sees."""


@dataclass(frozen=True)
class Series:
    name: str
    timestamps: np.ndarray  # unix seconds, increasing
    demand: np.ndarray  # cores per sample

    @property
    def step_seconds(self) -> float:
        return float(np.median(np.diff(self.timestamps)))


@dataclass(frozen=True)
class Replay:
    series: Series
    replicas: np.ndarray  # [T] in place at each timestamp
    predictive: np.ndarray  # [T - 1] bool: whether the forecast set each decision


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, action="append", default=[], metavar="FILE",
                        help="timestamp,value: a workload's total cpu demand in cores (repeatable); "
                             "default: the bundled traces")
    parser.add_argument("--target-per-replica", type=float, metavar="CORES",
                        help="cores one replica should carry (needed with --csv)")
    parser.add_argument("--policy", type=Path, metavar="POLICY.yaml",
                        help="a ScalingPolicy manifest (default: Predictive, quantile 0.9, horizon 30 min)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the replicas per timestamp here")
    parser.add_argument("--plot", type=Path, metavar="OUT.png",
                        help="write a PNG of demand against provisioned capacity here")

def run(options: argparse.Namespace) -> int:
    try:
        spec = read_policy(options.policy) if options.policy else None
        if options.csv:
            if options.target_per_replica is None:
                raise ReplayError("--target-per-replica is needed with --csv")
            series = [read_series(path) for path in options.csv]
            target, json_path, plot_path = options.target_per_replica, options.json, options.plot
        else:
            series = bundled_series()
            target = BUNDLED_TARGET_PER_REPLICA if options.target_per_replica is None else options.target_per_replica
            json_path, plot_path = options.json or Path("replay.json"), options.plot or Path("replay.png")
        if not (math.isfinite(target) and target > 0):
            raise ReplayError(f"--target-per-replica must be a positive number of cores, got {target}")
    except ReplayError as error:
        print(f"quartermaster replay: {error}", file=sys.stderr)
        return 2
    replays = [replay(s, target, rules_for(spec, s.step_seconds)) for s in series]
    print(summary_table(replays, target))
    try:
        if json_path:
            json_path.write_text(json.dumps({"series": [as_json(r) for r in replays]}))
            print(f"wrote {json_path}")
        if plot_path:
            plot(replays, target, plot_path)
            print(f"wrote {plot_path}")
    except OSError as error:
        print(f"quartermaster replay: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


# ---- input ----------------------------------------------------------------------------

def read_series(path: Path) -> Series:
    """A CSV of timestamp,value rows, checked: ReplayError naming the file and line."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise ReplayError(f"{path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ReplayError(f"{path}: not a CSV file ({error})") from None
    if not rows or [cell.strip() for cell in rows[0]] != ["timestamp", "value"]:
        raise ReplayError(f"{path}: the first line must be the header timestamp,value")
    stamps, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise ReplayError(f"{path}:{line}: expected timestamp,value, got {len(row)} fields")
        stamps.append(_timestamp(row[0], f"{path}:{line}"))
        try:
            value = float(row[1])
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise ReplayError(f"{path}:{line}: the value must be a non-negative number of cores, got {row[1]!r}")
        values.append(value)
    if len(stamps) < 2:
        raise ReplayError(f"{path}: at least two samples are needed, got {len(stamps)}")
    timestamps = np.asarray(stamps)
    if np.any(np.diff(timestamps) <= 0):
        line = int(np.flatnonzero(np.diff(timestamps) <= 0)[0]) + 3
        raise ReplayError(f"{path}:{line}: timestamps must increase")
    return Series(path.stem, timestamps, np.asarray(values))


def _timestamp(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReplayError(f"{where}: {text!r} is neither ISO 8601 nor unix seconds") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def bundled_series() -> list[Series]:
    """The repository's traces, each scaled so that its 95th percentile is
    BUNDLED_P95_REPLICAS replicas of BUNDLED_TARGET_PER_REPLICA cores."""
    series = []
    for path in sorted(TRACES.glob("*.csv")):
        raw = read_series(path)
        scale = BUNDLED_P95_REPLICAS * BUNDLED_TARGET_PER_REPLICA / max(float(np.quantile(raw.demand, 0.95)), 1e-12)
        series.append(Series(raw.name, raw.timestamps, raw.demand * scale))
    return series


def read_policy(path: Path) -> ScalingPolicySpec:
    """A horizontal ScalingPolicy's spec from a manifest, validated as the apiserver would."""
    try:
        manifest = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ReplayError(f"{path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ReplayError(f"{path}: not YAML ({' '.join(str(error).split())})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "ScalingPolicy":
        found = manifest.get("kind") if isinstance(manifest, dict) else type(manifest).__name__
        raise ReplayError(f"{path}: kind: must be ScalingPolicy, got {found!r}")
    if manifest.get("apiVersion") != f"{GROUP}/{VERSION}":
        raise ReplayError(f"{path}: apiVersion: must be {GROUP}/{VERSION}, got {manifest.get('apiVersion')!r}")
    try:
        spec = ScalingPolicySpec.model_validate(manifest.get("spec"))
    except ValidationError as error:
        raise ReplayError(f"{path}: {validation_message(error)}") from None
    if spec.mode is ScalingMode.VERTICAL:
        raise ReplayError(f"{path}: spec.mode: the replay replays horizontal policies (Reactive, Predictive), "
                          f"got Vertical")
    return spec


def rules_for(spec: ScalingPolicySpec | None, step_seconds: float) -> ScalingRules:
    if spec is None:
        return ScalingRules(step_seconds=step_seconds)
    return ScalingRules.from_spec(spec.model_dump(by_alias=True, mode="json"), NO_POOL_DEFAULTS,
                                  step_seconds=step_seconds)


# ---- the replay -------------------------------------------------------------------------

def replay(series: Series, target_per_replica: float, rules: ScalingRules) -> Replay:
    """The replicas in place at each of the series' timestamps under ``rules``."""
    demand = series.demand
    forecasts = forecasts_at_every_step(demand, rules) if rules.mode == "Predictive" else None
    state = ScalingState.initial(rules.min_replicas)
    replicas = np.empty(demand.size, dtype=np.int64)
    replicas[0] = state.replicas
    predictive = np.zeros(demand.size - 1, dtype=bool)
    for t in range(1, demand.size):
        upper, median, confidence = (None, None, None) if forecasts is None else (
            forecasts.upper[t], forecasts.median[t], float(forecasts.confidence[t]))
        decision = decide_replicas(rules, state, float(series.timestamps[t - 1]), float(demand[t - 1]),
                                   target_per_replica, upper, confidence, median=median)
        replicas[t], state = decision.replicas, decision.state
        predictive[t - 1] = decision.basis == "predictive"
    return Replay(series, replicas, predictive)


@dataclass(frozen=True)
class StepForecasts:
    """Row t of each: what the forecast made from demand[:t] alone says (row 0, with no
    history, is NaN)."""

    upper: np.ndarray  # [T, horizon] at the policy's quantile
    median: np.ndarray  # [T, horizon] at 0.5
    confidence: np.ndarray  # [T]


def forecasts_at_every_step(demand: np.ndarray, rules: ScalingRules) -> StepForecasts:
    """The policy's quantile and the median over its horizon, and their confidence, from
    every origin t >= 1.

    A history is at most the operator's (MetricsSettings.history_seconds); a shorter one
    is the longest power of two of samples there is, so that the origins fall into a few
    groups of one window length and each group is forecast in batched calls.
    """
    n, horizon = demand.size, rules.horizon_steps
    quantiles = sorted({MEDIAN, rules.quantile})
    values, confidence = np.full((n, len(quantiles), horizon), np.nan), np.full(n, np.nan)
    longest = max(1, int(MetricsSettings().history_seconds // rules.step_seconds))
    origins = np.arange(1, n)
    lengths = np.minimum(longest, 2 ** np.floor(np.log2(origins)).astype(np.int64))
    windows = np.lib.stride_tricks.sliding_window_view
    for length in np.unique(lengths):
        group = origins[lengths == length]
        for start in range(0, group.size, FORECAST_CHUNK):
            chunk = group[start:start + FORECAST_CHUNK]
            # the window ending just before origin t starts at t - length
            result = forecast_many_detailed(windows(demand, int(length))[chunk - length], rules.step_seconds,
                                            horizon, tuple(quantiles))
            values[chunk], confidence[chunk] = result.values, result.confidence
    return StepForecasts(values[:, quantiles.index(rules.quantile)], values[:, quantiles.index(MEDIAN)],
                         confidence)


# ---- output -----------------------------------------------------------------------------

def scores(result: Replay, target_per_replica: float) -> dict[str, float]:
    """Shortage, slack and cost as shares of demand, and replica changes per day."""
    demand, capacity = result.series.demand, result.replicas * target_per_replica
    total = max(float(demand.sum()), 1e-12)
    days = max(demand.size * result.series.step_seconds / DAY_SECONDS, 1e-9)
    return {"shortage": float(np.maximum(demand - capacity, 0).sum() / total),
            "slack": float(np.maximum(capacity - demand, 0).sum() / total),
            "cost": float(capacity.sum() / total),
            "changes_per_day": float(np.count_nonzero(np.diff(result.replicas)) / days),
            "predictive": float(result.predictive.mean()) if result.predictive.size else 0.0}


def summary_table(replays: list[Replay], target_per_replica: float) -> str:
    header = (f"{'series':32s} {'steps':>6s} {'shortage':>9s} {'slack':>7s} {'cost':>6s} {'chg/day':>8s} "
              f"{'forecast':>9s}")
    rows = [(r.series.name, r.series.demand.size, scores(r, target_per_replica)) for r in replays]
    if len(rows) > 1:
        rows.append(("median", None, {k: float(np.median([s[k] for _, _, s in rows])) for k in rows[0][2]}))
    lines = [f"{target_per_replica:g} cores per replica; shortage, slack and cost as shares of demand; "
             f"forecast: the share of decisions the forecast set", header]
    for name, steps, s in rows:
        lines.append(f"{name:32s} {'' if steps is None else steps:>6} {s['shortage']:9.4f} {s['slack']:7.3f} "
                     f"{s['cost']:6.3f} {s['changes_per_day']:8.1f} {s['predictive']:9.0%}")
    return "\n".join(lines)


def as_json(result: Replay) -> dict:
    stamps = [datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
              for t in result.series.timestamps]
    return {"name": result.series.name, "timestamps": stamps, "demand": result.series.demand.tolist(),
            "replicas": result.replicas.tolist()}


def plot(replays: list[Replay], target_per_replica: float, path: Path) -> None:
    """One panel per series: demand, and the capacity the replicas provide (held over
    each step, as they are in place from one timestamp to the next)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(len(replays), 1, figsize=(12, 2.6 * len(replays)), squeeze=False)
    for axis, result in zip(axes[:, 0], replays):
        days = (result.series.timestamps - result.series.timestamps[0]) / DAY_SECONDS
        axis.plot(days, result.series.demand, color="black", linewidth=0.6, label="demand")
        axis.plot(days, result.replicas * target_per_replica, color="tab:blue", linewidth=0.9,
                  drawstyle="steps-post", label="capacity (replicas × target)")
        axis.set_title(result.series.name, fontsize=9, loc="left")
        axis.set_ylabel("cores")
    axes[-1, 0].set_xlabel("days")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)
