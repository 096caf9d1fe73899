"""`quartermaster replay`: the bundled traces with no arguments, decisions from earlier
samples only, and bad input as one line and exit code 2."""
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from quartermaster.operator import cli
from quartermaster.operator.replay import Series, forecasts_at_every_step, replay
from quartermaster.planner.scaling import ScalingRules, ScalingState, decide_replicas
from quartermaster.testbed.traces import TRACES

START = datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()
STEP = 300

REACTIVE_POLICY = """\
apiVersion: quartermaster.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: web, namespace: team-a}
spec:
  targetRef: {kind: Deployment, name: web}
  signals: [{type: cpu, target: 500m}]
  mode: Reactive
  minReplicas: 1
  maxReplicas: 50
  scaleUp: {step: 50, cooldownSeconds: 0}
  scaleDown: {step: 50, cooldownSeconds: 0}
"""


def write_csv(path, values, start=START):
    rows = [f"{datetime.fromtimestamp(start + i * STEP, timezone.utc):%Y-%m-%d %H:%M:%S},{v}"
            for i, v in enumerate(values)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def test_with_no_arguments_it_replays_the_bundled_traces_and_writes_json_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["replay"]) == 0
    series = json.loads((tmp_path / "replay.json").read_text())["series"]
    bundled = sorted(path.stem for path in TRACES.glob("*.csv"))
    assert [s["name"] for s in series] == bundled
    for s in series:
        assert len(s["replicas"]) == len(s["timestamps"]) == len(s["demand"]) > 1000
        assert min(s["replicas"]) >= 1
    assert (tmp_path / "replay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "shortage" in table and "median" in table and all(name in table for name in bundled)


def test_a_step_in_demand_is_answered_one_step_later(tmp_path):
    # 1 core for 20 steps, then 4: with 0.5 cores per replica, 2 replicas, then 8
    csv = write_csv(tmp_path / "step.csv", [1.0] * 20 + [4.0] * 5)
    policy = tmp_path / "reactive.yaml"
    policy.write_text(REACTIVE_POLICY)
    out = tmp_path / "out.json"
    assert cli.main(["replay", "--csv", str(csv), "--target-per-replica", "0.5", "--policy", str(policy),
                     "--json", str(out)]) == 0
    replicas = json.loads(out.read_text())["series"][0]["replicas"]
    # nothing is known before the first sample: the minimum; then each step answers the last
    assert replicas == [1] + [2] * 20 + [8] * 4


def test_predictive_decisions_depend_only_on_earlier_samples():
    rng = np.random.default_rng(7)
    stamps = START + STEP * np.arange(400)
    demand = 2 + np.sin(np.arange(400) * 2 * np.pi / 96) + 0.2 * rng.random(400)
    changed = demand.copy()
    changed[300:] *= 3  # a different future from step 300 on
    rules = ScalingRules(step_seconds=STEP)
    first = replay(Series("a", stamps, demand), 0.5, rules).replicas
    second = replay(Series("b", stamps, changed), 0.5, rules).replicas
    # up to step 300 the replicas in place were decided before the change was seen
    assert np.array_equal(first[:301], second[:301])
    assert not np.array_equal(first[301:], second[301:])


def test_predictive_decisions_use_the_forecast_median():
    rng = np.random.default_rng(3)
    stamps = START + STEP * np.arange(600)
    demand = 2 + np.sin(np.arange(600) * 2 * np.pi / 288) + rng.gamma(1.0, 0.4, 600)  # bursty
    rules = ScalingRules(step_seconds=STEP, confidence_threshold=0.0)
    forecasts = forecasts_at_every_step(demand, rules)
    assert np.all(forecasts.median[1:] <= forecasts.upper[1:])

    def decided(with_median):
        state, replicas = ScalingState.initial(1), [1]
        for t in range(1, demand.size):
            state = decide_replicas(rules, state, float(stamps[t - 1]), float(demand[t - 1]), 0.5,
                                    forecasts.upper[t], float(forecasts.confidence[t]),
                                    median=forecasts.median[t] if with_median else None).state
            replicas.append(state.replicas)
        return replicas

    replayed = replay(Series("bursty", stamps, demand), 0.5, rules).replicas.tolist()
    assert replayed == decided(True) and replayed != decided(False)


@pytest.mark.parametrize("manifest, named", [
    (REACTIVE_POLICY.replace("minReplicas: 1", "minReplicas: 80"),
     "spec.minReplicas: must not be greater than maxReplicas"),
    (REACTIVE_POLICY.replace("mode: Reactive", "mode: Sideways"), "spec.mode"),
    (REACTIVE_POLICY.replace("kind: ScalingPolicy", "kind: Deployment"), "kind: must be ScalingPolicy"),
    (REACTIVE_POLICY.replace("mode: Reactive", "mode: Vertical"), "spec.mode: the replay replays horizontal"),
    ("spec: [unclosed", "not YAML"),
])
def test_a_bad_policy_is_one_line_naming_the_field_and_exit_2(tmp_path, capsys, manifest, named):
    csv = write_csv(tmp_path / "flat.csv", [1.0] * 10)
    policy = tmp_path / "policy.yaml"
    policy.write_text(manifest)
    assert cli.main(["replay", "--csv", str(csv), "--target-per-replica", "0.5", "--policy", str(policy)]) == 2
    error = capsys.readouterr().err
    assert named in error and error.count("\n") == 1 and "Traceback" not in error


@pytest.mark.parametrize("content, named", [
    (None, "No such file"),
    ("time,cores\n2024-03-01 00:00:00,1\n", "header timestamp,value"),
    ("timestamp,value\n2024-03-01 00:00:00,1\nyesterday,2\n", ":3: 'yesterday' is neither ISO 8601"),
    ("timestamp,value\n2024-03-01 00:00:00,1\n2024-03-01 00:05:00,-2\n", ":3: the value must be a non-negative"),
    ("timestamp,value\n2024-03-01 00:05:00,1\n2024-03-01 00:00:00,2\n", ":3: timestamps must increase"),
])
def test_a_bad_csv_is_one_line_and_exit_2(tmp_path, capsys, content, named):
    path = tmp_path / "demand.csv"
    if content is not None:
        path.write_text(content)
    assert cli.main(["replay", "--csv", str(path), "--target-per-replica", "0.5"]) == 2
    error = capsys.readouterr().err
    assert named in error and error.count("\n") == 1 and str(path) in error
