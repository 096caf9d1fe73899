"""`quartermaster history`: the entries it builds from Events and status histories (pure),
and the command against the real apiserver with the operator running: the Event the
operator filed for a new pool, an older one outside `--since`, newest first."""
import json
from datetime import datetime, timedelta, timezone

from cli_testing import apply_pool, quartermaster
from conftest import wait_for
from quartermaster.operator.history_command import duration, history, table
from quartermaster.operator.models import GROUP, VERSION

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
POLICY = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalingPolicy",
          "metadata": {"name": "web", "namespace": "shop"},
          "spec": {"targetRef": {"kind": "Deployment", "name": "web-app"}},
          "status": {"lastAction": {"action": "HPA minReplicas 3 → 5", "time": "2026-12-01T11:50:00Z"},
                     "lastOomKill": {"time": "2026-12-01T08:00:00Z", "podPeak": "900Mi"}}}
PLAN = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SwapPlan", "metadata": {"name": "move"},
        "spec": {"poolRef": {"name": "general"}},
        "status": {"history": [{"time": "2026-12-01T11:00:00Z", "phase": "Planned", "swaps": 2, "planId": "ab12"},
                               {"time": "2026-12-01T11:30:00Z", "phase": "RolledBack", "swaps": 2,
                                "planId": "ab12", "message": "guard failed"}],
                   "execution": {"planId": "ab12", "direction": "Back", "steps": [
                       {"workload": "shop/StatefulSet/db", "state": "Restored", "since": "2026-12-01T11:29:00Z",
                        "before": [], "after": []}]}}}


def event(kind, name, reason, time, namespace=None, component="quartermaster", api_version=f"{GROUP}/{VERSION}"):
    return {"metadata": {"name": f"{name}.1", "namespace": namespace or "default"},
            "involvedObject": {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace},
            "reason": reason, "message": f"{reason} happened", "type": "Normal", "count": 1,
            "source": {"component": component}, "reportingComponent": component, "lastTimestamp": time}


EVENTS = [
    event("ResourcePool", "general", "PressureChanged", "2026-12-01T11:55:00Z"),
    event("ScalingPolicy", "web", "Recommended", "2026-12-01T10:00:00Z", namespace="shop"),
    event("Deployment", "web-app", "ScalingReplicaSet", "2026-12-01T11:58:00Z", namespace="shop",
          component="deployment-controller", api_version="apps/v1"),  # not ours, not on our object
    event("ScalingPolicy", "other", "Recommended", "2026-12-01T11:40:00Z", namespace="elsewhere"),
]
OBJECTS = {"scalingpolicies": [POLICY], "swapplans": [PLAN]}


def test_events_and_status_histories_newest_first():
    entries = history(OBJECTS, EVENTS, NOW)
    assert [(e["kind"], e["reason"]) for e in entries] == [
        ("ResourcePool", "PressureChanged"), ("ScalingPolicy", "Action"), ("ScalingPolicy", "Recommended"),
        ("SwapPlan", "RolledBack"), ("SwapPlan", "StepRestored"), ("SwapPlan", "Planned"),
        ("ScalingPolicy", "Recommended"), ("ScalingPolicy", "OOMKilled")], "the deployment controller's is left out"
    rolled_back = entries[3]
    assert rolled_back["type"] == "Warning" and rolled_back["message"] == "2 swaps (plan ab12): guard failed"
    assert entries[1]["source"] == "status.lastAction" and entries[1]["message"] == "HPA minReplicas 3 → 5"


def test_a_spot_refusal_and_a_round_of_evictions_are_in_the_history():
    pool = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "metadata": {"name": "general"},
            "status": {"lastEvictions": {"time": "2026-12-01T11:20:00Z", "pods": [
                {"pod": "batch/report-1", "outcome": "Evicted"}, {"pod": "batch/report-2", "outcome": "Refused"}]}}}
    nodes = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalingPolicy", "metadata": {"name": "spot", "namespace": "ops"},
             "spec": {"targetRef": {"kind": "NodePool", "name": "workers"}},
             "status": {"lastSpotRefusal": {"time": "2026-12-01T11:10:00Z",
                                            "cause": "spot capacity refused (no m5.large spot)"}}}
    entries = history({"resourcepools": [pool], "scalingpolicies": [nodes]}, [], NOW)
    assert [(e["name"], e["source"], e["reason"], e["type"]) for e in entries] == [
        ("general", "status.lastEvictions", "PressureEvictions", "Warning"),
        ("spot", "status.lastSpotRefusal", "SpotRefused", "Warning")]
    assert entries[0]["message"] == "a round of evictions at Emergency: batch/report-1 Evicted, batch/report-2 Refused"
    assert entries[1]["message"].startswith("spot capacity refused (no m5.large spot): new nodes on-demand")
    assert [e["name"] for e in history({"scalingpolicies": [nodes]}, [], NOW, about=("nodepool", "workers"))] == \
        ["spot"], "found by the pool the policy sizes"


