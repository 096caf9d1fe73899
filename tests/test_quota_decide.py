"""The Quota's decide step: its scope and its pods' requests in; the split, status, Events
and the ResourceQuota and LimitRange manifests to apply out (no I/O)."""
from dataclasses import replace

from quartermaster.operator.models import QuotaStatus
from quartermaster.operator.observe import snapshot_from_objects
from quartermaster.operator.quantities import to_float
from quartermaster.operator.quota import (cost_figures, decide, figures, loans, owned_record, parse_spec,
                                          priority_class_content, priority_classes_to_apply, reserved_scopes,
                                          standings)
from quartermaster.planner.cost import Spend
from quartermaster.planner.priority import PriorityClass, Standing
from quartermaster.planner.reservations import ReservedScope

NOW = 1_800_000_000.0
SCOPE = {"namespaces": ["a", "gone"], "team": {"key": "team", "value": "blue"}}


def quota_body(**spec):
    return {"apiVersion": "quartermaster.dev/v1alpha1", "kind": "Quota",
            "metadata": {"name": "blue", "uid": "q1", "generation": 3},
            "spec": {"scope": SCOPE, "hard": {"cpu": "2", "memory": "4Gi", "pods": 10}, **spec}}


def pod(namespace, name, cpu):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
            "status": {"phase": "Running"}}


NAMESPACES = [{"metadata": {"name": "a"}}, {"metadata": {"name": "b", "labels": {"team": "blue"}}},
              {"metadata": {"name": "other"}},
              {"metadata": {"name": "mine", "labels": {"quartermaster.dev/user": "alice"}}}]


def decided(body, pods=(), previous=None, held=()):
    snapshot = snapshot_from_objects(pods=pods, namespaces=NAMESPACES, quotas=[body])
    snapshot = replace(snapshot, quota_objects=list(held))
    obj = snapshot.quotas[0]
    spec = parse_spec(obj)
    return decide(obj, spec, figures(obj, spec, snapshot), previous or {}, NOW)


def as_held(manifests):
    return [owned_record(m["kind"], m["metadata"]["namespace"], m["metadata"]["name"], m["metadata"]["labels"],
                         m["metadata"], m["spec"]) for m in manifests]


def condition(decision, kind):
    return next(c for c in decision.status["conditions"] if c["type"] == kind)


def test_the_scope_is_the_listed_and_the_labelled_namespaces_and_the_split_follows_their_use():
    decision = decided(quota_body(), pods=[pod("a", "p1", "500m"), pod("other", "p2", "8")])
    quotas = {m["metadata"]["namespace"]: m for m in decision.action.manifests if m["kind"] == "ResourceQuota"}
    assert set(quotas) == {"a", "b"}, "'other' is out of scope, 'gone' does not exist"
    assert quotas["a"]["spec"]["hard"] == {"requests.cpu": "1250m", "requests.memory": "2560Mi", "pods": "6"}
    assert quotas["b"]["spec"]["hard"] == {"requests.cpu": "750m", "requests.memory": "1536Mi", "pods": "4"}
    meta = quotas["b"]["metadata"]
    assert meta["name"] == "quartermaster-blue"
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "quartermaster", "quartermaster.dev/quota": "blue"}
    assert meta["ownerReferences"][0] | {} == {"apiVersion": "quartermaster.dev/v1alpha1", "kind": "Quota",
                                               "name": "blue", "uid": "q1", "controller": True,
                                               "blockOwnerDeletion": False}
    ready = condition(decision, "Ready")
    assert ready["reason"] == "NamespacesMissing" and "gone" in ready["message"]


def test_status_has_usage_remaining_the_split_and_the_owned_objects():
    status = decided(quota_body(defaults={"requests": {"cpu": "100m"}}), pods=[pod("a", "p1", "500m")]).status
    assert status["observedGeneration"] == 3
    QuotaStatus.model_validate(status, strict=True)  # the types the CRD schema takes
    assert status["usage"] == {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "0", "pods": 1}
    assert status["remaining"] == {"cpu": "1500m", "memory": "3Gi", "pods": 9}
    assert [(s["namespace"], s["used"]["cpu"], s["hard"]["cpu"]) for s in status["split"]] == [
        ("a", "500m", "1250m"), ("b", "0", "750m")]
    assert status["ownedObjects"] == [{"kind": k, "namespace": ns, "name": "quartermaster-blue"}
                                      for ns in ("a", "b") for k in ("ResourceQuota", "LimitRange")]


