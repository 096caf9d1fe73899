"""Horizontal scaling decisions: how many replicas a ScalingPolicy's target should run.

Pure code (plain values and numpy arrays in, frozen dataclasses out, no I/O): the control
cycle calls it once per policy and signal each cycle, and `quartermaster replay` calls the
very same function step by step on recorded history.

decide_replicas(rules, state, now, demand_now, target_per_replica, forecast, confidence,
                signal="cpu", median=None) -> ReplicaDecision
    One decision, Reactive or Predictive by ``rules.mode``; the decision carries the next
    ScalingState, which the caller hands back at the next decision.
ScalingRules.from_spec(spec, strategy=None, step_seconds=300) -> ScalingRules
    A policy spec's fields (camelCase, as in the manifest) over a pool strategy's defaults.

The model, in the order it is applied:

1. Reactive recommendation (the HPA's rule): ceil(demand / target per replica), except
   that while demand / (current x target) is within ``tolerance`` (10 %) of 1 the current
   count stands, so that measurement noise does not move replicas.
2. Predictive recommendation, never below the reactive one (a forecast only raises the
   floor, as AWS predictive scaling and Crane do: it cannot see a surge that is already
   under way). With the forecast's median (``median``: the replay passes it; the control
   cycle forecasts it anyway) and a quantile above 0.5, the need is a band, in fractional
   replicas: from ``low`` = the median's peak over the horizon / target to ``high`` = the
   quantile's peak / target, planned ``plan_fraction`` (half) of the way from ``low``
   to ``high``. The count stands while it lies between ``low`` and the plan rounded up;
   below ``low`` it rises to the plan rounded up; above the plan it comes down to ``low``
   rounded up. Why: the band is the forecast's own uncertainty, so what counts as a wiggle
   follows how noisy the series is (a fixed percentage is too wide for a steady series and
   too narrow for a bursty one); the plan sits below the upper quantile because the
   reactive floor (and, in a cluster, the HPA above its minReplicas floor) answers the
   demand that does exceed it, so capacity held up to the quantile's peak over the whole
   horizon pays twice for the same risk (on the benchmark's bursty traces the 0.9 quantile
   of the next step is 1.4 to 2.8 times the median), while a higher quantile still raises
   it; and capacity above the plan comes down to the median's need rather than to the
   plan, so that once a forecast has fallen the next change is the median rising above the
   count, not the next wiggle of the upper quantile. Without a median (or at a quantile of
   0.5 or below) the need is the quantile's peak / target, with fixed hysteresis: the
   forecast raises replicas only when it needs more than ``hysteresis_up`` (30 %) above
   the current count, and lowers them only when it needs more than ``hysteresis_down``
   (20 %) below it. Below ``confidence_threshold`` (or with no forecast) the forecast is
   not used: the decision is the reactive one, and the reasoning says so.
3. Stabilisation (scale-down only; scale-up is immediate): replicas come down no lower
   than the highest recommendation within a window, as the HPA's
   ``stabilizationWindowSeconds`` does. The window is ``stabilisation_seconds`` (300 s, the
   HPA's default) for Reactive. A Predictive policy gives capacity back more slowly: over
   ``scale_down_delay_seconds`` (the strategy's reaction speed, 600 s for Balanced) while
   the forecast is trusted, since the forecast already looks ``horizon_seconds`` ahead;
   over ``fallback_stabilisation_seconds`` (two hours) when it is not, since then the
   recent past is the only guide to the next horizon, and a noisy series (the kind whose
   forecasts are not trusted) needs the longer memory to keep its bursts covered.
4. Step limits: at most ``scale_up_step`` replicas more, ``scale_down_step`` fewer, per
   decision (None: no limit).
5. Cooldowns: no scale-up within ``scale_up_cooldown_seconds`` of the last scale-up; no
   scale-down within ``scale_down_cooldown_seconds`` of the last change either way (a
   scale-down right after a scale-up is the flap cooldowns exist to prevent). A change a
   cooldown stops gives basis "held".
6. Bounds: the result is clamped to [min_replicas, max_replicas], cooldowns or not.

Why these constants: the plan fraction, the fixed hysteresis band and the two
predictive windows were chosen with `make bench-scaling` (benchmarks/scaling.py) on real
traces against an HPA-like and a VPA-like reference; see that benchmark's docstring for
the figures.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from .pools import StrategyParameters

MODES = ("Reactive", "Predictive")
MEBIBYTE = 2.0**20


@dataclass(frozen=True)
class ScalingRules:
    """How a policy scales. The defaults are what `quartermaster replay` uses without a
    policy file: Predictive at the 0.9 quantile over 30 minutes, no step limits, no
    cooldowns, at least one replica and no maximum."""

    mode: str = "Predictive"  # "Reactive" | "Predictive"
    min_replicas: int = 1
    max_replicas: int | None = None  # None: no maximum
    scale_up_step: int | None = None  # most replicas added per decision; None: no limit
    scale_up_cooldown_seconds: float = 0.0
    scale_down_step: int | None = None
    scale_down_cooldown_seconds: float = 0.0
    tolerance: float = 0.1  # reactive: no change while demand/target is this close to current
    stabilisation_seconds: float = 300.0  # reactive scale-down window (the HPA's default)
    quantile: float = 0.9  # the forecast quantile the predictive rule plans for
    horizon_seconds: float = 1800.0  # how far ahead it looks
    step_seconds: float = 300.0  # the forecast's step: forecast[k] is for now + (k + 1) x step
    confidence_threshold: float = 0.6  # below it, Predictive decides reactively
    scale_down_delay_seconds: float = 600.0  # predictive scale-down window (the strategy's)
    fallback_stabilisation_seconds: float = 7200.0  # the window when the forecast is not trusted
    plan_fraction: float = 0.5  # with a median: how far from its need towards the quantile's to plan
    hysteresis_up: float = 0.3  # without a median: the forecast raises replicas only beyond this
    hysteresis_down: float = 0.2  # fraction above current, and lowers them only beyond this below

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.min_replicas < 0:
            raise ValueError(f"min_replicas must not be negative, got {self.min_replicas}")
        if self.max_replicas is not None and self.max_replicas < max(self.min_replicas, 1):
            raise ValueError(f"max_replicas ({self.max_replicas}) must be at least 1 and min_replicas "
                             f"({self.min_replicas})")
        for name in ("scale_up_step", "scale_down_step"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit), got {getattr(self, name)}")
        for name in ("scale_up_cooldown_seconds", "scale_down_cooldown_seconds", "tolerance",
                     "stabilisation_seconds", "scale_down_delay_seconds", "fallback_stabilisation_seconds",
                     "hysteresis_up", "hysteresis_down"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {getattr(self, name)!r}")
        if not 0 <= self.plan_fraction <= 1:
            raise ValueError(f"plan_fraction must be in [0, 1], got {self.plan_fraction!r}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile!r}")
        if not 0 <= self.confidence_threshold <= 1:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {self.confidence_threshold!r}")
        for name in ("horizon_seconds", "step_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)!r}")

    @property
    def horizon_steps(self) -> int:
        """Forecast steps the horizon covers (at least one)."""
        return max(1, math.ceil(self.horizon_seconds / self.step_seconds - 1e-9))

    @property
    def memory_seconds(self) -> float:
        """How far back the stabilisation may look: the longest of its windows."""
        return max(self.stabilisation_seconds, self.scale_down_delay_seconds, self.fallback_stabilisation_seconds)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], strategy: StrategyParameters | None = None,
                  step_seconds: float = 300.0) -> ScalingRules:
        """Rules from a ScalingPolicy spec's fields (camelCase, as in the manifest: ``mode``,
        ``minReplicas``, ``maxReplicas``, ``scaleUp``/``scaleDown`` with ``step`` and
        ``cooldownSeconds``, ``forecast`` with ``horizonSeconds`` and ``quantile``,
        ``confidenceThreshold``) over the defaults of the pool's strategy (its quantile,
        horizon and scale-down delay), and those over the class defaults. A field the spec
        leaves out keeps the default; other fields are ignored."""
        values: dict[str, Any] = {"step_seconds": step_seconds}
        if strategy is not None:
            values.update(quantile=strategy.quantile, horizon_seconds=strategy.horizon_seconds,
                          scale_down_delay_seconds=strategy.scale_down_delay_seconds)
        forecast = spec.get("forecast") or {}
        scale_up, scale_down = spec.get("scaleUp") or {}, spec.get("scaleDown") or {}
        for name, value in (("mode", spec.get("mode")), ("min_replicas", spec.get("minReplicas")),
                            ("max_replicas", spec.get("maxReplicas")),
                            ("scale_up_step", scale_up.get("step")),
                            ("scale_up_cooldown_seconds", scale_up.get("cooldownSeconds")),
                            ("scale_down_step", scale_down.get("step")),
                            ("scale_down_cooldown_seconds", scale_down.get("cooldownSeconds")),
                            ("quantile", forecast.get("quantile")),
                            ("horizon_seconds", forecast.get("horizonSeconds")),
                            ("confidence_threshold", spec.get("confidenceThreshold"))):
            if value is not None:
                values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class ScalingState:
    """What one decision hands the next: the replicas in place, when replicas last went up
    and down (unix seconds), and the recent recommendations (time, replicas), oldest first,
    that scale-down stabilisation takes its maximum over."""

    replicas: int
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    recommendations: tuple[tuple[float, int], ...] = field(default=())

    @classmethod
    def initial(cls, replicas: int) -> ScalingState:
        """The state before any decision: these replicas, no history."""
        return cls(int(replicas))


@dataclass(frozen=True)
class ReplicaDecision:
    replicas: int
    reasoning: str
    basis: str  # "reactive" | "predictive" | "held" (a cooldown stopped the change)
    state: ScalingState


def decide_replicas(rules: ScalingRules, state: ScalingState, now: float, demand_now: float,
                    target_per_replica: float, forecast: np.ndarray | None = None,
                    confidence: float | None = None, signal: str = "cpu",
                    median: np.ndarray | None = None) -> ReplicaDecision:
    """The replicas to run after ``now`` (unix seconds), by the model in the module's docstring.

    ``demand_now`` is the target's total demand of ``signal`` now (cores for cpu, bytes for
    memory), ``target_per_replica`` what one replica should carry; ``forecast`` [H] the
    total demand at ``rules.quantile`` for the steps after now (forecast[k] at now + (k + 1)
    x ``rules.step_seconds``; only the first ``rules.horizon_steps`` count), ``confidence``
    its confidence in [0, 1] (None: unknown, which is not trusted), ``median`` [H] the
    same forecast's median (None: the fixed hysteresis band instead of the forecast's; a
    median above the quantile is taken as the quantile). Reactive rules ignore the
    forecasts. Raises ValueError for a demand that is negative or not finite, a target that
    is not positive, or a trusted forecast or median that is not a 1-D array of finite
    numbers.
    """
    if demand_now is None or target_per_replica is None:
        raise ValueError(f"demand_now and target_per_replica are needed, got {demand_now!r} and "
                         f"{target_per_replica!r}")
    demand_now, target = float(demand_now), float(target_per_replica)
    if not (math.isfinite(demand_now) and demand_now >= 0):
        raise ValueError(f"demand_now must be a finite non-negative number, got {demand_now!r}")
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target_per_replica must be a positive number, got {target_per_replica!r}")
    current = state.replicas
    per_replica = f"{amount(signal, target)} per replica"

    # 1. reactive
    if current > 0 and abs(demand_now / (current * target) - 1) <= rules.tolerance:
        reactive = current
        need = (f"{signal} now {amount(signal, demand_now)}, within {rules.tolerance:.0%} of {current} × "
                f"{amount(signal, target)}: {current} replicas")
    else:
        reactive = math.ceil(demand_now / target - 1e-9)
        need = f"{signal} now {amount(signal, demand_now)}; {per_replica} → {reactive} replicas"
    recommendation, basis, clauses = reactive, "reactive", [need]
    window = rules.stabilisation_seconds

    # 2. predictive
    if rules.mode == "Predictive":
        distrust = _distrust(rules, forecast, confidence)
        if distrust is not None:
            clauses.insert(0, f"{distrust}: reactive")
            window = rules.fallback_stabilisation_seconds
        else:
            window = rules.scale_down_delay_seconds
            predictive, outlook = _predictive(rules, current, now, target, forecast, median, signal)
            if predictive >= reactive:
                recommendation, basis, clauses = predictive, "predictive", [outlook]
            else:
                clauses = [need + f" (above the forecast's {predictive})"]

    # 3. stabilisation
    recent = tuple((t, r) for t, r in state.recommendations if t > now - rules.memory_seconds) + (
        (now, recommendation),)
    desired = recommendation
    if recommendation < current:
        held_at = max((r for t, r in recent if t > now - window), default=recommendation)
        desired = min(current, held_at)
        if desired > recommendation:
            clauses.append(f"held at {desired} by the highest recommendation of the last {_duration(window)}")

    # 4. step limits
    if rules.scale_up_step is not None and desired > current + rules.scale_up_step:
        desired = current + rules.scale_up_step
        clauses.append(f"at most +{rules.scale_up_step} per decision: {desired}")
    if rules.scale_down_step is not None and desired < current - rules.scale_down_step:
        desired = current - rules.scale_down_step
        clauses.append(f"at most -{rules.scale_down_step} per decision: {desired}")

    # 5. cooldowns
    last_change = max((t for t in (state.last_scale_up, state.last_scale_down) if t is not None), default=None)
    for wanted, last, cooldown, direction in (
            (desired > current, state.last_scale_up, rules.scale_up_cooldown_seconds, "scale-up"),
            (desired < current, last_change, rules.scale_down_cooldown_seconds, "scale-down")):
        if wanted and last is not None and now < last + cooldown:
            clauses.append(f"{direction} cooldown until {_clock(last + cooldown)}: stays at {current}")
            desired, basis = current, "held"

    # 6. bounds
    if desired < rules.min_replicas:
        desired = rules.min_replicas
        clauses.append(f"raised to minReplicas {desired}")
    if rules.max_replicas is not None and desired > rules.max_replicas:
        desired = rules.max_replicas
        clauses.append(f"capped at maxReplicas {desired}")

    clauses.append(f"now {current}")
    next_state = replace(state, replicas=desired, recommendations=recent,
                         last_scale_up=now if desired > current else state.last_scale_up,
                         last_scale_down=now if desired < current else state.last_scale_down)
    return ReplicaDecision(desired, "; ".join(clauses), basis, next_state)


def _predictive(rules: ScalingRules, current: int, now: float, target: float, forecast, median,
                signal: str) -> tuple[int, str]:
    """The replicas a trusted forecast asks for, and the clause that says why (step 2 of the
    module's model: the band between the median's and the quantile's need when the median is
    given, the fixed hysteresis band around the quantile's need when it is not)."""
    upper = _checked(forecast, "forecast")[:rules.horizon_steps]
    at = int(np.argmax(upper))
    peak, peak_time = float(upper[at]), now + (at + 1) * rules.step_seconds
    high, per_replica = peak / target, f"{amount(signal, target)} per replica"
    clock, minutes = _clock(peak_time), round((peak_time - now) / 60)
    label = f"p{quantile_label(rules.quantile)}"
    if median is None or rules.quantile <= 0.5:
        outlook = (f"{signal} {label} forecast peaks at {amount(signal, peak)} at {clock} (in {minutes} min); "
                   f"{per_replica} → ")
        if current > 0 and current * (1 - rules.hysteresis_down) <= high <= current * (1 + rules.hysteresis_up):
            return current, outlook + (f"{high:.3g} replicas, within -{rules.hysteresis_down:.0%}/"
                                       f"+{rules.hysteresis_up:.0%} of {current}: {current} replicas")
        return math.ceil(high - 1e-9), outlook + f"{math.ceil(high - 1e-9)} replicas"
    median_peak = min(float(_checked(median, "median")[:rules.horizon_steps].max()), peak)
    low = median_peak / target
    plan = low + rules.plan_fraction * (high - low)
    top = math.ceil(plan - 1e-9)
    outlook = (f"{signal} forecast peaks at {amount(signal, median_peak)} (p50) to {amount(signal, peak)} "
               f"({label}, at {clock}, in {minutes} min); {per_replica} → {low:.3g} to {high:.3g} replicas, "
               f"planned {rules.plan_fraction:.0%} of the way up: {plan:.3g}")
    if low <= current <= top:
        return current, outlook + f"; {current} is within {low:.3g} to {top}: {current} replicas"
    if current < low:
        return top, outlook + f" → {top} replicas"
    bottom = math.ceil(low - 1e-9)
    return bottom, outlook + f"; {current} is above {top}: down to the p50's {bottom} replicas"


def _checked(values, name: str) -> np.ndarray:
    """A forecast as a float array; ValueError unless it is non-empty, 1-D and finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite numbers, got shape {array.shape}")
    return array


def _distrust(rules: ScalingRules, forecast, confidence: float | None) -> str | None:
    """Why the forecast may not set this decision, or None when it may."""
    if forecast is None:
        return "no forecast"
    _checked(forecast, "forecast")
    if confidence is None or not math.isfinite(confidence):
        return "confidence unknown"
    if confidence < rules.confidence_threshold:
        return f"confidence {confidence:.2f} below {rules.confidence_threshold:.2f}"
    return None


def amount(signal: str, value: float) -> str:
    """A signal's amount as a person reads it: cpu in millicores below one core ("400m"),
    else cores ("3.1 cores"); memory in Mi or Gi; anything else as a plain number."""
    if signal == "cpu":
        return f"{value * 1000:.0f}m" if value < 1 else f"{value:.3g} cores"
    if signal == "memory":
        return f"{value / MEBIBYTE:.0f}Mi" if value < 1024 * MEBIBYTE else f"{value / 1024 / MEBIBYTE:.3g}Gi"
    return f"{value:.3g}"


def quantile_label(quantile: float) -> str:
    """0.9 as "90", for "p90"."""
    return f"{quantile * 100:.3g}"


def _clock(timestamp: float) -> str:
    """HH:MM UTC."""
    return time.strftime("%H:%M", time.gmtime(timestamp))


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds < 3600 else f"{seconds / 3600:.3g} h"
