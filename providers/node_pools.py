"""The node-pool actuator: a NodePool ScalingPolicy's size, applied absolutely through the
provider of its ResourcePool's `providerNodePool`, and what that provider says of the pool
each cycle.

Providers are loaded by entry-point name (`registry.load`) on first use, each with its
options from the operator's `--providers` file (for kwok, its `pools`), after Kopf's login
has configured the Kubernetes client the kwok provider writes Nodes with.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from kubernetes.client import ApiException

from quartermaster.providers import registry
from quartermaster.providers.interface import NodePool, NodePoolProvider, ProviderError, Unavailable


class ProviderNotConfigured(ProviderError):
    """The provider is not installed, or its options in the --providers file are wrong."""


@dataclass(frozen=True)
class NodePoolSize:
    """What a NodePool policy asks of its provider: the pool's size, absolute."""

    provider: str
    pool: str
    size: int
    actuator = "nodepool"
    event_reason = "ResizedNodePool"

    def describe(self) -> str:
        return f"node pool {self.pool} ({self.provider}): {self.size} nodes"


@dataclass(frozen=True)
class NodePoolObservation:
    """A pool as its provider described it this cycle, with one node's allocatable; or the
    provider's error."""

    pool: Optional[NodePool] = None
    allocatable: Optional[Mapping[str, float]] = None
    error: Optional[ProviderError] = None


class NodePoolProviders:
    def __init__(self, options: Mapping[str, Mapping]) -> None:
        self._options = dict(options)
        self._loaded: dict[str, NodePoolProvider] = {}
        self._allocatable: dict[tuple[str, str], Mapping[str, float]] = {}

    def provider(self, name: str) -> NodePoolProvider:
        if name not in self._loaded:
            try:
                self._loaded[name] = registry.load(name, **self._options.get(name, {}))
            except (registry.UnknownProvider, ImportError, TypeError, ValueError, KeyError) as error:
                raise ProviderNotConfigured(f"provider {name}: {error} (see the operator's --providers file)") from error
        return self._loaded[name]

    async def observe(self, provider: str, pool: str) -> NodePoolObservation:
        """The pool and its instance type's allocatable (the types listed once per provider)."""
        try:
            state = await self.provider(provider).describe(pool)
            key = (provider, state.instance_type)
            if key not in self._allocatable:
                for kind in await self.provider(provider).instance_types():
                    self._allocatable[(provider, kind.name)] = kind.allocatable
            if key not in self._allocatable:
                raise ProviderNotConfigured(f"provider {provider} lists no instance type {state.instance_type} "
                                            f"(node pool {pool})")
            return NodePoolObservation(state, self._allocatable[key])
        except ProviderError as error:
            return NodePoolObservation(error=error)
        except ApiException as error:
            return NodePoolObservation(error=_untyped(error))

    async def apply(self, action: NodePoolSize) -> NodePool:
        """Set the pool's desired size (raises ProviderError)."""
        try:
            return await self.provider(action.provider).set_desired_size(action.pool, action.size)
        except ApiException as error:
            raise _untyped(error) from error


def _untyped(error: ApiException) -> Unavailable:
    """A Kubernetes API answer the kwok provider has no type for (a 5xx, a conflict): transient."""
    return Unavailable(f"{error.status} {error.reason}")
