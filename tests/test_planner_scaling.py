"""Scaling decisions on known answers: each case is built so that one rule makes it right."""
import numpy as np
import pytest

from quartermaster.planner.pools import strategy_parameters
from quartermaster.planner.scaling import ScalingRules, ScalingState, decide_replicas
from quartermaster.planner.vertical import RequestRules, decide_request

NOW = 1_700_000_400.0  # 2023-11-14 22:20 UTC
MI = 2.0**20
REACTIVE = ScalingRules(mode="Reactive")
PREDICTIVE = ScalingRules(mode="Predictive")


def at(replicas: int, **fields) -> ScalingState:
    return ScalingState(replicas, **fields)


def flat(value: float, steps: int = 6) -> np.ndarray:
    return np.full(steps, value)


# ---- reactive -------------------------------------------------------------------------

def test_tolerance_keeps_replicas_while_demand_is_within_ten_percent():
    # 2.1 cores / (5 x 0.4) = 1.05: within 10 %, though ceil(2.1 / 0.4) would be 6
    kept = decide_replicas(REACTIVE, at(5), NOW, 2.1, 0.4)
    assert kept.replicas == 5 and "within 10%" in kept.reasoning
    # 2.3 / 2.0 = 1.15: outside, so ceil(2.3 / 0.4) = 6
    assert decide_replicas(REACTIVE, at(5), NOW, 2.3, 0.4).replicas == 6


def test_scale_down_is_stabilised_at_the_highest_recent_recommendation():
    # 8 was recommended two minutes ago, inside the 300 s window: 8 stays though 4 suffice now
    recent = at(8, recommendations=((NOW - 120, 8),))
    held = decide_replicas(REACTIVE, recent, NOW, 1.6, 0.4)
    assert held.replicas == 8 and "held at 8 by the highest recommendation of the last 5 min" in held.reasoning
    # the same recommendation six minutes ago is outside the window: down to 4
    assert decide_replicas(REACTIVE, at(8, recommendations=((NOW - 360, 8),)), NOW, 1.6, 0.4).replicas == 4


def test_scale_up_is_not_stabilised():
    # a lower recommendation in the window does not hold a scale-up back
    assert decide_replicas(REACTIVE, at(4, recommendations=((NOW - 60, 4),)), NOW, 3.2, 0.4).replicas == 8


def test_steps_limit_the_change_per_decision():
    rules = ScalingRules(mode="Reactive", scale_up_step=2, scale_down_step=1)
    up = decide_replicas(rules, at(5), NOW, 3.6, 0.4)  # 9 wanted
    assert up.replicas == 7 and "at most +2 per decision" in up.reasoning
    assert decide_replicas(rules, at(5), NOW, 1.2, 0.4).replicas == 4  # 3 wanted


def test_cooldowns_hold_a_change_and_say_until_when():
    rules = ScalingRules(mode="Reactive", scale_up_cooldown_seconds=300, scale_down_cooldown_seconds=600)
    held = decide_replicas(rules, at(5, last_scale_up=NOW - 60), NOW, 3.2, 0.4)  # 8 wanted
    assert (held.replicas, held.basis) == (5, "held")
    assert "scale-up cooldown until 22:24" in held.reasoning
    assert decide_replicas(rules, at(5, last_scale_up=NOW - 301), NOW, 3.2, 0.4).replicas == 8
    # a scale-down waits for its cooldown after a change either way
    assert decide_replicas(rules, at(5, last_scale_up=NOW - 400), NOW, 1.2, 0.4).basis == "held"
    assert decide_replicas(rules, at(5, last_scale_down=NOW - 601), NOW, 1.2, 0.4).replicas == 3


def test_bounds_clamp_the_result():
    bounded = ScalingRules(mode="Reactive", min_replicas=2, max_replicas=12)
    capped = decide_replicas(bounded, at(5), NOW, 6.0, 0.4)  # 15 wanted
    assert capped.replicas == 12 and "capped at maxReplicas 12" in capped.reasoning
    raised = decide_replicas(bounded, at(5), NOW, 0.0, 0.4)  # none wanted
    assert raised.replicas == 2 and "raised to minReplicas 2" in raised.reasoning


def test_the_next_state_records_the_change_and_the_recommendation():
    state = at(5, recommendations=((NOW - 7200, 9), (NOW - 300, 6)))
    decision = decide_replicas(REACTIVE, state, NOW, 3.2, 0.4)
    assert decision.state.replicas == 8 and decision.state.last_scale_up == NOW
    # recommendations older than the longest window are forgotten
    assert decision.state.recommendations == ((NOW - 300, 6), (NOW, 8))


# ---- predictive -------------------------------------------------------------------------

