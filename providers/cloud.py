"""What the GCP and Azure node-pool providers share: the labels (GCP) or tags (Azure) that
mark a managed instance group or scale set as a node pool and give its bounds, and the
kind of failure an HTTP status is when the cloud's error code says nothing more.

Neither a managed instance group nor a scale set has a minimum and maximum size of its
own (their autoscalers do, and we are not using those), so the bounds are labels too.
The keys are valid both as GCP label keys (lowercase, digits, `-`, `_`) and as Azure tag
names (no `/`), hence `quartermaster-dev-…` rather than `quartermaster.dev/…`.
"""
from __future__ import annotations

from collections.abc import Mapping

from quartermaster.providers.interface import (
    NodePool, NotFound, ProviderError, Rejected, Throttled, Unauthorized, Unavailable, Unsupported)

POOL_LABEL = "quartermaster-dev-node-pool"  # any value: the group is a node pool
MIN_SIZE_LABEL = "quartermaster-dev-min-size"  # default 0
MAX_SIZE_LABEL = "quartermaster-dev-max-size"  # default: the cloud's own limit per group


def is_pool(labels: Mapping[str, str]) -> bool:
    return POOL_LABEL in labels


def size_bounds(labels: Mapping[str, str], pool: str, largest: int) -> tuple[int, int]:
    """The pool's (min_size, max_size) from its labels; a label that is not a whole number
    in [0, largest], or a minimum above the maximum, is Rejected with the label named."""
    bounds = []
    for key, default in ((MIN_SIZE_LABEL, 0), (MAX_SIZE_LABEL, largest)):
        value = labels.get(key, str(default))
        if not value.isdigit() or int(value) > largest:
            raise Rejected(f"node pool {pool}: label {key}={value!r} is not a whole number in [0, {largest}]")
        bounds.append(int(value))
    if bounds[0] > bounds[1]:
        raise Rejected(f"node pool {pool}: {MIN_SIZE_LABEL} {bounds[0]} is above {MAX_SIZE_LABEL} {bounds[1]}")
    return bounds[0], bounds[1]


def error_for_status(status: int | None) -> type[ProviderError]:
    """The error kind an HTTP status means by itself; no status at all (no answer) is
    Unavailable."""
    if status is None or status >= 500:
        return Unavailable
    return {429: Throttled, 401: Unauthorized, 403: Unauthorized, 404: NotFound}.get(status, Rejected)


def refuse_reshaping(pool: NodePool, instance_type: str | None, spot_percentage: int | None, group: str) -> None:
    """Unsupported when asked for another instance type or spot share than `pool` has: a
    managed instance group's machine type and provisioning model, or a scale set's VM size
    and priority, come from its template or model, which the operator does not rewrite."""
    if instance_type is not None and instance_type != pool.instance_type:
        raise Unsupported(f"node pool {pool.name}: a {group} keeps the instance type of its template "
                          f"({pool.instance_type}); changing it to {instance_type} is not supported: "
                          "list at most that one in instanceTypes")
    if spot_percentage is not None and spot_percentage != pool.spot_percentage:
        raise Unsupported(f"node pool {pool.name}: a {group} keeps the spot share of its template "
                          f"({pool.spot_percentage}%); changing it to {spot_percentage}% is not supported: "
                          "leave spotPercentage unset")
