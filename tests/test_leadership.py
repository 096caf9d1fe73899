"""Leader election on a Lease: the pure rules, then the elector against the test bed's real
apiserver, with only the chart's RBAC (its Role in the release namespace)."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client

from conftest import wait_for
from quartermaster.operator.cli import main
from quartermaster.operator.leadership import (LeaderElectionSettings, LeaderElector, lease_lapsed, may_take,
                                               micro_now, step_down_reason, taken_spec)
from quartermaster.testbed.operator import install_chart_rbac
from quartermaster.testbed.processes import free_port

NOW = datetime(2026, 12, 1, 23, 50, 0, 500_000, tzinfo=timezone.utc)


def test_a_lease_lapses_only_when_both_its_renew_time_and_our_own_clock_say_so():
    renewed = NOW - timedelta(seconds=20)
    assert lease_lapsed(renewed, 15, NOW, observed_at=100.0, monotonic_now=116.0)
    assert not lease_lapsed(NOW - timedelta(seconds=14), 15, NOW, observed_at=100.0, monotonic_now=116.0)
    # The holder's clock runs behind ours: its renewTime looks old, but we saw it renew 5 s ago.
    assert not lease_lapsed(renewed, 15, NOW, observed_at=100.0, monotonic_now=105.0)
    assert lease_lapsed(None, 15, NOW, observed_at=100.0, monotonic_now=100.0)


def test_a_candidate_takes_a_free_own_or_lapsed_lease_only():
    assert may_take(None, "b", lapsed=False)
    assert may_take("", "b", lapsed=False)
    assert may_take("b", "b", lapsed=False)
    assert may_take("a", "b", lapsed=True)
    assert not may_take("a", "b", lapsed=False)


def test_the_leader_steps_down_on_another_holder_or_past_its_renew_deadline():
    assert step_down_reason("b", "b", last_renewed=100.0, now=109.0, renew_deadline_seconds=10) is None
    assert "held by a" in step_down_reason("a", "b", last_renewed=100.0, now=101.0, renew_deadline_seconds=10)
    assert "renew deadline" in step_down_reason("b", "b", last_renewed=100.0, now=110.0, renew_deadline_seconds=10)


def test_taking_a_lease_counts_a_transition_only_when_the_holder_changes():
    created = taken_spec(None, "a", 15, NOW)
    assert (created.holder_identity, created.lease_transitions, created.acquire_time) == ("a", 0, NOW)
    later = NOW + timedelta(seconds=2)
    renewed = taken_spec(created, "a", 15, later)
    assert (renewed.lease_transitions, renewed.acquire_time, renewed.renew_time) == (0, NOW, later)
    taken = taken_spec(renewed, "b", 15, later)
    assert (taken.holder_identity, taken.lease_transitions, taken.acquire_time) == ("b", 1, later)
    released = client.V1LeaseSpec(lease_duration_seconds=1, lease_transitions=1)
    assert taken_spec(released, "a", 15, later).lease_transitions == 2


def test_settings_refuse_a_leader_that_could_outlive_its_lease():
    with pytest.raises(ValueError, match="renew deadline"):
        LeaderElectionSettings(lease_namespace="x", lease_duration_seconds=10, renew_deadline_seconds=10)
    settings = LeaderElectionSettings(lease_namespace="x")
    assert settings.handover_seconds == 19
    assert settings.identity.endswith(f"_{__import__('os').getpid()}")


def test_micro_time_keeps_its_six_digits():
    assert len(micro_now().isoformat().split(".")[1]) == len("000000+00:00")


@pytest.mark.parametrize("args, message", [
    (["--leader-election"], "--leader-election-namespace is needed"),
    (["--leader-election", "--leader-election-namespace=x", "--lease-duration-seconds=5"], "renew deadline"),
    (["--leader-election", "--leader-election-namespace=x", "--retry-period-seconds=0"],
     "--retry-period-seconds: Input should be greater than 0"),
    (["--leader-election", "--leader-election-namespace=x", "--peering=p"], "exclude each other"),
])
def test_run_refuses_bad_election_flags_with_a_message(args, message, capsys):
    assert main(["run", *args]) == 2
    assert message in capsys.readouterr().err


# --- against the real apiserver, as the chart's ServiceAccount ------------------------------

NAMESPACE, RELEASE = "qm-lease-unit", "qm-lease-unit"
LEASE = f"{RELEASE}-quartermaster"  # the chart's Role allows get and update of this Lease only


@pytest.fixture(scope="module")
def lease_client(control_plane, tmp_path_factory):
    kubeconfig = install_chart_rbac(control_plane, RELEASE, NAMESPACE,
                                    tmp_path_factory.mktemp("lease") / "operator.kubeconfig")
    with control_plane.api_client(kubeconfig) as api:
        yield client.CoordinationV1Api(api)


@pytest.fixture
def elect(lease_client, control_plane):
    """elect(identity) -> a LeaderElector on the release's Lease (deleted first), with short
    times, whose step-downs are recorded in `.exits` instead of ending the test process."""
    with control_plane.api_client() as admin:
        try:
            client.CoordinationV1Api(admin).delete_namespaced_lease(LEASE, NAMESPACE)
        except client.ApiException as error:
            assert error.status == 404, error

    def make(identity: str, api: client.CoordinationV1Api = lease_client) -> LeaderElector:
        elector = LeaderElector(LeaderElectionSettings(
            lease_name=LEASE, lease_namespace=NAMESPACE, identity=identity, lease_duration_seconds=3,
            renew_deadline_seconds=2, retry_period_seconds=0.5), api, exit_process=exits.append)
        made.append(elector)
        return elector
    exits, made = [], []
    make.exits = exits
    yield make
    for elector in made:
        elector.stopped.set()


def holder(api, elector: LeaderElector) -> str | None:
    return api.read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity


def test_of_two_candidates_exactly_one_wins_a_race(elect, lease_client):
    """b read the Lease, a wrote it first: b's write, made on what it read, is refused."""
    a, b = elect("a"), elect("b")
    absent = b._observe(2)
    assert a.try_take(2)
    a.release()
    released = b._observe(2)
    assert released.holder is None and a.try_take(2)
    for stale in (absent, released):  # b's create, then b's update on an old resourceVersion
        b._observe = lambda timeout, seen=stale: seen
        assert not b.try_take(2)
        assert holder(lease_client, a) == "a"


