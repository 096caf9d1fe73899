"""Vertical rightsizing: the requests one container should ask for, cpu and memory apart.

Pure code (plain values and numpy arrays in, frozen dataclasses out, no I/O).

decide_request(rules, resource, forecast, recent_peak=None, oom_killed=False, container="")
    -> RequestDecision
    One container's (or one pod's) request of one resource ("cpu" in cores, "memory" in bytes).
split_requests(pod_requests, current) -> {container: {resource: amount}}
    A pod's requests shared among its containers.
worth_updating(current, proposed, tolerance, oom_killed) -> bool
    Whether new requests differ enough from the ones in place to roll or resize pods.

The model:

* request = peak of the per-pod usage forecast at the policy's quantile over the horizon
  x (1 + buffer): what one pod will use, with the strategy's headroom.
* Memory never below the recent peak x (1 + buffer). CPU is compressible (a pod over its
  request is throttled, or runs on spare cycles), but memory is not: a working set that
  has been reached once and is asked for less is an eviction or OOMKill waiting to recur,
  whatever a forecast says about the average day.
* After an OOMKill (the container's last state) memory goes up at once, to at least
  max(peak + 100Mi, peak x 1.2), the rule VPA applies: the usage measured before a kill
  understates what the container wanted, so the bump must be a real step, not a margin.
* CPU and memory are decided separately: each is clamped to its own [minimum, maximum]
  allowed, and neither bound nor bump of one touches the other.
* Usage is measured per pod, so a pod's request is shared among its containers in the
  proportion of their requests now (equally where none requests the resource): the
  containers' balance is the owner's knowledge, the total is the measurement's.
* Pods are rolled or resized only when a request moves by more than a tolerance (10 % by
  default), or a container that requests nothing of a resource gets a request: VPA's
  lesson is that every small correction is a restart, and a restart costs more than the
  few percent it saves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .pools import StrategyParameters
from .scaling import MEBIBYTE, amount, quantile_label

RESOURCES = ("cpu", "memory")
UPDATE_TOLERANCE = 0.1
# VPA's OOM bump: at least this much more memory than the peak, and at least this ratio.
OOM_MIN_BUMP_BYTES = 100 * MEBIBYTE
OOM_BUMP_RATIO = 1.2


@dataclass(frozen=True)
class RequestRules:
    """How a Vertical policy sizes requests: the strategy's quantile and buffer, and the
    bounds allowed per resource (None: unbounded)."""

    quantile: float = 0.9
    buffer: float = 0.1
    min_cpu: float | None = None  # cores
    max_cpu: float | None = None
    min_memory: float | None = None  # bytes
    max_memory: float | None = None

    def __post_init__(self):
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile!r}")
        if not self.buffer >= 0:
            raise ValueError(f"buffer must be a non-negative number, got {self.buffer!r}")
        for resource in RESOURCES:
            low, high = self.bounds(resource)
            if low is not None and high is not None and low > high:
                raise ValueError(f"min_{resource} ({low}) must not be greater than max_{resource} ({high})")

    def bounds(self, resource: str) -> tuple[float | None, float | None]:
        return getattr(self, f"min_{resource}"), getattr(self, f"max_{resource}")

    @classmethod
    def from_strategy(cls, strategy: StrategyParameters, **bounds: float | None) -> RequestRules:
        """The strategy's quantile and buffer, with per-resource bounds (min_cpu=..., ...)."""
        return cls(quantile=strategy.quantile, buffer=strategy.buffer, **bounds)


@dataclass(frozen=True)
class RequestDecision:
    resource: str  # "cpu" | "memory"
    request: float  # cores or bytes
    reasoning: str
    basis: str  # "forecast" | "recent peak" | "oom" | "minimum" | "maximum"