def test_defaults_become_a_limit_range_per_namespace():
    decision = decided(quota_body(defaults={"requests": {"cpu": "100m", "memory": "64Mi"},
                                            "limits": {"memory": "128Mi"}}))
    ranges = [m for m in decision.action.manifests if m["kind"] == "LimitRange"]
    assert [m["metadata"]["namespace"] for m in ranges] == ["a", "b"]
    assert ranges[0]["spec"] == {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "64Mi"},
                                             "default": {"memory": "128Mi"}}]}
    assert not [m for m in decided(quota_body()).action.manifests if m["kind"] == "LimitRange"]
    # as the apiserver defaults it: a default limit without a default request is the request too
    limits_only = decided(quota_body(defaults={"limits": {"memory": "128Mi"}})).action.manifests
    assert limits_only[1]["spec"]["limits"][0]["defaultRequest"] == {"memory": "128Mi"}


def test_only_objects_that_do_not_hold_what_is_wanted_are_applied():
    body = quota_body(defaults={"requests": {"cpu": "100m"}})
    wanted = decided(body).action.manifests
    assert decided(body, held=as_held(wanted)).action is None, "the cluster holds every object already"
    # the same amounts written differently hold too; a changed one, or another Quota's, does not
    rewritten = [{**m, "spec": {"hard": {**m["spec"]["hard"], "requests.cpu": "1000m"}}} if
                 m["kind"] == "ResourceQuota" else m for m in wanted]
    assert decided(body, held=as_held(rewritten)).action is None
    edited = as_held(wanted)
    edited[0] = replace(edited[0], content=(("requests.cpu", 5.0),))
    edited[1] = replace(edited[1], owner_uid="an-old-quota")
    again = decided(body, held=edited).action.manifests
    assert [(m["kind"], m["metadata"]["namespace"]) for m in again] == [("ResourceQuota", "a"), ("LimitRange", "a")]
    assert decided(body, held=edited).events[-1][0] == "AppliedQuota"


def test_limits_are_lowered_before_others_are_raised_so_the_parts_never_exceed_the_total():
    body = quota_body()
    even = as_held(decided(body).action.manifests)  # 1 core each
    moved = decided(body, pods=[pod("a", "p1", "500m")], held=even).action.manifests
    assert [(m["metadata"]["namespace"], m["spec"]["hard"]["requests.cpu"]) for m in moved] == [
        ("b", "750m"), ("a", "1250m")]


def test_workloads_and_storage_are_split_by_what_the_apiserver_counts_in_our_resource_quotas():
    body = quota_body(hard={"concurrentWorkloads": 6, "storage": "10Gi"})
    first = decided(body).action.manifests
    # before the apiserver has counted anything: an equal split, each namespace's part
    # shared across the three kinds so that together they never exceed the total
    assert [m["spec"]["hard"] for m in first] == [
        {"requests.storage": "5Gi", "count/deployments.apps": "1", "count/statefulsets.apps": "1",
         "count/jobs.batch": "1"}] * 2
    counted = as_held(first)
    counted[0] = replace(counted[0], used={"count/deployments.apps": 2.0, "count/jobs.batch": 0.0,
                                           "requests.storage": 4.0 * 2**30})
    decision = decided(body, held=counted)
    hard = {m["metadata"]["namespace"]: m["spec"]["hard"] for m in decision.action.manifests}
    assert hard["a"] == {"requests.storage": "7Gi", "count/deployments.apps": "3", "count/statefulsets.apps": "1",
                         "count/jobs.batch": "0"}
    assert hard["b"] == {"requests.storage": "3Gi", "count/deployments.apps": "1", "count/statefulsets.apps": "1",
                         "count/jobs.batch": "0"}
    status = decision.status
    QuotaStatus.model_validate(status, strict=True)
    assert (status["usage"]["concurrentWorkloads"], status["usage"]["storage"]) == (2, "4Gi")
    assert status["remaining"] == {"storage": "6Gi", "concurrentWorkloads": 4}
    assert [(s["namespace"], s["hard"]) for s in status["split"]] == [
        ("a", {"storage": "7Gi", "concurrentWorkloads": 4}), ("b", {"storage": "3Gi", "concurrentWorkloads": 2})]
    assert "storage" not in decided(quota_body()).status["usage"], "counted only where a ResourceQuota limits it"