def test_since_object_and_namespace_filters():
    recent = history(OBJECTS, EVENTS, NOW, since=duration("15m"))
    assert [e["reason"] for e in recent] == ["PressureChanged", "Action"]
    assert [e["reason"] for e in history(OBJECTS, EVENTS, NOW, about=("spol", "web"))] == \
        ["Action", "Recommended", "OOMKilled"], "spol/web: the policy's, not policy other's"
    assert [e["reason"] for e in history(OBJECTS, EVENTS, NOW, about=("deployment", "web-app"))] == \
        ["Action", "Recommended", "OOMKilled"], "a policy's entries are about its target too"
    assert [e["reason"] for e in history(OBJECTS, EVENTS, NOW, about=("swapplans", "move"))] == \
        ["RolledBack", "StepRestored", "Planned"]
    in_shop = history(OBJECTS, EVENTS, NOW, namespace="shop")
    assert {e["namespace"] for e in in_shop} == {None, "shop"}, "cluster-scoped objects' entries stay, not elsewhere's"


def test_durations_and_an_entry_without_a_readable_time():
    assert duration("1h30m") == timedelta(minutes=90) and duration("7d") == timedelta(days=7)
    broken = {"kind": "Quota", "metadata": {"name": "q"}, "status": {"lastAction": {"action": "x", "time": "soon"}}}
    assert history({"quotas": [broken]}, [], NOW) == [], "skipped, not a crash"
    rows = table(history(OBJECTS, EVENTS[:1], NOW, since=duration("6m")), NOW)
    assert rows[1][:5] == ["5m", "", "ResourcePool/general", "Normal", "PressureChanged"]


def cli(kubeconfig, *args):
    return quartermaster("history", kubeconfig, *args)


def test_the_command_shows_what_the_operator_recorded(control_plane, operator_process, kubectl):
    apply_pool(kubectl, "history-cli", cpu="5")
    pool = json.loads(kubectl("get", "resourcepool", "history-cli", "-o", "json").stdout)
    three_hours_ago = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "history-cli.old", "namespace": "default"},
        "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "name": "history-cli",
                           "uid": pool["metadata"]["uid"]},
        "reason": "EarlierDecision", "message": "three hours ago", "type": "Normal",
        "source": {"component": "quartermaster"}, "firstTimestamp": three_hours_ago,
        "lastTimestamp": three_hours_ago}))

    def recorded():
        result = cli(control_plane.admin_kubeconfig, "rpool/history-cli", "-o", "json")
        entries = json.loads(result.stdout) if result.returncode == 0 else []
        return [e["reason"] for e in entries] if any(e["reason"] != "EarlierDecision" for e in entries) else None

    reasons = wait_for(recorded, 60, "the operator's Event for the new pool in quartermaster history")
    assert reasons[-1] == "EarlierDecision" and "Ready" in reasons, "newest first; the operator's Ready event"
    recent = json.loads(cli(control_plane.admin_kubeconfig, "--for", "resourcepool/history-cli",
                            "--since", "2h", "-o", "json").stdout)
    assert recent and "EarlierDecision" not in [e["reason"] for e in recent]
    shown = cli(control_plane.admin_kubeconfig, "rpool/history-cli", "-A")
    assert shown.returncode == 0 and "ResourcePool/history-cli" in shown.stdout and "three hours ago" in shown.stdout


def test_an_unreachable_cluster_is_a_clear_message(control_plane, tmp_path):
    kubeconfig = tmp_path / "closed.kubeconfig"
    kubeconfig.write_text(control_plane.admin_kubeconfig.read_text().replace(
        control_plane.server, "https://127.0.0.1:9"))
    result = cli(kubeconfig)  # the test bed's kubeconfig, pointing at a closed port
    assert result.returncode == 1 and "cannot be reached" in result.stderr and "Traceback" not in result.stderr