def test_a_standby_takes_over_a_lapsed_lease_within_the_stated_time(elect, lease_client):
    a, b = elect("a"), elect("b")
    assert a.try_take(2)
    last_renewal = time.monotonic()
    standby = threading.Thread(target=b.wait_until_leading)
    standby.start()
    standby.join(b.election.handover_seconds + 2)
    waited = time.monotonic() - last_renewal
    assert not standby.is_alive(), "the standby never took the lapsed Lease"
    assert b.election.lease_duration_seconds <= waited <= b.election.handover_seconds + 0.5, waited
    lease = lease_client.read_namespaced_lease(LEASE, NAMESPACE).spec
    assert (lease.holder_identity, lease.lease_transitions) == ("b", 1)


def test_a_released_lease_is_taken_at_once(elect, lease_client):
    a, b = elect("a"), elect("b")
    assert a.try_take(2)
    a.release()
    assert holder(lease_client, a) is None
    assert b.try_take(2)


def test_the_leader_steps_down_when_another_takes_the_lease(elect, lease_client, caplog):
    a = elect("a")
    assert a.try_take(2)
    a.keep_renewing()
    lease = lease_client.read_namespaced_lease(LEASE, NAMESPACE)
    lease.spec.holder_identity = "intruder"
    lease.spec.renew_time = micro_now()
    lease_client.replace_namespaced_lease(LEASE, NAMESPACE, lease)
    wait_for(lambda: elect.exits, 3, "the leader to step down")
    assert elect.exits == [1]
    assert "held by intruder" in caplog.text and "exiting" in caplog.text


def test_the_leader_steps_down_when_it_cannot_renew_before_its_deadline(elect, lease_client, caplog):
    a = elect("a")
    assert a.try_take(2)
    # From now on every request is refused at the TCP level: the apiserver is gone for it.
    a.api = client.CoordinationV1Api(client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{free_port()}")))
    started = time.monotonic()
    a.keep_renewing()
    wait_for(lambda: elect.exits, 5, "the leader to step down")
    assert a.election.renew_deadline_seconds <= time.monotonic() - started < a.election.lease_duration_seconds
    assert "renew deadline" in caplog.text
