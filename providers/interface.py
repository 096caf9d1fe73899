"""What the operator asks of a node-pool provider, in the manner of Karpenter's CloudProvider.

The operator decides sizes; a provider only reports and applies them. Four async methods:
the pools it manages, one pool described, a pool's desired size set (absolute, so the
same call twice changes nothing; optionally with the instance type its new nodes are to
be and the share of them to be spot, absolute too, None leaving them as they are), and
the instance types it can launch with their allocatable resources and prices. Failures are typed (`ProviderError` and its kinds),
each saying whether it is transient, so the operator can retry those with backoff
(`retry_transient`) and turn the rest into conditions instead of a crash loop.
"""
from __future__ import annotations

import asyncio
import importlib
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol, TypeVar, runtime_checkable

import yaml
from kubernetes.utils.quantity import parse_quantity

ON_DEMAND, SPOT = "on-demand", "spot"
# The instance types, allocatable and list prices the repository carries, by provider.
INSTANCE_TYPE_TABLE = Path(__file__).with_name("instance_types.yaml")


@dataclass(frozen=True)
class InstanceType:
    """One kind of node: what a node of it offers pods, and what it costs per hour (USD)."""

    name: str
    allocatable: Mapping[str, float]  # per node: cpu in cores, memory in bytes, nvidia.com/gpu, pods
    on_demand_price: float
    spot_price: float | None = None  # None: not offered as spot

    def price(self, spot_share: float = 0.0) -> float:
        """The hourly price of one node when `spot_share` of the pool's nodes are spot."""
        if self.spot_price is None:
            return self.on_demand_price
        return spot_share * self.spot_price + (1 - spot_share) * self.on_demand_price


@dataclass(frozen=True)
class NodePool:
    """A pool as its provider sees it. `desired_size` is what the provider was last asked
    for; `size` the nodes in service now (each provider's README entry says how it counts
    them). `spot_percentage` is the target share of spot nodes above `on_demand_base`."""

    name: str
    instance_type: str
    zones: tuple[str, ...]
    min_size: int
    max_size: int
    desired_size: int
    size: int
    spot_percentage: int = 0
    on_demand_base: int = 0
    blocked: tuple[str, ...] = ()  # why the pool has not reached desired_size yet, in words
    # the provider's latest refusal of spot capacity for the pool (its words, and when, unix
    # seconds); empty when its latest launch was not refused
    spot_refused: str = ""
    spot_refused_at: float | None = None
    # why the provider keeps the pool's spot share as it is (set_desired_size refuses another
    # one: Unsupported), in its words; empty when it can change it
    fixed_spot_share: str = ""


class ProviderError(Exception):
    """A provider call that failed; `reason` is the condition reason the operator reports."""

    transient = False

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the provider asked to wait, when it said

    @property
    def reason(self) -> str:
        return type(self).__name__


class Throttled(ProviderError):
    """The provider's API rate limit: the same call later goes through."""

    transient = True


class InsufficientCapacity(ProviderError):
    """No capacity of this kind in this zone now (spot refused or reclaimed): it may come back."""

    transient = True


class QuotaExceeded(ProviderError):
    """The account's quota or limit would be exceeded: a person has to raise it."""


class NotFound(ProviderError):
    """The pool (or its template) does not exist."""


class Unauthorized(ProviderError):
    """The credentials are missing, wrong, or not allowed this call."""


class Unavailable(ProviderError):
    """The provider's API could not be reached or answered with a server error."""

    transient = True


class Rejected(ProviderError):
    """The request itself is invalid, e.g. a size outside the pool's minimum and maximum."""


class Unsupported(ProviderError):
    """The provider cannot make this change to this pool (e.g. a managed instance group's
    machine type): a person makes it, or the spec stops asking for it."""


@runtime_checkable
class NodePoolProvider(Protocol):
    async def list_node_pools(self) -> list[NodePool]: ...

    async def describe(self, pool: str) -> NodePool: ...

    async def set_desired_size(self, pool: str, size: int, instance_type: str | None = None,
                               spot_percentage: int | None = None) -> NodePool: ...

    async def instance_types(self) -> list[InstanceType]: ...


def check_size(pool: NodePool, size: int) -> None:
    """Refuse a size outside the pool's bounds before asking the provider."""
    if not pool.min_size <= size <= pool.max_size:
        raise Rejected(f"node pool {pool.name}: size {size} is outside [{pool.min_size}, {pool.max_size}]")


def require_sdk(module: str, extra: str) -> ModuleType:
    """Import a provider's SDK, or say which extra of quartermaster installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"the {extra} provider needs {module}: pip install 'quartermaster[{extra}]'") from error


def table_instance_types(catalogue: str, path: Path = INSTANCE_TYPE_TABLE) -> list[InstanceType]:
    """The instance types that the table lists under `catalogue` (aws, gcp, azure), with
    allocatable written as Kubernetes quantities."""
    entries = yaml.safe_load(path.read_text())[catalogue]
    return [InstanceType(entry["name"], {resource: float(parse_quantity(value))
                                         for resource, value in entry["allocatable"].items()},
                         float(entry["onDemandPrice"]), entry.get("spotPrice"))
            for entry in entries]


def backoff_delays(attempts: int, base: float = 0.5, cap: float = 8.0,
                   jitter: Callable[[], float] = random.random) -> Iterator[float]:
    """The waits between `attempts` tries: base × 2^k capped at `cap`, each scaled by
    (0.5 + jitter()/2) so that many callers throttled together do not retry together."""
    for k in range(attempts - 1):
        yield min(cap, base * 2 ** k) * (0.5 + jitter() / 2)


T = TypeVar("T")


async def retry_transient(call: Callable[[], Awaitable[T]], attempts: int = 4, *,
                          delays: Callable[[int], Iterator[float]] = backoff_delays,
                          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                          on_retry: Callable[[ProviderError, float], None] | None = None) -> T:
    """`call()`, tried again after a transient ProviderError up to `attempts` times in all.
    A wait the provider asked for (`retry_after`) is honoured when longer than the backoff.
    `on_retry(error, wait)` hears of each retry, for a log line or an Event. A permanent
    error, or the last transient one, is raised."""
    waits = delays(attempts)
    while True:
        try:
            return await call()
        except ProviderError as error:
            wait = next(waits, None) if error.transient else None
            if wait is None:
                raise
            wait = max(wait, error.retry_after or 0.0)
            if on_retry is not None:
                on_retry(error, wait)
            await sleep(wait)
