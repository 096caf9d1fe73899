"""Kubernetes quantities as floats (cores, bytes, counts) and back to their usual text."""
from __future__ import annotations

from kubernetes.utils.quantity import parse_quantity

# The resources a pool accounts for, by the name Kubernetes gives them.
RESOURCES: tuple[str, ...] = ("cpu", "memory", "nvidia.com/gpu", "pods")

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def to_float(value: str | int | float | None) -> float:
    return 0.0 if value is None else float(parse_quantity(value))


def format_quantity(resource: str, amount: float) -> str:
    """cpu in cores or millicores, memory in the largest exact binary unit, others as counts."""
    if resource == "cpu":
        millis = round(amount * 1000)
        return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    if resource == "memory":
        whole = round(amount)
        for suffix, size in _BINARY:
            if whole >= size and whole % size == 0:
                return f"{whole // size}{suffix}"
        return str(whole)
    return str(round(amount)) if abs(amount - round(amount)) < 1e-9 else f"{amount:g}"


def format_resources(amounts: dict[str, float]) -> dict[str, str]:
    return {resource: format_quantity(resource, amounts.get(resource, 0.0)) for resource in RESOURCES}