def test_predictive_sizes_for_the_forecast_peak_and_says_where_and_when():
    forecast = np.array([2.4, 2.7, 3.1, 2.9, 2.5, 2.2])  # peaks at the third step: 22:35
    decision = decide_replicas(PREDICTIVE, at(5), NOW, 2.0, 0.4, forecast, 0.8)
    assert (decision.replicas, decision.basis) == (8, "predictive")
    assert decision.reasoning == ("cpu p90 forecast peaks at 3.1 cores at 22:35 (in 15 min); 400m per replica "
                                  "→ 8 replicas; now 5")


def test_predictive_never_goes_below_reactive():
    # the forecast needs 3 replicas, but 2.8 cores are in use now: 7
    decision = decide_replicas(PREDICTIVE, at(5), NOW, 2.8, 0.4, flat(1.2), 0.9)
    assert (decision.replicas, decision.basis) == (7, "reactive")
    assert "above the forecast's 3" in decision.reasoning


def test_below_the_confidence_threshold_predictive_decides_reactively_and_says_so():
    forecast = flat(3.1)  # would be 8 replicas
    fallback = decide_replicas(PREDICTIVE, at(5), NOW, 2.0, 0.4, forecast, 0.52)
    assert (fallback.replicas, fallback.basis) == (5, "reactive")
    assert fallback.reasoning.startswith("confidence 0.52 below 0.60: reactive")
    assert decide_replicas(PREDICTIVE, at(5), NOW, 2.0, 0.4, forecast, 0.60).replicas == 8
    assert decide_replicas(PREDICTIVE, at(5), NOW, 2.0, 0.4, None, None).reasoning.startswith("no forecast")


def test_hysteresis_ignores_small_forecast_moves():
    # demand now 10 cores on 10 replicas of 1 core: the reactive rule keeps 10
    assert decide_replicas(PREDICTIVE, at(10), NOW, 10.0, 1.0, flat(12.5), 0.9).replicas == 10  # +25 %
    assert decide_replicas(PREDICTIVE, at(10), NOW, 10.0, 1.0, flat(13.5), 0.9).replicas == 14  # +35 %
    # down: 7.5 cores now make the reactive rule want 8, but the forecast's 8.5 is only -15 %
    eased = decide_replicas(PREDICTIVE, at(10), NOW, 7.5, 1.0, flat(8.5), 0.9)
    assert eased.replicas == 10 and "within -20%/+30% of 10" in eased.reasoning
    assert decide_replicas(PREDICTIVE, at(10), NOW, 7.5, 1.0, flat(7.5), 0.9).replicas == 8  # -25 %


def test_predictive_gives_capacity_back_slower_when_the_forecast_is_not_trusted():
    # 12 was recommended 90 minutes ago: past the trusted window (10 min), inside the
    # fallback's (two hours)
    state = at(12, recommendations=((NOW - 5400, 12),))
    assert decide_replicas(PREDICTIVE, state, NOW, 2.0, 0.4, flat(2.0), 0.9).replicas == 5
    assert decide_replicas(PREDICTIVE, state, NOW, 2.0, 0.4, flat(2.0), 0.5).replicas == 12
    # and a reactive policy forgets it after its 5 minutes
    assert decide_replicas(REACTIVE, state, NOW, 2.0, 0.4).replicas == 5


def test_with_a_median_below_the_band_it_rises_to_the_plan_half_way_up():
    # p50 2.1 and p90 4.1 cores over 400m: 5.25 to 10.25 replicas, planned at 7.75; 5 is below: 8
    decision = decide_replicas(PREDICTIVE, at(5), NOW, 1.6, 0.4, flat(4.1), 0.9, median=flat(2.1))
    assert (decision.replicas, decision.basis) == (8, "predictive")
    assert decision.reasoning == ("cpu forecast peaks at 2.1 cores (p50) to 4.1 cores (p90, at 22:25, in 5 min); "
                                  "400m per replica → 5.25 to 10.2 replicas, planned 50% of the way up: 7.75 → "
                                  "8 replicas; now 5")


def test_with_a_median_the_count_stands_between_the_median_need_and_the_plan():
    # 5 to 10 replicas, planned half way at 7.5: 6 to 8 stand (a fixed +30 % band would go to 10)
    kept = decide_replicas(PREDICTIVE, at(8), NOW, 3.0, 0.4, flat(4.0), 0.9, median=flat(2.0))
    assert kept.replicas == 8 and "8 is within 5 to 8: 8 replicas" in kept.reasoning
    assert decide_replicas(PREDICTIVE, at(6), NOW, 2.2, 0.4, flat(4.0), 0.9, median=flat(2.0)).replicas == 6


