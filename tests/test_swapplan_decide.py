"""The SwapPlan's decide step: plan, approval, execution step by step, guard and rollback,
figures in, status, Events and one workload's requests out (no I/O)."""
import numpy as np

from quartermaster.operator.observe import custom_object
from quartermaster.operator.swapplan import ClusterState, Instance, SwapFigures, decide, parse_spec
from quartermaster.operator.workloads import ContainerRequests, WorkloadKey, WorkloadTemplate
from quartermaster.planner.priority import PriorityClass, Standing

NOW = 1_800_000_000.0
GIB = 2.0**30


def plan(approval="DryRun", annotations=None, **spec):
    return custom_object({"apiVersion": "quartermaster.dev/v1alpha1", "kind": "SwapPlan",
                          "metadata": {"name": "move", "uid": "p1", "generation": 1,
                                       "annotations": annotations or {}},
                          "spec": {"poolRef": {"name": "pool"}, "approval": approval, **spec}})


def template(name, cpu, memory=GIB, replicas=2, rolled_out=True, annotations=None):
    return WorkloadTemplate(WorkloadKey("team", "Deployment", name), replicas,
                            (ContainerRequests("app", {"cpu": cpu, "memory": memory}),), rolled_out, annotations or {})


def instance(t, used, demand, history=86400.0):
    total = np.array([sum(c.requests[r] for c in t.containers) * t.replicas for r in ("cpu", "memory")])
    return Instance(t, total, np.array(used), np.array(demand), np.array(demand) * 0.9, np.array(demand) * 1.1,
                    history_seconds=history)


# "busy" (2 pods at 0.5 cores) will need 3 cores; "idle" (2 pods at 2 cores) uses 0.4
BUSY, IDLE = template("busy", 0.5), template("idle", 2.0)
TEMPLATES = {t.key: t for t in (BUSY, IDLE)}


def figures(capacity=5.0, busy=BUSY, idle=IDLE):
    return SwapFigures(np.array([capacity, 8 * GIB]), (
        instance(busy, [0.9, GIB], [3.0, 2 * GIB]), instance(idle, [0.4, GIB], [0.5, 2 * GIB])), NOW)


def decided(obj, figs=None, templates=TEMPLATES, previous=None, guard=None, problem=None, now=NOW):
    return decide(obj, parse_spec(obj), figures() if figs is None else figs,
                  ClusterState(True, templates, guard), problem, previous or {}, now)


def ready(decision):
    return next(c for c in decision.status["conditions"] if c["type"] == "Ready")


def test_a_dry_run_plans_the_swap_from_the_idle_workload_to_the_busy_one_and_does_nothing():
    decision = decided(plan())
    status = decision.status
    assert status["phase"] == "Planned" and decision.action is None and ready(decision)["reason"] == "DryRun"
    cpu = {(s["from"], s["to"]): s["amount"] for s in status["swaps"] if s["resource"] == "cpu"}
    # busy may grow by half its requests (maxChangeFraction 0.5), idle gives the rest back
    assert cpu == {("team/Deployment/idle", "team/Deployment/busy"): "500m",
                   ("team/Deployment/idle", "(free)"): "1500m"}
    assert status["objective"]["after"] < status["objective"]["before"] and status["saving"] > 0
    assert status["planId"] and "Planned" in [e[0] for e in decision.events]


def test_manual_waits_for_an_approval_of_this_very_plan():
    planned = decided(plan("Manual")).status
    waiting = decided(plan("Manual", {"quartermaster.dev/approve": "0123456789"}), previous=planned)
    assert waiting.action is None and "not this one" in ready(waiting)["message"]
    approved = decided(plan("Manual", {"quartermaster.dev/approve": planned["planId"]}), previous=planned)
    assert approved.status["phase"] == "Executing"
    assert approved.action.name == "idle", "the donor gives first, so the pool is never overcommitted"
    step = approved.status["execution"]["steps"][0]
    assert step["workload"] == "team/Deployment/idle" and step["state"] == "Applying", "recorded before it is done"
    assert step["before"] == [{"name": "app", "requests": {"cpu": "2", "memory": "1Gi"}}]


