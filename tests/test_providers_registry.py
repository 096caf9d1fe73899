"""Provider discovery by entry points: a registered provider loads, an unknown one is named,
the node-pool providers are registered, and a missing SDK names its extra."""
import asyncio
import importlib
import sys
from importlib.metadata import EntryPoint

import pytest

from quartermaster.providers import registry
from quartermaster.providers.interface import NodePool, NodePoolProvider, require_sdk


class FixedPool:
    def __init__(self, size: int = 1):
        self.size = size

    async def list_node_pools(self):
        return [await self.describe("p")]

    async def describe(self, pool):
        return NodePool(pool, "m5.large", ("a",), 0, 10, self.size, self.size)

    async def set_desired_size(self, pool, size):
        self.size = size
        return await self.describe(pool)

    async def instance_types(self):
        return []


@pytest.fixture
def one_provider(monkeypatch):
    point = EntryPoint("fixed", f"{__name__}:FixedPool", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])


def test_registered_provider_loads_with_its_options(one_provider):
    provider = registry.load("fixed", size=3)
    assert isinstance(provider, NodePoolProvider)
    assert asyncio.run(provider.set_desired_size("p", 5)).desired_size == 5 and registry.available() == ["fixed"]


def test_unknown_provider_error_lists_the_installed_ones(one_provider):
    with pytest.raises(registry.UnknownProvider, match=r"no provider named 'aws'; installed: fixed"):
        registry.load("aws")


def test_the_node_pool_providers_are_registered_by_the_package():
    points = {ep.name: ep for ep in registry.entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert {"kwok", "aws", "gcp", "azure"} <= set(points)
    for name in ("kwok", "aws", "gcp", "azure"):
        cls = points[name].load()
        assert all(callable(getattr(cls, method, None)) for method in
                   ("list_node_pools", "describe", "set_desired_size", "instance_types")), name


def test_a_missing_sdk_names_the_extra_to_install():
    with pytest.raises(ImportError, match=r"the aws provider needs no_such_sdk: pip install 'quartermaster\[aws\]'"):
        require_sdk("no_such_sdk", "aws")


@pytest.mark.parametrize("extra, sdk", [("gcp", "google.cloud.compute_v1"), ("azure", "azure.mgmt.compute"),
                                        ("azure", "azure.identity")])
def test_a_provider_without_its_sdk_names_its_extra(monkeypatch, extra, sdk):
    monkeypatch.delitem(sys.modules, f"quartermaster.providers.{extra}", raising=False)
    monkeypatch.setitem(sys.modules, sdk, None)  # None in sys.modules: importing it fails
    expected = rf"the {extra} provider needs {sdk}: pip install 'quartermaster\[{extra}\]'"
    with pytest.raises(ImportError, match=expected):
        importlib.import_module(f"quartermaster.providers.{extra}")
