"""The operator's own metrics: each pool's status figures, per resource in base units."""
from prometheus_client import generate_latest

from quartermaster.operator.telemetry import Telemetry


def test_pool_figures_are_the_pools_statuses_in_base_units():
    statuses = {"general": {"capacity": {"cpu": "16", "memory": "64Gi", "pods": "440"},
                            "requested": {"cpu": "5500m", "memory": "9Gi"},
                            "used": {"cpu": "1250m"}, "forecast": {"cpu": "2", "memory": None}}}
    telemetry = Telemetry(pool_statuses=lambda: statuses)
    sample = telemetry.registry.get_sample_value
    assert sample("quartermaster_pool_capacity", {"pool": "general", "resource": "cpu"}) == 16
    assert sample("quartermaster_pool_capacity", {"pool": "general", "resource": "memory"}) == 64 * 2**30
    assert sample("quartermaster_pool_capacity", {"pool": "general", "resource": "pods"}) == 440
    assert sample("quartermaster_pool_requested", {"pool": "general", "resource": "cpu"}) == 5.5
    assert sample("quartermaster_pool_used", {"pool": "general", "resource": "cpu"}) == 1.25
    assert sample("quartermaster_pool_forecast", {"pool": "general", "resource": "cpu"}) == 2
    assert sample("quartermaster_pool_forecast", {"pool": "general", "resource": "memory"}) is None
    statuses.clear()  # a pool that is gone is gone from the next scrape
    assert sample("quartermaster_pool_capacity", {"pool": "general", "resource": "cpu"}) is None
    assert b"# TYPE quartermaster_pool_forecast gauge" in generate_latest(telemetry.registry)