def test_exceeded_turns_true_with_an_event_a_person_can_act_on_and_back():
    body = quota_body()
    within = decided(body, pods=[pod("a", "p1", "1")])
    assert condition(within, "Exceeded")["status"] == "False"
    over = decided(body, pods=[pod("a", "p1", "2"), pod("b", "p2", "1")], previous=within.status)
    exceeded = condition(over, "Exceeded")
    assert exceeded["status"] == "True" and exceeded["reason"] == "OverLimit"
    assert "cpu requests 3 over the limit 2 (a 2, b 1)" in exceeded["message"] and "raise spec.hard" in exceeded["message"]
    assert [e for e in over.events if e[0] == "OverLimit"] == [("OverLimit", exceeded["message"], True)]
    parts = {m["metadata"]["namespace"]: to_float(m["spec"]["hard"]["requests.cpu"]) for m in over.action.manifests}
    assert parts == {"a": 1.333, "b": 0.667}, "over the total, each its share of the total in proportion to use"
    still = decided(body, pods=[pod("a", "p1", "2"), pod("b", "p2", "1")], previous=over.status)
    assert not [e for e in still.events if e[0] == "OverLimit"], "no Event without a transition"
    back = decided(body, pods=[pod("a", "p1", "1")], previous=still.status)
    assert [e[0] for e in back.events if not e[2]].count("WithinLimit") == 1


