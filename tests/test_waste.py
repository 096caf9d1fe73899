"""planner.waste: rightsizing, idle workloads and cost anomalies, known answers from
arrays built here (no I/O)."""
import numpy as np
import pytest

from quartermaster.planner.cost import GIB, Prices
from quartermaster.planner.waste import MONTH_HOURS, FindingKind, WasteRules, findings, modified_z

STEP = 3600
WEEK = 168
PRICES = Prices().per_unit_hour()  # per core-hour, byte-hour, GPU-hour
CPU_HOUR, BYTE_HOUR = PRICES[0], PRICES[1]


def grid(rows: int, request: tuple[float, float], use) -> tuple[np.ndarray, np.ndarray]:
    """`rows` pods, each requesting (cores, bytes) and using `use` (cores, bytes), each a
    number or an array over the week; no GPUs."""
    requests = np.full((rows, 3, WEEK), np.nan)
    usage = np.full((rows, 3, WEEK), np.nan)
    for r in (0, 1):
        requests[:, r] = request[r]
        usage[:, r] = use[r]
    return requests, usage


def only(found, kind):
    return [f for f in found if f.kind is kind]


def test_a_workload_far_under_its_requests_for_a_week_is_rightsized_with_its_monthly_saving():
    requests, usage = grid(2, (1.0, GIB), (0.2, 0.8 * GIB))
    found = findings(["shop/Deployment/web"] * 2, requests, usage, PRICES, STEP)
    assert [f.kind for f in found] == [FindingKind.RIGHTSIZING]
    rightsizing = found[0]
    assert rightsizing.workload == "shop/Deployment/web"
    assert dict(rightsizing.recommended) == pytest.approx({"cpu": 0.24}), "p95 0.2 x 1.2; memory 80 % used is not"
    # each pod charged max(1, 0.2) = 1 core now, max(0.24, 0.2) = 0.24 rightsized, every hour of a month
    assert rightsizing.monthly_saving == pytest.approx(2 * 0.76 * CPU_HOUR * MONTH_HOURS)
    assert "request 240m" in rightsizing.message and "cpu p95 200m" in rightsizing.message


def test_the_saving_counts_the_hours_usage_was_over_the_recommendation():
    use = np.full(WEEK, 0.1)
    use[:5] = 2.0  # five hours over the request, under the p95
    requests, usage = grid(1, (1.0, GIB), (use, 0.9 * GIB))
    (finding,) = findings(["w"], requests, usage, PRICES, STEP)
    recommended = dict(finding.recommended)["cpu"]
    assert recommended == pytest.approx(0.12)
    saved_core_hours = (WEEK - 5) * (1.0 - 0.12) + 5 * (2.0 - 2.0)  # over the request: charged usage both ways
    assert finding.monthly_saving == pytest.approx(saved_core_hours * CPU_HOUR * MONTH_HOURS / WEEK)


def test_a_workload_that_uses_nothing_for_a_week_is_idle_and_costs_all_it_costs():
    requests, usage = grid(1, (0.5, 256 * 2**20), (0.001, 100 * 2**20))
    found = findings(["batch/StatefulSet/old"], requests, usage, PRICES, STEP)
    assert [f.kind for f in found] == [FindingKind.IDLE], "idle, and so not also rightsized"
    hourly = 0.5 * CPU_HOUR + 256 * 2**20 * BYTE_HOUR
    assert found[0].monthly_saving == pytest.approx(hourly * MONTH_HOURS)


