"""Kubernetes quantities as floats (cores, bytes, counts) and back to their usual text."""
from __future__ import annotations

import math

from kubernetes.utils.quantity import parse_quantity

# The resources a pool accounts for, by the name Kubernetes gives them.
RESOURCES: tuple[str, ...] = ("cpu", "memory", "nvidia.com/gpu", "pods")

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def to_float(value: str | int | float | None) -> float:
    return 0.0 if value is None else float(parse_quantity(value))


def format_quantity(resource: str, amount: float) -> str:
    """cpu in cores or millicores, memory and storage in the largest exact binary unit,
    others as counts."""
    if resource == "cpu":
        millis = round(amount * 1000)
        return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    if resource in ("memory", "storage"):
        whole = round(amount)
        for suffix, size in _BINARY:
            if whole >= size and whole % size == 0:
                return f"{whole // size}{suffix}"
        return str(whole)
    return str(round(amount)) if abs(amount - round(amount)) < 1e-9 else f"{amount:g}"


def format_resources(amounts: dict[str, float]) -> dict[str, str]:
    return {resource: format_quantity(resource, amounts.get(resource, 0.0)) for resource in RESOURCES}


# The precision requests are written at: a millicore of cpu, a MiB of memory.
_REQUEST_UNIT = {"cpu": 1e-3, "memory": float(2**20)}


def request_precision(resource: str, amount: float, up: bool = True) -> float:
    """`amount` at the precision a request is written at, rounded up (a request that must
    cover a need) or to the nearest (amounts moved between workloads, which round alike)."""
    unit = _REQUEST_UNIT[resource]
    units = math.ceil(amount / unit - 1e-9) if up else round(amount / unit)
    return units * unit if resource == "memory" else round(units * unit, 3)
