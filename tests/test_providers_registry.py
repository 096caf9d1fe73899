"""Provider discovery by entry points: a registered provider loads, an unknown one is named."""
from importlib.metadata import EntryPoint

import pytest

from quartermaster.providers import registry
from quartermaster.providers.interface import NodePoolProvider, NodePoolState


class FixedPool:
    def __init__(self, size: int = 1):
        self.size = size

    def describe(self, pool):
        return NodePoolState(pool, self.size, 0, 10, {"cpu": 4.0})

    def resize(self, pool, size):
        self.size = size
        return self.describe(pool)


@pytest.fixture
def one_provider(monkeypatch):
    point = EntryPoint("fixed", f"{__name__}:FixedPool", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])


def test_registered_provider_loads_with_its_options(one_provider):
    provider = registry.load("fixed", size=3)
    assert isinstance(provider, NodePoolProvider)
    assert provider.resize("p", 5).size == 5 and registry.available() == ["fixed"]


def test_unknown_provider_error_lists_the_installed_ones(one_provider):
    with pytest.raises(registry.UnknownProvider, match=r"no provider named 'aws'; installed: fixed"):
        registry.load("aws")