def test_with_a_median_capacity_above_the_plan_comes_down_to_the_median_need():
    # 5 to 7 replicas, planned at 6: 10 is above, so down to the median's 5, not to 6 or 7
    eased = decide_replicas(PREDICTIVE, at(10), NOW, 1.6, 0.4, flat(2.8), 0.9, median=flat(2.0))
    assert eased.replicas == 5 and "10 is above 6: down to the p50's 5 replicas" in eased.reasoning


def test_a_bad_median_is_named():
    with pytest.raises(ValueError, match="median"):
        decide_replicas(PREDICTIVE, at(5), NOW, 1.0, 0.4, flat(2.0), 0.9, median=np.array([1.0, np.nan]))


def test_a_scale_down_window_of_zero_does_not_hold():
    rules = ScalingRules(mode="Predictive", scale_down_delay_seconds=0)
    assert decide_replicas(rules, at(10), NOW, 2.0, 0.4, flat(2.0), 0.9).replicas == 5


def test_only_the_horizon_of_the_forecast_counts():
    rules = ScalingRules(mode="Predictive", horizon_seconds=900, step_seconds=300)  # 3 steps
    forecast = np.array([2.0, 2.0, 2.0, 9.0])
    assert decide_replicas(rules, at(5), NOW, 2.0, 0.4, forecast, 0.9).replicas == 5


def test_rules_from_a_spec_override_the_strategy():
    conservative = strategy_parameters("Conservative")
    rules = ScalingRules.from_spec({"mode": "Predictive", "maxReplicas": 12, "scaleUp": {"step": 2},
                                    "forecast": {"quantile": 0.8}}, conservative, step_seconds=60)
    assert (rules.quantile, rules.horizon_seconds, rules.scale_down_delay_seconds) == (0.8, 3600, 1800)
    assert (rules.max_replicas, rules.scale_up_step, rules.scale_down_step, rules.step_seconds) == (12, 2, None, 60)
    with pytest.raises(ValueError, match="max_replicas"):
        ScalingRules.from_spec({"minReplicas": 5, "maxReplicas": 3})


@pytest.mark.parametrize("demand, target, forecast, message", [
    (-1.0, 0.4, None, "demand_now"),
    (1.0, 0.0, None, "target_per_replica"),
    (1.0, 0.4, np.array([1.0, np.nan]), "forecast"),
    (1.0, None, None, "target_per_replica"),
])
def test_bad_figures_are_named(demand, target, forecast, message):
    with pytest.raises(ValueError, match=message):
        decide_replicas(PREDICTIVE, at(5), NOW, demand, target, forecast, 0.9)


# ---- vertical -------------------------------------------------------------------------

def test_requests_are_the_forecast_peak_plus_the_buffer():
    cpu = decide_request(RequestRules(buffer=0.1), "cpu", np.array([0.25, 0.3, 0.28]), container="app")
    assert cpu.request == pytest.approx(0.33) and cpu.basis == "forecast"
    assert cpu.reasoning == "app cpu p90 forecast peaks at 300m per pod; +10% → 330m"


def test_memory_never_goes_below_the_recent_peak_but_cpu_may():
    memory = decide_request(RequestRules(buffer=0.1), "memory", np.full(6, 300 * MI), recent_peak=500 * MI)
    assert memory.request == pytest.approx(550 * MI) and memory.basis == "recent peak"
    cpu = decide_request(RequestRules(buffer=0.1), "cpu", np.full(6, 0.3), recent_peak=0.9)
    assert cpu.request == pytest.approx(0.33)


@pytest.mark.parametrize("peak, expected", [
    (480 * MI, 580 * MI),  # peak + 100Mi is the larger
    (1024 * MI, 1024 * MI * 1.2),  # peak x 1.2 is the larger
])
def test_an_oomkill_raises_memory_at_once_by_the_vpa_rule(peak, expected):
    decision = decide_request(RequestRules(buffer=0.1), "memory", np.full(6, 300 * MI), recent_peak=peak,
                              oom_killed=True)
    assert decision.request == pytest.approx(expected) and decision.basis == "oom"
    assert "OOMKilled" in decision.reasoning


def test_bounds_apply_per_resource():
    rules = RequestRules(buffer=0.1, max_cpu=0.5, min_memory=256 * MI)
    cpu = decide_request(rules, "cpu", np.full(6, 0.6))
    assert cpu.request == 0.5 and cpu.basis == "maximum" and "capped at the maximum 500m" in cpu.reasoning
    memory = decide_request(rules, "memory", np.full(6, 100 * MI), recent_peak=100 * MI)
    assert memory.request == 256 * MI and memory.basis == "minimum"
    # the cpu maximum does not touch memory, nor the memory minimum cpu
    assert decide_request(rules, "memory", np.full(6, 2048 * MI)).request == pytest.approx(2048 * MI * 1.1)
    assert decide_request(rules, "cpu", np.full(6, 0.01)).request == pytest.approx(0.011)