def test_bad_input_is_a_condition_not_a_crash():
    invalid = decided(quota_body(hard={"cpu": "lots"}))
    ready = condition(invalid, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec") and "cpu" in ready["message"]
    assert invalid.action is None
    nowhere = decided({**quota_body(), "spec": {"scope": {"namespaces": ["gone"]}, "hard": {"cpu": "1"}}})
    ready = condition(nowhere, "Ready")
    assert ready["reason"] == "NoNamespaces" and "gone not found" in ready["message"] and nowhere.action is None


def test_objects_in_a_namespace_that_left_the_scope_are_deleted_and_only_the_quota_s_own():
    body = quota_body(defaults={"requests": {"cpu": "100m"}})
    held = [replace(r, uid=f"uid-{r.kind}-{r.namespace}") for r in as_held(decided(body).action.manifests)]
    # b loses its team label: the scope is a alone
    body["spec"]["scope"] = {"namespaces": ["a"]}
    decision = decided(body, held=held)
    assert [(o.kind, o.namespace, o.name, o.uid) for o in decision.action.deletions] == [
        ("LimitRange", "b", "quartermaster-blue", "uid-LimitRange-b"),
        ("ResourceQuota", "b", "quartermaster-blue", "uid-ResourceQuota-b")]
    assert [m["metadata"]["namespace"] for m in decision.action.manifests] == ["a"], "a gets the whole total"
    assert decision.status["lastAction"]["action"].endswith(
        "; deleted LimitRange b/quartermaster-blue, ResourceQuota b/quartermaster-blue (out of the Quota's scope or "
        "no longer wanted)")
    # labelled for the Quota but another Quota's (an older one of the name) or another name: left alone
    strangers = [replace(held[2], owner_uid="an-old-quota"), replace(held[3], name="team-quota")]
    assert not decided(body, held=held[:2] + strangers).action.deletions
    # with no namespace left in the scope, all of them; without defaults, the LimitRanges
    body["spec"]["scope"] = {"namespaces": ["gone"]}
    assert len(decided(body, held=held).action.deletions) == 4
    assert [(o.kind, o.namespace) for o in decided(quota_body(), held=held).action.deletions] == [
        ("LimitRange", "a"), ("LimitRange", "b")]
    assert decided(quota_body(defaults={"requests": {"cpu": "100m"}}), held=held).action is None, "all wanted"


def test_scope_user_is_the_namespaces_labelled_with_the_user_s_name():
    def scoped(**scope):
        body = quota_body()
        body["spec"]["scope"] = scope
        return decided(body)

    assert [m["metadata"]["namespace"] for m in scoped(user="alice").action.manifests] == ["mine"]
    assert [m["metadata"]["namespace"] for m in scoped(namespaces=["a"], user="alice").action.manifests] == [
        "a", "mine"], "with the listed namespaces"
    nobody = condition(scoped(user="bob", team={"key": "team", "value": "red"}), "Ready")
    assert nobody["reason"] == "NoNamespaces" and nobody["message"] == (
        "no namespace is in the scope (and none is labelled team=red or quartermaster.dev/user=bob); "
        "nothing is enforced")
    bad = condition(scoped(user="alice@example.com"), "Ready")
    assert (bad["reason"], bad["message"]) == ("InvalidSpec", "spec.scope.user: Value error, 'alice@example.com' is "
                                               "not a label value: 1 to 63 letters, digits, '-', '_' or '.', "
                                               "beginning and ending with a letter or digit")


# ---- cost ----------------------------------------------------------------------------

def costed(budget, spend, previous=None, pods=(pod("a", "p1", "500m"),), cost_data=None):
    """The decision for a Quota with `budget` given a cost read whose spend is `spend`."""
    body = quota_body(budget=budget) if budget else quota_body()
    snapshot = snapshot_from_objects(pods=pods, namespaces=NAMESPACES, quotas=[body])
    obj = snapshot.quotas[0]
    spec = parse_spec(obj)
    scope = figures(obj, spec, snapshot)
    read = cost_data or CostRead(spend, frozenset({"a"}))
    return decide(obj, spec, scope, previous or {}, NOW, cost_figures(scope, read))


class CostRead:
    """What the Quota takes of operator.cost.CostData: its namespaces' spend, the fresh namespaces."""

    currency = "USD"

    def __init__(self, spend, fresh):
        self._spend, self.fresh = spend, fresh

    def spend(self, namespaces):
        assert set(namespaces) == {"a", "b"}, "the spend of the Quota's own namespaces"
        return self._spend


def test_status_cost_holds_the_spend_and_its_forecasts():
    decision = costed({"daily": 10, "monthly": 300}, Spend(1.5, 20.25, 4.0, 80.0))
    assert decision.status["cost"] == {"today": 1.5, "thisMonth": 20.25, "forecastToday": 4.0, "forecastMonth": 80.0,
                                       "currency": "USD", "asOf": "2027-01-15T08:00:00Z"}
    QuotaStatus.model_validate(decision.status)
    assert condition(decision, "BudgetExceeded")["status"] == "False"
    assert condition(decision, "BudgetAtRisk")["status"] == "False"


def test_a_spend_over_the_budget_is_exceeded_and_a_forecast_over_it_at_risk_each_with_a_warning_once():
    at_risk = costed({"daily": 10}, Spend(6, 6, 12, 100))
    assert condition(at_risk, "BudgetExceeded")["status"] == "False"
    risk = condition(at_risk, "BudgetAtRisk")
    assert risk["status"] == "True" and "forecast 12.00 USD over the daily budget 10.00" in risk["message"]
    assert ("ForecastOverBudget", risk["message"], True) in at_risk.events
    exceeded = costed({"daily": 10}, Spend(11, 11, 14, 100), previous=at_risk.status)
    assert condition(exceeded, "BudgetExceeded")["reason"] == "OverBudget"
    assert [e for e in exceeded.events if e[0] == "OverBudget"] == [
        ("OverBudget", "spent 11.00 USD over the daily budget 10.00", True)]
    again = costed({"daily": 10}, Spend(12, 12, 15, 100), previous=exceeded.status)
    assert not [e for e in again.events if e[0] in ("OverBudget", "ForecastOverBudget")], "an Event when it turns True"


def test_no_cost_figures_from_missing_or_stale_data_and_a_condition_saying_why():
    unreachable = costed({"daily": 10}, None, cost_data=("PrometheusUnreachable", "no cost figures: cannot connect"))
    assert unreachable.status["cost"] is None
    available = condition(unreachable, "CostAvailable")
    assert available["status"] == "False" and available["reason"] == "PrometheusUnreachable"
    stale = costed({"daily": 10}, Spend(1, 1, 1, 1), cost_data=CostRead(Spend(1, 1, 1, 1), frozenset()),
                   pods=[{**pod("a", "p1", "1"), "spec": {**pod("a", "p1", "1")["spec"], "nodeName": "n1"}}])
    assert stale.status["cost"] is None
    assert condition(stale, "CostAvailable")["reason"] == "UsageStale" and "a" in condition(stale, "CostAvailable")[
        "message"]


def test_a_budget_in_another_currency_is_not_compared():
    decision = costed({"daily": 0.01, "currency": "EUR"}, Spend(5, 5, 5, 5))
    assert condition(decision, "BudgetExceeded")["reason"] == "CurrencyMismatch"


# ---- priority classes ----------------------------------------------------------------

def test_a_priority_class_per_level_is_applied_until_the_cluster_holds_it():
    wanted = priority_classes_to_apply({}).manifests
    assert [(m["metadata"]["name"], m["value"]) for m in wanted] == [
        ("quartermaster-critical", 1_000_000), ("quartermaster-high", 100_000), ("quartermaster-normal", 0),
        ("quartermaster-low", -100_000)]
    assert all(m["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "quartermaster"} and
               m["globalDefault"] is False for m in wanted)
    held = {m["metadata"]["name"]: priority_class_content(m) for m in wanted}
    assert priority_classes_to_apply(held) is None
    held["quartermaster-low"] = priority_class_content({**wanted[3], "description": "edited by hand"})
    assert [m["metadata"]["name"] for m in priority_classes_to_apply(held).manifests] == ["quartermaster-low"]


def test_a_namespace_takes_its_quota_s_class_and_weight_the_highest_when_in_several():
    def scoped(name, namespaces, **spec):
        body = {**quota_body(**spec), "metadata": {"name": name, "uid": name, "generation": 1}}
        body["spec"]["scope"] = {"namespaces": namespaces}
        snapshot = snapshot_from_objects(namespaces=NAMESPACES, quotas=[body])
        obj = snapshot.quotas[0]
        spec = parse_spec(obj)
        return name, (spec, figures(obj, spec, snapshot))

    found = standings(dict([scoped("batch", ["a", "b"], priorityClass="low", fairShareWeight=2),
                            scoped("web", ["b"], priorityClass="high"), scoped("bad", ["other"], hard={"cpu": "x"})]))
    assert found == {"a": Standing(PriorityClass.LOW, 2.0), "b": Standing(PriorityClass.HIGH, 1.0)}


# ---- borrowing -----------------------------------------------------------------------

def deployment(namespace, name, replicas, cpu):
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}}, "status": {}}