def test_no_finding_from_missing_data():
    requests, usage = grid(1, (1.0, GIB), (0.001, 0.1 * GIB))
    usage[:, :, : WEEK // 2] = np.nan  # half the week without usage samples
    assert findings(["w"], requests, usage, PRICES, STEP) == []
    assert findings(["w"], requests, usage, PRICES, STEP, WasteRules(coverage=0.5)) != []


def daily_levels(levels) -> np.ndarray:
    """A week of cpu usage, one level a day (cores), far over a 10m request."""
    return np.repeat(np.asarray(levels, dtype=float), 24)


def anomalies(levels) -> list:
    requests, usage = grid(1, (0.01, GIB), (daily_levels(levels), 0.5 * GIB))
    return only(findings(["w"], requests, usage, PRICES, STEP), FindingKind.COST_ANOMALY)


def test_a_day_far_above_the_workloads_own_history_is_an_anomaly_though_one_earlier_spike_hides_it_from_mean_and_std():
    history = [1.0, 1.0, 1.1, 1.0, 0.9, 10.0]
    (anomaly,) = anomalies(history + [4.0])
    assert anomaly.monthly_saving is None and "modified z-score" in anomaly.message
    # the rule the robust one replaces: mean + 3 standard deviations of the earlier days
    days = np.array(history)
    assert 4.0 < days.mean() + 3 * days.std(), "mean/std misses it: the spike of day 6 inflated the deviation"
    assert modified_z(days, 4.0) == pytest.approx(0.6745 * 3.0 / 0.05)
    assert anomalies(history + [1.05]) == [], "a day within the usual spread is not"


def test_a_flat_history_takes_a_floor_under_its_deviation():
    assert anomalies([1.0] * 6 + [1.03]) == [], "3 % over a flat history: z = 0.6745 x 0.03 / 0.01 = 2.0"
    assert len(anomalies([1.0] * 6 + [1.1])) == 1, "10 %: z = 6.7"
    assert anomalies([1.0] * 6 + [0.2]) == [], "only days above the history are reported"


# ---- the operator's side: pods to workloads, a Quota's status and its Events -----------

def cost_data(pods, requests, usage, now):
    from quartermaster.operator.cost import CostData
    timestamps = now - STEP * np.arange(WEEK)[::-1]
    return CostData(pods, timestamps, STEP, requests, usage, np.tile(PRICES, (len(pods), 1)), now, "USD",
                    frozenset())


def test_gone_pods_count_for_their_workload_and_a_quota_reports_each_finding_once_a_day():
    from quartermaster.operator.cost import waste_report
    from quartermaster.operator.workloads import WorkloadKey
    now = 1_800_000_000.0
    oversized = grid(2, (1.0, GIB), (0.2, 0.8 * GIB))
    idle = grid(1, (0.5, 256 * 2**20), (0.001, 100 * 2**20))
    requests, usage = (np.concatenate([oversized[i], idle[i]]) for i in (0, 1))
    web = WorkloadKey("shop", "StatefulSet", "web")
    old = WorkloadKey("batch", "StatefulSet", "old")
    # web-1 has gone: its samples still count for web, found by the name its controller gave it
    data = cost_data([("shop", "web-0"), ("shop", "web-1"), ("batch", "old-0")], requests, usage, now)
    report = waste_report(data, {("shop", "web-0"): web, ("batch", "old-0"): old})
    assert [(f.kind, f.workload) for f in report.findings] == [(FindingKind.RIGHTSIZING, web), (FindingKind.IDLE, old)]
    assert report.findings[0].monthly_saving == pytest.approx(2 * 0.76 * CPU_HOUR * MONTH_HOURS)

    entries, events = report.for_quota(["shop"], None, now)
    assert [(e["kind"], e["workload"], e["monthlySaving"], e["recommended"]) for e in entries] == [
        ("Rightsizing", "shop/StatefulSet/web", round(2 * 0.76 * CPU_HOUR * MONTH_HOURS, 2), {"cpu": "240m"})]
    assert entries[0]["reported"] == "2027-01-15" and [e[0] for e in events] == ["Rightsizing"]
    assert report.for_quota(["shop"], entries, now + 3600)[1] == [], "one Event a day, not one a cycle"
    assert len(report.for_quota(["shop"], entries, now + 86400)[1]) == 1, "the next day, again"
    both, _ = report.for_quota(["shop", "batch"], None, now)
    assert [e["kind"] for e in both] == ["Rightsizing", "Idle"], "the largest saving first"
    assert report.for_quota(["elsewhere"], None, now) == (None, [])
    # a cost anomaly has no saving to rank it by, and is the one warning: never cut off
    from quartermaster.operator.cost import WasteReport
    from quartermaster.operator.models import FINDINGS_SHOWN
    from quartermaster.planner.waste import Finding
    small = [Finding(FindingKind.RIGHTSIZING, WorkloadKey("shop", "Deployment", f"w{i}"), 0.01, "x", ())
             for i in range(FINDINGS_SHOWN)]
    spike = Finding(FindingKind.COST_ANOMALY, web, None, "spiked", ())
    shown, warnings = WasteReport(tuple([*small, spike]), "USD").for_quota(["shop"], None, now)
    assert len(shown) == FINDINGS_SHOWN and shown[0]["kind"] == "CostAnomaly"
    assert ("CostAnomaly", "shop/StatefulSet/web: spiked", True) in warnings


def test_a_quota_shows_its_scopes_findings_files_their_events_and_keeps_them_without_a_read():
    from quartermaster.operator.cost import WasteReport
    from quartermaster.operator.observe import snapshot_from_objects
    from quartermaster.operator.quota import decide, figures, parse_spec
    from quartermaster.operator.workloads import WorkloadKey
    from quartermaster.planner.waste import Finding
    body = {"apiVersion": "quartermaster.dev/v1alpha1", "kind": "Quota", "metadata": {"name": "q", "uid": "u"},
            "spec": {"scope": {"namespaces": ["shop"]}}}
    snapshot = snapshot_from_objects(namespaces=[{"metadata": {"name": "shop"}}], quotas=[body])
    obj = snapshot.quotas[0]
    spec = parse_spec(obj)
    report = WasteReport((Finding(FindingKind.IDLE, WorkloadKey("shop", "Deployment", "old"), 12.0, "idle"),), "USD")
    decision = decide(obj, spec, figures(obj, spec, snapshot), {}, 1_800_000_000.0, waste=report)
    assert decision.status["findings"][0]["workload"] == "shop/Deployment/old"
    assert ("Idle", "shop/Deployment/old: idle", False) in decision.events
    kept = decide(obj, spec, figures(obj, spec, snapshot), decision.status, 1_800_000_000.0)
    assert kept.status["findings"] == decision.status["findings"] and not [e for e in kept.events if e[0] == "Idle"]
