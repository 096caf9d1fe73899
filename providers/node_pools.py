"""The node-pool actuator: a NodePool ScalingPolicy's size, applied absolutely through the
provider of its ResourcePool's `providerNodePool`, and what that provider says of the pool
each cycle.

Providers are loaded by entry-point name (`registry.load`) on first use, each with its
options from the operator's `--providers` file (for kwok, its `pools`), after Kopf's login
has configured the Kubernetes client the kwok provider writes Nodes with.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Optional, TypeVar

from kubernetes.client import ApiException

from quartermaster.providers import registry
from quartermaster.providers.interface import (
    InstanceType, NodePool, NodePoolProvider, ProviderError, Unavailable, retry_transient)

# Tries of one provider call: a transient error (throttled, unavailable) is retried with
# backoff (interface.backoff_delays: 0.25–0.5 s, 0.5–1 s, 1–2 s apart), so that one cycle
# rides out a brief burst and a longer one becomes the policy's condition.
TRIES = 4

OnRetry = Callable[[ProviderError, float], None]
T = TypeVar("T")


class ProviderNotConfigured(ProviderError):
    """The provider is not installed, or its options in the --providers file are wrong."""


@dataclass(frozen=True)
class NodePoolSize:
    """What a NodePool policy asks of its provider: the pool's size, absolute, and the
    instance type and spot share of the nodes it launches (None: as the pool has them).
    `price_per_hour` (the pool's at that size) is for the record, not part of the request."""

    provider: str
    pool: str
    size: int
    instance_type: Optional[str] = None
    spot_percentage: Optional[int] = None
    price_per_hour: Optional[float] = field(default=None, compare=False)
    actuator = "nodepool"
    event_reason = "ResizedNodePool"

    def describe(self) -> str:
        shape = "".join([f" of {self.instance_type}" if self.instance_type else "",
                         f", {self.spot_percentage}% spot" if self.spot_percentage is not None else "",
                         f" at ${self.price_per_hour:.2f}/h" if self.price_per_hour is not None else ""])
        return f"node pool {self.pool} ({self.provider}): {self.size} nodes{shape}"


@dataclass(frozen=True)
class NodePoolObservation:
    """A pool as its provider described it this cycle, with the instance types the provider
    offers (the pool's own among them); or the provider's error."""

    pool: Optional[NodePool] = None
    error: Optional[ProviderError] = None
    instance_types: tuple[InstanceType, ...] = ()


class NodePoolProviders:
    def __init__(self, options: Mapping[str, Mapping]) -> None:
        self._options = dict(options)
        self._loaded: dict[str, NodePoolProvider] = {}
        self._types: dict[str, dict[str, InstanceType]] = {}  # by provider, then name: listed once

    def provider(self, name: str) -> NodePoolProvider:
        if name not in self._loaded:
            try:
                self._loaded[name] = registry.load(name, **self._options.get(name, {}))
            except (registry.UnknownProvider, ImportError, TypeError, ValueError, KeyError) as error:
                raise ProviderNotConfigured(f"provider {name}: {error} (see the operator's --providers file)") from error
        return self._loaded[name]

    async def observe(self, provider: str, pool: str, on_retry: OnRetry | None = None) -> NodePoolObservation:
        """The pool and the provider's instance types, each call retried on a transient error
        (`on_retry` hears of each retry); or the error, ProviderNotConfigured if the types
        do not include the pool's own."""
        try:
            state = await self._call(lambda: self.provider(provider).describe(pool), on_retry)
            if provider not in self._types:
                kinds = await self._call(lambda: self.provider(provider).instance_types(), on_retry)
                self._types[provider] = {kind.name: kind for kind in kinds}
            if state.instance_type not in self._types[provider]:
                raise ProviderNotConfigured(f"provider {provider} lists no instance type {state.instance_type} "
                                            f"(node pool {pool})")
            return NodePoolObservation(state, instance_types=tuple(self._types[provider].values()))
        except ProviderError as error:
            return NodePoolObservation(error=error)

    async def apply(self, action: NodePoolSize, on_retry: OnRetry | None = None) -> NodePool:
        """Set the pool's desired size, and its instance type and spot share where the action
        names them, retried on a transient error (raises the ProviderError that ends it)."""
        shape = {"instance_type": action.instance_type, "spot_percentage": action.spot_percentage}
        # only what is asked for, so that a provider without the keywords still resizes
        shape = {key: value for key, value in shape.items() if value is not None}
        return await self._call(lambda: self.provider(action.provider).set_desired_size(
            action.pool, action.size, **shape), on_retry)

    async def _call(self, call: Callable[[], Awaitable[T]], on_retry: OnRetry | None) -> T:
        async def typed() -> T:
            try:
                return await call()
            except ApiException as error:
                raise _untyped(error) from error

        return await retry_transient(typed, TRIES, on_retry=on_retry)


def _untyped(error: ApiException) -> Unavailable:
    """A Kubernetes API answer the kwok provider has no type for (a 5xx, a conflict): transient."""
    return Unavailable(f"{error.status} {error.reason}")
