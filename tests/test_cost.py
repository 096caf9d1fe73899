"""planner/cost.py: known answers for the charge (max of request and usage), the window's
hours, grouping, and spend and its forecast over UTC calendar boundaries."""
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from quartermaster.planner.cost import GIB, Prices, allocations, calendar, costs_per_hour, spend, window_hours

NAN = np.nan
HOUR = 3600


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_defaults_are_opencosts_published_prices():
    assert Prices().per_unit_hour() == pytest.approx([0.031611, 0.004237 / GIB, 0.95])


def test_each_sample_counts_for_its_step_inside_the_window_and_never_past_its_end():
    stamps = np.array([0.0, 3600.0, 7200.0])
    assert window_hours(stamps, HOUR, 0, 7200 + 1800) == pytest.approx([1, 1, 0.5])
    assert window_hours(stamps, HOUR, 1800, 3600 * 10) == pytest.approx([0.5, 1, 1])


def test_the_charge_is_the_larger_of_request_and_usage_and_nothing_where_neither_is_known():
    # one pod, cpu only: request 1 core; usage 0.5, then 2, then unknown, then both unknown
    requests = np.zeros((1, 3, 4))
    usage = np.zeros((1, 3, 4))
    requests[0, 0] = [1, 1, 1, NAN]
    usage[0, 0] = [0.5, 2, NAN, NAN]
    hourly = costs_per_hour(requests, usage, Prices(core_hour=0.5).per_unit_hour())
    assert hourly[0, 0] == pytest.approx([0.5, 1.0, 0.5, 0.0])


def test_allocations_sum_rows_of_a_key_over_the_window():
    # two pods of one namespace and one of another, two hourly samples, half the second hour past
    stamps = np.array([0.0, 3600.0])
    requests = np.full((3, 3, 2), NAN)
    usage = np.full((3, 3, 2), NAN)
    requests[:, 0] = [[1, 1], [2, 2], [4, 4]]  # cores
    requests[:, 1] = 2 * GIB
    usage[:, 1] = [[GIB, 3 * GIB], [GIB, GIB], [GIB, GIB]]  # the first pod uses 3 GiB in the second hour
    requests[0, 2] = 1  # one GPU
    found = allocations(["a", "a", "b"], requests, usage, Prices().per_unit_hour(), stamps, HOUR, 0, 5400)
    a = found["a"]
    assert a.hours == 1.5
    # cpu: (1 + 2) cores x 1.5 h; memory: (2 + 2) GiB x 1 h, then (3 + 2) GiB x 0.5 h; gpu: 1.5 h
    assert a.charged_hours == pytest.approx([4.5, 6.5 * GIB, 1.5])
    assert a.cost == pytest.approx([4.5 * 0.031611, 6.5 * 0.004237, 1.5 * 0.95])
    assert a.request_average == pytest.approx([3, 4 * GIB, 1])
    assert a.usage_average == pytest.approx([0, (2 + 4 * 0.5) * GIB / 1.5, 0])
    assert found["b"].total == pytest.approx(4 * 1.5 * 0.031611 + 2 * 1.5 * 0.004237)