def test_auto_executes_step_by_step_after_each_rollout_and_succeeds():
    first = decided(plan("Auto"))
    assert first.action.name == "idle"
    idle_after = first.action.containers
    still_rolling = {**TEMPLATES, IDLE.key: IDLE._replace(containers=idle_after, rolled_out=False)}
    waiting = decided(plan("Auto"), templates=still_rolling, previous=first.status)
    assert waiting.action is None and ready(waiting)["reason"] == "RollingOut"
    rolled = {**TEMPLATES, IDLE.key: IDLE._replace(containers=idle_after)}
    second = decided(plan("Auto"), templates=rolled, previous=waiting.status)
    assert second.action.name == "busy"
    done = {**rolled, BUSY.key: BUSY._replace(containers=second.action.containers)}
    last = decided(plan("Auto"), templates=done, previous=second.status)
    assert last.status["phase"] == "Succeeded" and last.action is None
    assert [h["phase"] for h in last.status["history"]] == ["Planned", "Approved", "Executing", "Succeeded"]
    busy_cpu = second.action.containers[0].requests["cpu"] * 2
    assert busy_cpu > 1.0, "the busy workload got more cpu"


def test_a_restarted_operator_applies_a_recorded_step_again_only_while_the_template_lacks_it():
    first = decided(plan("Auto"))
    again = decided(plan("Auto"), previous=first.status)  # the patch never landed
    assert again.action == first.action, "the same absolute requests, not a second delta"
    landed = {**TEMPLATES, IDLE.key: IDLE._replace(containers=first.action.containers)}
    after = decided(plan("Auto"), templates=landed, previous=first.status)
    assert after.action.name == "busy", "an applied step is not applied again"


def test_a_failing_guard_restores_the_recorded_requests_in_reverse_order():
    guarded = plan("Auto", rollbackGuard={"query": "up{job='shop'} == 1", "windowSeconds": 60})
    first = decided(guarded)
    rolled = {**TEMPLATES, IDLE.key: IDLE._replace(containers=first.action.containers)}
    second = decided(guarded, templates=rolled, previous=first.status)
    done = {**rolled, BUSY.key: BUSY._replace(containers=second.action.containers)}
    holding = decided(guarded, templates=done, previous=second.status, guard=True)
    assert holding.action is None and ready(holding)["reason"] == "Guarding"
    broken = decided(guarded, templates=done, previous=holding.status, guard=False, now=NOW + 10)
    assert broken.action.name == "busy", "the last step is undone first"
    assert broken.action.containers == (ContainerRequests("app", {"cpu": 0.5, "memory": GIB}),)
    restored = {**done, BUSY.key: BUSY}
    back = decided(guarded, templates=restored, previous=broken.status, guard=False, now=NOW + 20)
    assert back.action.name == "idle" and back.action.containers[0].requests["cpu"] == 2.0
    final = decided(guarded, templates=TEMPLATES, previous=back.status, now=NOW + 30)
    assert final.status["phase"] == "RolledBack" and "no series" in ready(final)["message"]


def unreadable(decision, field):
    return [message for reason, message, warning in decision.events
            if reason == "UnreadableTime" and f"status.{field} 'yesterday'" in message and warning]


def test_an_unreadable_time_in_status_restarts_its_wait_from_now_and_says_so():
    # each wait runs in full from now: not skipped as if the time were long ago, not endless
    guarded = plan("Auto", rollbackGuard={"query": "up{job='shop'} == 1", "windowSeconds": 60})
    first = decided(guarded)
    rolling = {**TEMPLATES, IDLE.key: IDLE._replace(containers=first.action.containers, rolled_out=False)}
    step = first.status["execution"]["steps"][0]
    edited = {**first.status, "execution": {**first.status["execution"],
                                            "steps": [{**step, "since": "yesterday"}, *first.status["execution"]["steps"][1:]]}}
    waiting = decided(guarded, templates=rolling, previous=edited, now=NOW + 10)
    assert waiting.action is None and ready(waiting)["reason"] == "RollingOut", "no rollback for a time it cannot read"
    assert waiting.status["execution"]["steps"][0]["since"] == "2027-01-15T08:00:10Z"
    assert edited["execution"]["steps"][0]["since"] == "yesterday", "put right in a copy, which differs, so is written"
    assert unreadable(waiting, "execution.steps[0].since")
    timed_out = decided(guarded, templates=rolling, previous=waiting.status, now=NOW + 10 + 601)
    assert timed_out.status["execution"]["direction"] == "Back", "the rollout timeout runs from then"

    rolled = {**TEMPLATES, IDLE.key: IDLE._replace(containers=first.action.containers)}
    second = decided(guarded, templates=rolled, previous=first.status)
    done = {**rolled, BUSY.key: BUSY._replace(containers=second.action.containers)}
    holding = decided(guarded, templates=done, previous=second.status, guard=True)
    edited = {**holding.status, "execution": {**holding.status["execution"], "guardSince": "yesterday"}}
    guarding = decided(guarded, templates=done, previous=edited, guard=True, now=NOW + 100)
    assert ready(guarding)["reason"] == "Guarding", "the guard's window is not over on a time it cannot read"
    assert unreadable(guarding, "execution.guardSince")
    held = decided(guarded, templates=done, previous=guarding.status, guard=True, now=NOW + 160)
    assert held.status["phase"] == "Succeeded"

    edited = {**held.status, "finishedAt": "yesterday"}
    resting = decided(guarded, templates=done, previous=edited, now=NOW + 200)
    assert resting.status["phase"] == "Succeeded" and "the next plan is made" in ready(resting)["message"]
    assert resting.status["finishedAt"] == "2027-01-15T08:03:20Z" and unreadable(resting, "finishedAt")

    dry_run = decided(plan()).status
    again = decided(plan(), previous={**dry_run, "plannedAt": "yesterday"}, now=NOW + 60)
    assert again.status["phase"] == "Planned" and again.status["plannedAt"] == "2027-01-15T08:01:00Z"
    assert unreadable(again, "plannedAt")