def cohort(busy_replicas, lender_pods, previous=None, lender_spec=None, now=NOW, **borrower_spec):
    """A borrowing Quota over a (2 cores; a Deployment of 500m pods, 4 running) and a
    lender over b (4 cores, and `lender_spec`): the loans, then both decisions, by name."""
    running = [{**pod("a", f"web-{i}", "500m"), "metadata": {
        "name": f"web-{i}", "namespace": "a", "labels": {"pod-template-hash": "h"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-h", "controller": True}]}} for i in range(4)]
    quotas = [{**quota_body(borrowIdle=True, **borrower_spec),
               "metadata": {"name": "busy", "uid": "u1", "generation": 1}},
              {**quota_body(**(lender_spec or {})), "metadata": {"name": "lender", "uid": "u2", "generation": 1}}]
    quotas[0]["spec"].update(scope={"namespaces": ["a"]}, hard={"cpu": "2"})
    quotas[1]["spec"].update(scope={"namespaces": ["b"]}, hard={"cpu": "4"})
    snapshot = snapshot_from_objects(pods=running + [pod("b", f"job-{i}", "1") for i in range(lender_pods)],
                                     namespaces=NAMESPACES, quotas=quotas,
                                     workloads=[deployment("a", "web", busy_replicas, "500m")])
    scopes = {q.name: (spec, figures(q, spec, snapshot)) for q in snapshot.quotas for spec in [parse_spec(q)]}
    lent = loans(scopes, now)
    return {q.name: decide(q, *scopes[q.name], (previous or {}).get(q.name, {}), now, None, lent[q.name])
            for q in snapshot.quotas}


def test_a_quota_borrows_the_lender_s_idle_capacity_for_its_workloads_missing_replicas_and_gives_it_back():
    # web wants 7 replicas of 500m: 3.5 cores against a limit of 2; the lender uses 1 of its 4
    grown = cohort(busy_replicas=7, lender_pods=1)
    busy, lender = grown["busy"], grown["lender"]
    assert busy.action.manifests[0]["spec"]["hard"] == {"requests.cpu": "3500m"}
    assert lender.action.manifests[0]["spec"]["hard"] == {"requests.cpu": "2500m"}
    assert (busy.status["borrowed"], busy.status["lent"]) == ({"cpu": "1500m"}, None)
    assert (lender.status["borrowed"], lender.status["lent"]) == (None, {"cpu": "1500m"})
    QuotaStatus.model_validate(busy.status, strict=True)
    borrowing = condition(busy, "Borrowing")
    assert borrowing["status"] == "True" and borrowing["reason"] == "BorrowingIdle"
    assert "cpu: 1500m over the limit 2" in borrowing["message"]
    assert condition(busy, "Exceeded")["status"] == "False", "within what it holds with the loan"
    assert condition(lender, "Borrowing")["reason"] == "BorrowingOff"
    # the lender's demand returns (3 of its 4 cores): the loan shrinks to what is idle
    back = cohort(busy_replicas=7, lender_pods=3, previous={n: d.status for n, d in grown.items()})
    assert back["busy"].action.manifests[0]["spec"]["hard"] == {"requests.cpu": "3"}
    assert back["lender"].action.manifests[0]["spec"]["hard"] == {"requests.cpu": "3"}
    # and all of it: the loan ends, with an Event saying so
    ended = cohort(busy_replicas=7, lender_pods=4, previous={n: d.status for n, d in back.items()})
    assert ended["busy"].status["borrowed"] is None and condition(ended["busy"], "Borrowing")["reason"] == "NothingIdle"
    assert "NothingIdle" in [e[0] for e in ended["busy"].events]


def test_borrowing_stops_at_the_borrowing_limit_and_not_without_demand():
    capped = cohort(busy_replicas=7, lender_pods=0, borrowingLimit={"cpu": "500m"})["busy"]
    assert capped.status["borrowed"] == {"cpu": "500m"}
    idle = cohort(busy_replicas=4, lender_pods=0)["busy"]
    assert idle.status["borrowed"] is None and condition(idle, "Borrowing")["reason"] == "DemandWithinLimit"


# ---- reservations --------------------------------------------------------------------

NIGHTLY = {"name": "batch", "resources": {"cpu": "3"}, "schedule": {"start": "22:00", "end": "06:00"}}


def test_an_active_reservation_of_the_lender_is_not_lent_and_outside_its_window_it_is():
    # the lender uses 1 of its 4 cores; 3 are reserved for it always: 1 core left to lend
    held = cohort(busy_replicas=7, lender_pods=1, lender_spec={"reservations": [{"resources": {"cpu": "3"}}]})
    assert held["busy"].status["borrowed"] == {"cpu": "1"} and held["lender"].status["lent"] == {"cpu": "1"}
    assert held["lender"].action.manifests[0]["spec"]["hard"] == {"requests.cpu": "3"}, \
        "the split of its namespaces never falls below what is reserved"
    # nightly: at 08:00 UTC the window is shut and 1500m is lent; at 23:00 it is held
    day = cohort(busy_replicas=7, lender_pods=1, lender_spec={"reservations": [NIGHTLY]})
    assert day["busy"].status["borrowed"] == {"cpu": "1500m"}
    night = cohort(busy_replicas=7, lender_pods=1, lender_spec={"reservations": [NIGHTLY]}, now=NOW + 15 * 3600)
    assert night["busy"].status["borrowed"] == {"cpu": "1"}
    whole = cohort(busy_replicas=7, lender_pods=1, lender_spec={"reservations": [{"resources": {"cpu": "4"}}]})
    borrowing = condition(whole["busy"], "Borrowing")
    assert borrowing["reason"] == "NothingIdle" and "reservations hold is not lent" in borrowing["message"]


def test_status_says_which_reservations_hold_and_when_their_windows_start_and_end():
    body = quota_body(hard={"cpu": "4", "memory": "4Gi", "pods": 10},
                      reservations=[NIGHTLY, {"resources": {"cpu": "1", "pods": 2}},
                                    {"resources": {"memory": "1Gi"},
                                     "schedule": {"start": "07:30", "end": "09:00", "days": ["Mon", "Fri"]}}])
    status = decided(body).status  # Friday 08:00 UTC
    QuotaStatus.model_validate(status, strict=True)
    assert status["reservations"] == [
        {"name": "batch", "active": False, "start": "2027-01-15T22:00:00Z", "end": "2027-01-16T06:00:00Z"},
        {"name": "reservations[1]", "active": True},
        {"name": "reservations[2]", "active": True, "start": "2027-01-15T07:30:00Z", "end": "2027-01-15T09:00:00Z"}]
    assert decided(quota_body()).status["reservations"] is None, "left out (removed by the merge patch)"


def test_the_active_reservations_are_handed_to_swap_plans_over_the_quota_s_namespaces():
    snapshot = snapshot_from_objects(namespaces=NAMESPACES, quotas=[
        quota_body(hard={"cpu": "4", "memory": "4Gi"}, reservations=[NIGHTLY, {"resources": {"cpu": "1", "memory": "1Gi"}}])])
    scopes = {q.name: (spec, figures(q, spec, snapshot)) for q in snapshot.quotas for spec in [parse_spec(q)]}
    assert reserved_scopes(scopes, NOW) == (ReservedScope(frozenset({"a", "b"}), {"cpu": 1.0, "memory": 2.0**30}),)
    assert reserved_scopes(scopes, NOW + 15 * 3600)[0].amounts == {"cpu": 4.0, "memory": 2.0**30}
    assert reserved_scopes({"bad": ("spec.hard.cpu: bad", None)}, NOW) == ()


def test_a_reservation_holds_part_of_the_quota_s_own_limits_and_its_times_are_times_of_day():
    def problem(**spec):
        return parse_spec(snapshot_from_objects(quotas=[quota_body(**spec)]).quotas[0])

    assert problem(reservations=[{"resources": {"cpu": "2500m"}}]) == (
        "spec.reservations: may not reserve more cpu than spec.hard.cpu limits (a reservation holds part of the "
        "Quota's own limit)")
    assert "nvidia.com/gpu" in problem(reservations=[{"resources": {"nvidia.com/gpu": 1}}]), "no GPU limit at all"
    assert "pods" in problem(reservations=[{"resources": {"pods": 11}}])
    assert problem(reservations=[{"resources": {"cpu": "2", "memory": "4Gi", "pods": 10}}]).hard is not None
    assert problem(reservations=[{"resources": {"cpu": "1"}, "schedule": {"start": "24:00", "end": "06:00"}}]) == (
        "spec.reservations[0].schedule.start: Value error, '24:00' is not a time of day: HH:MM in UTC, 00:00 to 23:59")
    assert problem(reservations=[{"resources": {"cpu": "1"}, "schedule": {"start": "6:00", "end": "22:00"}}]) \
        .startswith("spec.reservations[0].schedule.start: Value error, '6:00' is not a time of day")
    assert problem(reservations=[{"resources": {"cpu": "1"}, "schedule": {"start": "06:00", "end": "06:00"}}]) == (
        "spec.reservations[0].schedule.end: must differ from start (leave the schedule out for a reservation that "
        "always holds)")
    assert "spec.reservations[0].schedule.days[0]" in problem(
        reservations=[{"resources": {"cpu": "1"}, "schedule": {"start": "06:00", "end": "07:00", "days": ["Friday"]}}])
    ready = condition(decided(quota_body(reservations=[{"resources": {"cpu": "3"}}])), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