def test_per_row_prices_charge_each_row_at_its_own():
    requests = np.ones((2, 3, 1))
    prices = np.array([[1.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    found = allocations(["x", "x"], requests, np.full_like(requests, NAN), prices, np.array([0.0]), HOUR, 0, HOUR)
    assert found["x"].cost == pytest.approx([11, 0, 0])


def test_calendar_boundaries_are_utc_days_and_months():
    assert calendar(at("2026-12-31T13:30:00")) == (
        at("2026-12-31T00:00:00"), at("2027-01-01T00:00:00"), at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert calendar(at("2028-02-29T00:00:00"))[3] == at("2028-03-01T00:00:00")


def test_spend_today_this_month_and_the_forecast_at_the_recent_rate():
    # $2 an hour since the 1st, $4 an hour from noon on the 2nd; it is 13:00 on the 2nd
    now = at("2026-12-02T13:00:00")
    stamps = at("2026-12-01T00:00:00") + HOUR * np.arange(37)  # up to 12:00 on the 2nd
    hourly = np.where(stamps >= at("2026-12-02T12:00:00"), 4.0, 2.0)
    found = spend(hourly, stamps, HOUR, now)
    assert found.today == pytest.approx(12 * 2 + 4)
    assert found.month == pytest.approx(36 * 2 + 4)
    assert found.forecast_today == pytest.approx(28 + 4 * 11)
    assert found.forecast_month == pytest.approx(76 + 4 * (29 * 24 + 11))


def test_spend_in_the_first_minutes_of_a_month_uses_only_those_minutes():
    now = at("2026-12-01T00:30:00")
    found = spend(np.array([2.0]), np.array([at("2026-12-01T00:00:00")]), HOUR, now)
    assert found.today == found.month == pytest.approx(1.0)
    assert found.forecast_today == pytest.approx(1.0 + 2 * 23.5)


# ---- the price table (operator/prices.py) ----------------------------------------------

def test_a_price_table_overrides_per_instance_type_and_node_label_the_first_match_winning(tmp_path):
    from quartermaster.operator.prices import load_price_table

    path = tmp_path / "prices.yaml"
    path.write_text("currency: EUR\ndefault: {cpuCoreHour: 0.04}\noverrides:\n"
                    "  - instanceType: m5.large\n    cpuCoreHour: 0.1\n"
                    "  - nodeSelector: {spot: 'true'}\n    cpuCoreHour: 0.01\n    gpuHour: 0.5\n")
    table = load_price_table(path)
    assert table.currency == "EUR"
    assert table.prices(None) == Prices(0.04, 0.004237, 0.95), "unset defaults stay OpenCost's"
    assert table.prices({"node.kubernetes.io/instance-type": "m5.large", "spot": "true"}).core_hour == 0.1
    assert table.prices({"spot": "true"}) == Prices(0.01, 0.004237, 0.5)
    assert table.prices({"spot": "false"}).core_hour == 0.04


def test_a_node_of_a_listed_instance_type_costs_its_list_price_on_demand_or_spot(tmp_path):
    from quartermaster.operator.prices import load_price_table
    from quartermaster.planner.cost import GIB
    from quartermaster.providers.interface import table_instance_types

    m5 = next(kind for kind in table_instance_types("aws") if kind.name == "m5.large")
    path = tmp_path / "prices.yaml"
    path.write_text("overrides:\n  - nodeSelector: {team: gold}\n    cpuCoreHour: 0.5\n")
    table = load_price_table(path)

    def node_cost(labels) -> float:  # the whole allocatable of one node, for an hour
        prices = table.prices(labels)
        return (m5.allocatable["cpu"] * prices.core_hour + m5.allocatable["memory"] / GIB * prices.gib_hour)

    on_demand = {"node.kubernetes.io/instance-type": "m5.large"}
    assert node_cost(on_demand) == pytest.approx(m5.on_demand_price)
    assert node_cost(on_demand | {"karpenter.sh/capacity-type": "spot"}) == pytest.approx(m5.spot_price)
    assert node_cost(on_demand | {"eks.amazonaws.com/capacityType": "SPOT"}) == pytest.approx(m5.spot_price)
    assert table.prices(on_demand | {"team": "gold"}).core_hour == 0.5, "an override wins over the list price"
    assert table.prices({"node.kubernetes.io/instance-type": "not-listed"}) == Prices()
    path.write_text("instanceTypePrices: false\n")
    assert load_price_table(path).prices(on_demand) == Prices(), "off: the default prices"


@pytest.mark.parametrize("text, message", [
    ("default: {cpuCoreHour: -1}", "default.cpuCoreHour: Input should be greater than or equal to 0"),
    ("overrides: [{cpuCoreHour: 1}]", "overrides[0] needs instanceType or nodeSelector"),
    ("defaults: {}", "defaults: Extra inputs are not permitted"),
    ("[1, 2", "is not YAML"),
    ("just a string", "must be a mapping"),
])
def test_a_bad_price_table_stops_the_operator_at_start_with_a_clear_message(tmp_path, capsys, text, message):
    from quartermaster.operator.cli import main

    path = tmp_path / "prices.yaml"
    path.write_text(text)
    assert main(["run", f"--price-table={path}"]) == 2
    assert message in capsys.readouterr().err


# ---- the read from a real Prometheus (operator/cost.py) ----------------------------------

@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """A Prometheus holding 7 days of two pods that use next to nothing and request 500m
    and 256Mi each (so the charge is their requests), up to `session_start`."""
    from quartermaster.testbed.processes import TestbedError
    from quartermaster.testbed.prometheus import Prometheus
    from quartermaster.testbed.traces import TRACES
    from quartermaster.testbed.usage import UsageDrive

    start = int(time.time())
    drive = UsageDrive("cost-a", {"app": "idle"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=0.01,
                       base_memory=2**20, peak_memory=2 * 2**20, backfill_pods=("idle-0", "idle-1"),
                       requests={"cpu": 0.5, "memory": 256 * 2**20})
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), drive.backfill(start))
    try:
        server.start()
    except TestbedError as error:
        pytest.skip(str(error))
    yield server, start
    server.stop()


def test_the_cost_read_charges_the_backfilled_requests_and_knows_which_namespaces_are_current(backfilled):
    from quartermaster.operator.cost import CostObserver, allocation_answer
    from quartermaster.operator.prices import PriceTable
    from quartermaster.operator.prometheus_reader import PrometheusReader
    from quartermaster.operator.settings import MetricsSettings

    server, now = backfilled
    settings = MetricsSettings(prometheus_url=server.url)
    data = CostObserver(settings, PriceTable(), PrometheusReader(settings)).read([], {}, ["cost-a", "cost-b"], now)
    assert data.pods == [("cost-a", "idle-0"), ("cost-a", "idle-1")]
    assert data.fresh == {"cost-a"}, "cost-b has no usage at all"
    month_start = calendar(now)[2]
    per_hour = 2 * (0.5 * 0.031611 + 0.25 * 0.004237)
    assert data.spend(["cost-a"]).month == pytest.approx(per_hour * (now - month_start) / HOUR, rel=1e-4)
    answer = allocation_answer(data, {}, {}, "24h", "namespace")
    assert answer["code"] == 200 and answer["data"][0]["cost-a"]["totalCost"] == pytest.approx(per_hour * 24, rel=1e-4)
    assert answer["data"][0]["cost-a"]["cpuCoreRequestAverage"] == pytest.approx(1.0, rel=1e-4)