def test_an_infeasible_problem_says_why_and_takes_no_action():
    floors = template("busy", 0.5, annotations={"quartermaster.dev/min-cpu": "9"})
    decision = decided(plan("Auto"), figs=figures(busy=floors))
    assert decision.action is None and decision.status["phase"] == "Pending"
    assert ready(decision)["reason"] == "Infeasible" and "no plan meets the constraints" in ready(decision)["message"]
    assert any(e[2] for e in decision.events), "a warning Event"


def test_no_plan_on_less_history_than_the_horizon():
    young = SwapFigures(np.array([5.0, 8 * GIB]), (instance(BUSY, [0.9, GIB], [3.0, 2 * GIB], history=600.0),
                                                   instance(IDLE, [0.4, GIB], [0.5, 2 * GIB])), NOW)
    decision = decided(plan("Auto", horizonSeconds=1800), figs=young)
    assert decision.action is None and "planId" not in decision.status
    assert ready(decision)["reason"] == "WaitingForHistory" and "600 s of usage history" in ready(decision)["message"]


def test_no_plan_without_fresh_metrics():
    decision = decide(plan("Auto"), parse_spec(plan("Auto")), None, ClusterState(True, TEMPLATES),
                      ("PrometheusUnreachable", "cannot connect"), {}, NOW)
    assert decision.action is None and ready(decision)["reason"] == "WaitingForMetrics"


def test_swapped_amounts_read_at_a_requests_precision():
    """A memory amount the LP leaves at an odd byte count reads in MiB, as a request is written."""
    odd = SwapFigures(np.array([5.0, 8 * GIB]), (
        instance(BUSY, [0.9, GIB], [3.0, 2.3 * GIB]), instance(IDLE, [0.4, 0.3 * GIB], [0.5, 0.3 * GIB])), NOW)
    swaps = decided(plan(constraints={"maxChangeFraction": 0.9}), odd).status["swaps"]
    memory = [s["amount"] for s in swaps if s["resource"] == "memory"]
    assert memory and all(a.endswith(("Mi", "Gi")) for a in memory), memory


def test_priorities_and_fair_shares_come_from_each_namespace_s_quota_and_the_annotation_overrides_the_class():
    def contender(namespace, annotations=None):
        return WorkloadTemplate(WorkloadKey(namespace, "Deployment", "app"), 2,
                                (ContainerRequests("app", {"cpu": 0.5, "memory": GIB}),), True, annotations or {})

    def growth(standings, a_annotations=None):
        """Which namespace the pool's last free half core goes to, each wanting 3 cores."""
        a, b = contender("a", a_annotations), contender("b")
        figs = SwapFigures(np.array([2.5, 8 * GIB]), (instance(a, [1.0, GIB], [3.0, 2 * GIB]),
                                                       instance(b, [1.0, GIB], [3.0, 2 * GIB])), NOW, standings)
        swaps = decided(plan(), figs, templates={a.key: a, b.key: b}).status["swaps"]
        return {s["to"].split("/")[0] for s in swaps if s["resource"] == "cpu" and s["from"] == "(free)"}

    # alike, it goes to the first (a); each check below is one that moves it, or holds it against a move
    assert growth({"b": Standing(PriorityClass.CRITICAL, 1.0)}) == {"b"}
    assert growth({"a": Standing(PriorityClass.LOW, 1.0)}) == {"b"}
    assert growth({"a": Standing(PriorityClass.LOW, 1.0)}, {"quartermaster.dev/priority": "high"}) == {"a"}
    assert growth({"a": Standing(PriorityClass.NORMAL, 1.0), "b": Standing(PriorityClass.NORMAL, 3.0)}) == {"b"}