def decide_request(rules: RequestRules, resource: str, forecast: np.ndarray, recent_peak: float | None = None,
                   oom_killed: bool = False, container: str = "") -> RequestDecision:
    """One container's request of ``resource`` by the module's model.

    ``forecast`` [H] is one pod's usage of the resource at ``rules.quantile`` over the
    horizon; ``recent_peak`` the highest usage seen recently (memory's floor and the base
    of its OOM bump; ignored for cpu); ``oom_killed`` whether the container's last state
    is an OOMKill. Raises ValueError for an unknown resource, a forecast that is not a
    non-empty 1-D array of finite numbers, or a negative or non-finite recent peak; an
    OOMKill needs the recent peak.
    """
    if resource not in RESOURCES:
        raise ValueError(f"resource must be one of {', '.join(RESOURCES)}, got {resource!r}")
    values = np.asarray(forecast, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"forecast must be a non-empty 1-D array of finite numbers, got shape {values.shape}")
    if recent_peak is not None and not (math.isfinite(recent_peak) and recent_peak >= 0):
        raise ValueError(f"recent_peak must be a finite non-negative number, got {recent_peak!r}")
    if oom_killed and resource == "memory" and recent_peak is None:
        raise ValueError("an OOMKill raises memory from the recent peak: recent_peak is needed")

    who = f"{container} " if container else ""
    headroom = 1 + rules.buffer
    peak = max(float(values.max()), 0.0)
    request, basis = peak * headroom, "forecast"
    clauses = [f"{who}{resource} p{quantile_label(rules.quantile)} forecast peaks at {amount(resource, peak)} per pod; "
               f"+{rules.buffer:.0%} → {amount(resource, request)}"]
    if resource == "memory" and recent_peak is not None:
        floor = recent_peak * headroom
        if floor > request:
            request, basis = floor, "recent peak"
            clauses.append(f"recent peak {amount(resource, recent_peak)} +{rules.buffer:.0%} → "
                           f"{amount(resource, request)}")
        if oom_killed:
            bump = max(recent_peak + OOM_MIN_BUMP_BYTES, recent_peak * OOM_BUMP_RATIO)
            if bump > request:
                request, basis = bump, "oom"
            clauses.append(f"OOMKilled at a peak of {amount(resource, recent_peak)}: at least "
                           f"max(+100Mi, x{OOM_BUMP_RATIO:g}) → {amount(resource, request)}")
    low, high = rules.bounds(resource)
    if low is not None and request < low:
        request, basis = float(low), "minimum"
        clauses.append(f"raised to the minimum {amount(resource, request)}")
    if high is not None and request > high:
        request, basis = float(high), "maximum"
        clauses.append(f"capped at the maximum {amount(resource, request)}")
    return RequestDecision(resource, request, "; ".join(clauses), basis)


def split_requests(pod_requests: dict[str, float],
                   current: list[tuple[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """``pod_requests`` (resource -> amount for the whole pod) shared among the containers
    ``current`` lists as (name, their requests now), in proportion to those requests."""
    if not current:
        raise ValueError("a pod has at least one container")
    shares: dict[str, dict[str, float]] = {name: {} for name, _ in current}
    for resource, total in pod_requests.items():
        now = [max(requests.get(resource, 0.0), 0.0) for _, requests in current]
        whole = sum(now)
        for (name, _), part in zip(current, now):
            shares[name][resource] = total * (part / whole if whole > 0 else 1 / len(current))
    return shares


def worth_updating(current: dict[str, dict[str, float]], proposed: dict[str, dict[str, float]],
                   tolerance: float = UPDATE_TOLERANCE, oom_killed: bool = False) -> bool:
    """True when a proposed request of some container is new, or differs from the one in
    place by more than ``tolerance`` of it; after an OOMKill, also when any memory request
    goes up at all (the killed pods cannot wait for the raise to grow)."""
    if oom_killed and raises(current, proposed, "memory"):
        return True
    for name, requests in proposed.items():
        for resource, request in requests.items():
            now = current.get(name, {}).get(resource)
            if now is None or now <= 0 or abs(request - now) > tolerance * now:
                return True
    return False


def raises(current: dict[str, dict[str, float]], proposed: dict[str, dict[str, float]],
           resource: str | None = None) -> bool:
    """Whether some container's proposed request (of ``resource``, or of any) is above the
    one in place."""
    return any(amount > current.get(name, {}).get(r, 0.0) for name, requests in proposed.items()
               for r, amount in requests.items() if resource in (None, r))
