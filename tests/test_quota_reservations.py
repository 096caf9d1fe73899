"""A Quota's reservations where they reach beyond the Quota: a SwapPlan keeps what an
active reservation holds for the scope's workloads, and the apiserver itself rejects a
reservation with a bad time or over the Quota's limits (and a scope.user that cannot be a
label value), naming the field."""
import json
import re

import numpy as np
import pytest

from quartermaster.operator.models import GROUP, VERSION
from quartermaster.operator.observe import custom_object
from quartermaster.operator.swapplan import ClusterState, Instance, SwapFigures, decide, parse_spec
from quartermaster.operator.workloads import ContainerRequests, WorkloadKey, WorkloadTemplate
from quartermaster.planner.reservations import ReservedScope

NOW = 1_800_000_000.0
GIB = 2.0**30


def template(name, cpu):
    return WorkloadTemplate(WorkloadKey("team", "Deployment", name), 2,
                            (ContainerRequests("app", {"cpu": cpu, "memory": GIB}),), True, {})


# "busy" (2 pods at 0.5 cores) will need 3 cores; "idle" (2 pods at 2 cores) uses 0.4
BUSY, IDLE = template("busy", 0.5), template("idle", 2.0)


def planned_cpu(*reserved):
    plan = custom_object({"apiVersion": f"{GROUP}/{VERSION}", "kind": "SwapPlan",
                          "metadata": {"name": "move", "uid": "p1", "generation": 1},
                          "spec": {"poolRef": {"name": "pool"}, "approval": "DryRun"}})
    instances = tuple(Instance(t, np.array([t.containers[0].requests["cpu"] * 2, 2 * GIB]), np.array(used),
                               np.array(demand), np.array(demand) * 0.9, np.array(demand) * 1.1, 86400.0)
                      for t, used, demand in ((BUSY, [0.9, GIB], [3.0, 2 * GIB]), (IDLE, [0.4, GIB], [0.5, 2 * GIB])))
    figures = SwapFigures(np.array([5.0, 8 * GIB]), instances, NOW, {}, reserved)
    status = decide(plan, parse_spec(plan), figures, ClusterState(True, {BUSY.key: BUSY, IDLE.key: IDLE}), None,
                    {}, NOW).status
    return {(s["from"], s["to"]): s["amount"] for s in status["swaps"] if s["resource"] == "cpu"}


def test_a_swap_plan_keeps_what_an_active_reservation_holds_for_the_scope_s_workloads():
    # without one, idle gives 2 of its 4 cores (500m to busy, the rest back to the pool)
    assert planned_cpu() == {("team/Deployment/idle", "team/Deployment/busy"): "500m",
                             ("team/Deployment/idle", "(free)"): "1500m"}
    # 3.5 of the 5 cores the team's two workloads hold are reserved: each keeps 70 % of its
    # requests, so idle may fall to 2.8 cores, giving 1.2
    assert planned_cpu(ReservedScope(frozenset({"team"}), {"cpu": 3.5})) == {
        ("team/Deployment/idle", "team/Deployment/busy"): "500m", ("team/Deployment/idle", "(free)"): "700m"}
    assert planned_cpu(ReservedScope(frozenset({"elsewhere"}), {"cpu": 3.5})) == planned_cpu(), \
        "another scope's reservation holds nothing here"


def quota(reservation: dict, hard: dict | None = None, scope: dict | None = None) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Quota", "metadata": {"name": "reserving"},
                       "spec": {"scope": scope or {"namespaces": ["a"]}, "hard": hard or {"cpu": "2", "pods": 4},
                                "reservations": [reservation]}})


BAD = {
    "hour 24": ({"resources": {"cpu": "1"}, "schedule": {"start": "24:00", "end": "06:00"}},
                "spec.reservations[0].schedule.start", "should match"),
    "no leading zero": ({"resources": {"cpu": "1"}, "schedule": {"start": "22:00", "end": "6:00"}},
                        "spec.reservations[0].schedule.end", "should match"),
    "empty window": ({"resources": {"cpu": "1"}, "schedule": {"start": "06:00", "end": "06:00"}},
                     "spec.reservations[0].schedule.end", "must differ from start"),
    "unknown day": ({"resources": {"cpu": "1"}, "schedule": {"start": "06:00", "end": "07:00", "days": ["Friday"]}},
                    "spec.reservations[0].schedule.days[0]", 'Unsupported value: "Friday"'),
    "over the cpu limit": ({"resources": {"cpu": "2500m"}}, "spec.reservations",
                           "may not reserve more cpu than spec.hard.cpu limits"),
    "over the pods limit": ({"resources": {"pods": 5}}, "spec.reservations",
                            "may not reserve more pods than spec.hard.pods limits"),
    "a resource without a limit": ({"resources": {"nvidia.com/gpu": 1}}, "spec.reservations",
                                   "may not reserve more nvidia.com/gpu than spec.hard.nvidia.com/gpu limits"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_the_apiserver_rejects_a_bad_reservation_naming_the_field(case, kubectl, crds_installed):
    reservation, field, message = BAD[case]
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=quota(reservation), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert re.search(f"{re.escape(field)}: .*{re.escape(message)}", result.stderr), result.stderr


def test_the_apiserver_accepts_reservations_within_the_limits(kubectl, crds_installed):
    for reservation, hard in (
            ({"resources": {"cpu": "2000m", "pods": 4}, "schedule": {"start": "22:00", "end": "06:00",
                                                                     "days": ["Fri", "Sat"]}}, None),
            ({"name": "gpus", "resources": {"nvidia.com/gpu": 2, "memory": "1Gi"}},
             {"nvidia.com/gpu": "2", "memory": "1024Mi"})):
        kubectl("apply", "--dry-run=server", "-f", "-", input=quota(reservation, hard))


def test_the_apiserver_takes_a_user_only_as_a_label_value(kubectl, crds_installed):
    reservation = {"resources": {"cpu": "1"}}
    result = kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                     input=quota(reservation, scope={"user": "alice@example.com"}))
    assert result.returncode != 0 and "spec.scope.user: Invalid value" in result.stderr, result.stderr
    kubectl("apply", "--dry-run=server", "-f", "-", input=quota(reservation, scope={"user": "alice.smith_2"}))
