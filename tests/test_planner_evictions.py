"""Pressure relief's choice of pods to evict, on known answers."""
import pytest

from quartermaster.planner.evictions import Candidate, ResourceLoad, plan_evictions

GiB = 2.0**30
LOW, NORMAL = -100_000, 0


def load(capacity, requested, used=None, forecast=None, buffer=0.1, critical=0.85, emergency=0.95):
    return ResourceLoad(capacity, requested, used, forecast, buffer, critical, emergency)


def pod(name, priority, cpu=0.0, memory=0.0, used_cpu=None, used_memory=None, refused=False):
    used = {k: v for k, v in (("cpu", used_cpu), ("memory", used_memory)) if v is not None}
    return Candidate(name, priority, {"cpu": cpu, "memory": memory, "pods": 1.0}, used, refused)


def names(plan):
    return [e.pod for e in plan.evictions]


def test_below_emergency_nothing_is_evicted():
    # 9.4 of 10 cores requested: Critical, not Emergency
    plan = plan_evictions({"cpu": load(10, 9.4)}, [pod("ns/a", LOW, cpu=1)], limit=5)
    assert plan.evictions == () and plan.emergency == () and plan.enough


def test_lowest_priority_first_then_largest_use_until_below_critical():
    # 9.8 of 10 cores requested (98 %): to get under 85 % at least 1.3 cores must go
    candidates = [pod("ns/normal-big", NORMAL, cpu=4), pod("ns/low-small", LOW, cpu=0.5),
                  pod("ns/low-big", LOW, cpu=1.0), pod("ns/lower", LOW - 1, cpu=0.2)]
    plan = plan_evictions({"cpu": load(10, 9.8)}, candidates, limit=10)
    # priority first (the lowest, however small), then the larger of the two low pods:
    # 9.8 - 0.2 - 1.0 = 8.6 is still 86 %; then the small low pod: 8.1, 81 %
    assert names(plan) == ["ns/lower", "ns/low-big", "ns/low-small"]
    assert [e.resource for e in plan.evictions] == ["cpu"] * 3
    assert plan.fractions["cpu"] == pytest.approx(0.81) and plan.enough


def test_the_limit_caps_a_round_and_says_it_was_not_enough():
    candidates = [pod(f"ns/low-{i}", LOW, cpu=0.5) for i in range(6)]
    plan = plan_evictions({"cpu": load(10, 9.9)}, candidates, limit=2)
    assert names(plan) == ["ns/low-0", "ns/low-1"]  # equal: by name
    assert plan.fractions["cpu"] == pytest.approx(0.89) and not plan.enough


def test_usage_sets_the_use_when_usage_sets_the_pressure():
    # requests are low (4 of 10 GiB), usage is 9.7 GiB: the pod using most goes, whatever it requests
    candidates = [pod("ns/asks-much", LOW, memory=3 * GiB, used_memory=0.5 * GiB),
                  pod("ns/uses-much", LOW, memory=0.5 * GiB, used_memory=2 * GiB)]
    plan = plan_evictions({"memory": load(10 * GiB, 4 * GiB, used=9.7 * GiB)}, candidates, limit=5)
    assert names(plan) == ["ns/uses-much"] and plan.evictions[0].use == 2 * GiB
    assert plan.fractions["memory"] == pytest.approx(0.77) and plan.enough


def test_the_forecast_shrinks_with_the_usage_evicted():
    # used 6, forecast 9 (x 1.1 = 9.9 of 10): the forecast sets pressure. Evicting a pod using
    # 2 of the 6 takes a third off the forecast: 6 x 1.1 = 6.6, 66 %
    plan = plan_evictions({"cpu": load(10, 3, used=6, forecast=9)},
                          [pod("ns/a", LOW, cpu=1, used_cpu=2), pod("ns/b", LOW, cpu=1, used_cpu=1)], limit=5)
    assert names(plan) == ["ns/a"] and plan.fractions["cpu"] == pytest.approx(0.66)


def test_a_pod_refused_last_round_goes_after_the_others_of_its_priority():
    candidates = [pod("ns/protected", LOW, cpu=2, refused=True), pod("ns/free", LOW, cpu=1),
                  pod("ns/normal", NORMAL, cpu=3)]
    plan = plan_evictions({"cpu": load(10, 9.6)}, candidates, limit=1)
    assert names(plan) == ["ns/free"]
    # but before any pod of a higher priority
    plan = plan_evictions({"cpu": load(10, 9.6)}, candidates, limit=2)
    assert names(plan) == ["ns/free", "ns/protected"]


def test_pods_that_use_none_of_the_resource_are_passed_over():
    plan = plan_evictions({"memory": load(10 * GiB, 9.9 * GiB)},
                          [pod("ns/cpu-only", LOW - 5, cpu=2), pod("ns/mem", LOW, memory=2 * GiB)], limit=5)
    assert names(plan) == ["ns/mem"]


def test_nothing_to_evict_is_reported_as_not_enough():
    plan = plan_evictions({"cpu": load(10, 9.9)}, [], limit=3)
    assert plan.evictions == () and plan.emergency == ("cpu",) and not plan.enough


def test_the_most_pressing_resource_is_relieved_first_and_every_one_counts():
    # cpu at 99 %, memory at 96 %: cpu first; the pods' memory relieves memory too
    loads = {"cpu": load(10, 9.9), "memory": load(10 * GiB, 9.6 * GiB)}
    candidates = [pod("ns/cpu-heavy", LOW, cpu=2, memory=0.2 * GiB),
                  pod("ns/mem-heavy", LOW, cpu=0.1, memory=1.5 * GiB),
                  pod("ns/mixed", LOW, cpu=1, memory=0.5 * GiB)]
    plan = plan_evictions(loads, candidates, limit=5)
    # cpu 9.9 → 7.9 (79 %); memory 9.4 GiB (94 %) is now the pressing one: mem-heavy → 7.9 GiB
    assert [(e.pod, e.resource) for e in plan.evictions] == [("ns/cpu-heavy", "cpu"), ("ns/mem-heavy", "memory")]
    assert plan.fractions == pytest.approx({"cpu": 0.78, "memory": 0.79}) and plan.enough


def test_a_resource_only_at_critical_is_not_relieved():
    loads = {"cpu": load(10, 9.0), "memory": load(10 * GiB, 9.6 * GiB)}
    plan = plan_evictions(loads, [pod("ns/cpu-heavy", LOW, cpu=5), pod("ns/mem", LOW, memory=1 * GiB)], limit=5)
    assert names(plan) == ["ns/mem"] and plan.emergency == ("memory",)


def test_a_negative_limit_is_refused():
    with pytest.raises(ValueError, match="limit"):
        plan_evictions({"cpu": load(10, 9.9)}, [], limit=-1)
