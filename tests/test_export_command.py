"""`quartermaster export`: flat rows with stable columns from our objects' status (pure),
and the command against the real apiserver: a pool the operator reconciled comes out as
CSV rows with its capacity, in cores."""
import csv
import io
import json

from cli_testing import apply_pool, quartermaster
from conftest import wait_for
from quartermaster.operator.export_command import COLUMNS, rows, to_csv

POOL = {"metadata": {"name": "general"}, "status": {
    "capacity": {"cpu": "16", "memory": "64Gi"}, "requested": {"cpu": "4"}, "used": {"cpu": "2500m"},
    "forecast": {"cpu": "3"}, "free": {"cpu": "12"}, "pressure": {"cpu": "Normal", "memory": "Warning"},
    "forecastDetails": [{"resource": "cpu", "quantile": 0.9, "horizonSeconds": 1800, "peak": "3",
                         "peakAt": "2026-12-01T12:20:00Z", "tier": "model", "confidence": 0.8}],
    "capacityPlan": [{"resource": "cpu", "trendPerDay": 0.1, "daysLeft": 40.2}],
    "forecastAccuracy": [{"resource": "cpu", "coverage": 0.92, "samples": 100}]}}
QUOTA = {"metadata": {"name": "team-a"},
         "spec": {"scope": {"namespaces": ["a"]}, "hard": {"cpu": "10", "memory": "8Gi"}, "priorityClass": "high",
                  "budget": {"daily": 50, "currency": "EUR"}},
         "status": {"usage": {"cpu": "2", "memory": "1Gi"}, "remaining": {"cpu": "8", "memory": "7Gi"},
                    "cost": {"today": 12.5, "thisMonth": 300.25},
                    "findings": [{"kind": "Rightsizing", "workload": "a/Deployment/web", "monthlySaving": 35.07,
                                  "currency": "EUR", "recommended": {"cpu": "240m", "memory": "512Mi"},
                                  "message": "cpu p95 200m a pod under 50 % of its request 1",
                                  "reported": "2026-12-01"}]}}
POLICY = {"metadata": {"name": "web", "namespace": "shop"},
          "spec": {"targetRef": {"kind": "Deployment", "name": "web"}, "mode": "Predictive"},
          "status": {"currentReplicas": 3, "recommendation": {"replicas": 5}, "confidence": 0.81,
                     "reasoning": "cpu forecast peaks at 2 cores", "lastAction": {"action": "HPA min 5",
                                                                                 "time": "2026-12-01T11:00:00Z"}}}
PLAN = {"metadata": {"name": "move"}, "spec": {"poolRef": {"name": "general"}},
        "status": {"phase": "Planned", "planId": "ab12", "risk": 0.2, "objective": {"before": 10, "after": 4},
                   "saving": 6, "swaps": [{"from": "a/StatefulSet/x", "to": "b/StatefulSet/y", "resource": "cpu",
                                           "amount": "500m"}]}}
IDLE_PLAN = {"metadata": {"name": "idle"}, "spec": {"poolRef": {"name": "general"}}, "status": {"phase": "Pending"}}
OBJECTS = {"resourcepools": [POOL], "quotas": [QUOTA], "scalingpolicies": [POLICY], "swapplans": [PLAN, IDLE_PLAN]}


def test_each_record_in_numbers_a_spreadsheet_can_sum():
    table = rows(OBJECTS)
    assert [(r["record"], r["name"], r["resource"]) for r in table] == [
        ("pool", "general", "cpu"), ("pool", "general", "memory"), ("quota", "team-a", "cpu"),
        ("quota", "team-a", "memory"), ("cost", "team-a", None), ("finding", "team-a", None),
        ("recommendation", "web", None), ("swap", "idle", None), ("swap", "move", "cpu")]
    cpu = table[0]
    assert (cpu["capacity"], cpu["used"], cpu["days_left"], cpu["forecast_coverage"]) == (16, 2.5, 40.2, 0.92)
    assert table[1]["capacity"] == 64 * 2**30 and table[1]["pressure"] == "Warning"
    assert (table[3]["limit"], table[3]["usage"]) == (8 * 2**30, 2**30)
    assert (table[4]["cost_month"], table[4]["budget_daily"], table[4]["currency"]) == (300.25, 50, "EUR")
    finding = table[5]
    assert (finding["finding"], finding["target"], finding["monthly_saving"], finding["currency"]) == (
        "Rightsizing", "a/Deployment/web", 35.07, "EUR")
    assert (finding["recommended_cpu"], finding["recommended_memory"]) == (0.24, 512 * 2**20)
    assert table[6]["target"] == "Deployment/web" and table[6]["recommended_replicas"] == 5
    assert table[8]["amount"] == 0.5 and table[8]["saving"] == 6 and table[7]["phase"] == "Pending"
    assert all(list(r) == list(COLUMNS) for r in table), "every row has every column, in order"


def test_csv_has_one_header_and_the_same_columns_whatever_is_there():
    only_policies = to_csv(rows(OBJECTS, ["recommendation"]))
    nothing = to_csv(rows({}))
    assert only_policies.splitlines()[0] == nothing.strip() == ",".join(COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(only_policies)))
    assert len(parsed) == 1 and parsed[0]["reasoning"] == "cpu forecast peaks at 2 cores"
    assert parsed[0]["capacity"] == "", "a column the record has not is empty"


def test_unreadable_amounts_are_empty_not_a_crash():
    broken = {"metadata": {"name": "odd"}, "status": {"capacity": {"cpu": "lots", "memory": "1Gi"}}}
    (row, ) = [r for r in rows({"resourcepools": [broken]}) if r["resource"] == "memory"]
    assert row["capacity"] == 2**30
    assert not [r for r in rows({"resourcepools": [broken]}) if r["resource"] == "cpu"]


def test_the_command_exports_what_the_operator_reconciled(control_plane, operator_process, kubectl):
    apply_pool(kubectl, "export-cli", cpu="6", memory="3Gi")

    def exported():
        result = quartermaster("export", control_plane.admin_kubeconfig, "--kind", "pool", "-A")
        table = list(csv.DictReader(io.StringIO(result.stdout))) if result.returncode == 0 else []
        return [r for r in table if r["name"] == "export-cli"]

    pool_rows = wait_for(exported, 60, "the reconciled pool in quartermaster export")
    # a fixed capacity's resources as given; those it leaves out are reported as none
    assert {r["resource"]: float(r["capacity"]) for r in pool_rows} == {"cpu": 6, "memory": 3 * 2**30,
                                                                         "nvidia.com/gpu": 0, "pods": 0}
    assert {r["record"] for r in pool_rows} == {"pool"}
    as_json = quartermaster("export", control_plane.admin_kubeconfig, "-o", "json", "--kind", "pool")
    assert any(r["name"] == "export-cli" and r["capacity"] == 6 for r in json.loads(as_json.stdout))
