"""High availability end to end: two `quartermaster run --leader-election` processes against
the test bed's apiserver, each with only the chart's ServiceAccount (a release of its own,
with its own Lease), so that exactly one acts; killing it hands over within the stated time.

Operators are cluster-wide, so whatever the pair's leader reconciles the session's operator
may reconcile too: these tests judge the pair by its Lease and its logs, not by objects."""
import json
import signal
import socket
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client

from conftest import RBAC_DENIAL, wait_for
from quartermaster.operator.leadership import LeaderElectionSettings
from quartermaster.testbed.operator import install_chart_rbac, start_operator
from quartermaster.testbed.processes import Process, free_port

RELEASE, NAMESPACE = "qm-ha", "qm-ha-system"
LEASE = f"{RELEASE}-quartermaster"  # the chart's default: the release's full name
# Short times keep the test quick; the chart's defaults (15 s, 10 s, 2 s) hand over in 19 s.
ELECTION = LeaderElectionSettings(lease_namespace=NAMESPACE, lease_name=LEASE, lease_duration_seconds=6,
                                  renew_deadline_seconds=4, retry_period_seconds=1)
ACQUIRED, STANDING_BY, KOPF_STARTED = "acquired Lease", "standing by", "Activity 'configure' succeeded"
# Lines only an acting operator logs: Kopf's activities and handlers, the control cycle.
ACTING = ("Activity '", "Handler '", "cycle: ")


@pytest.fixture(scope="module")
def ha_kubeconfig(control_plane, crds_installed, tmp_path_factory):
    return install_chart_rbac(control_plane, RELEASE, NAMESPACE, tmp_path_factory.mktemp("ha") / "ha.kubeconfig")


@pytest.fixture
def leases(control_plane):
    with control_plane.api_client() as api:
        leases = client.CoordinationV1Api(api)
        try:
            leases.delete_namespaced_lease(LEASE, NAMESPACE)
        except client.ApiException as error:
            assert error.status == 404, error
        yield leases


@pytest.fixture
def candidates(ha_kubeconfig, tmp_path):
    """start(name, started) -> a running candidate; all are stopped after the test, and
    their logs must show no RBAC denial."""
    started: list[Process] = []

    def start(name: str, until: str) -> Process:
        port = free_port()
        process = start_operator(
            ha_kubeconfig, tmp_path / f"{name}.log", "--verbose", "--resync-seconds=5",
            f"--liveness-port={port}", "--liveness-host=127.0.0.1", "--leader-election",
            f"--leader-election-namespace={NAMESPACE}", f"--leader-election-lease={LEASE}",
            f"--lease-duration-seconds={ELECTION.lease_duration_seconds}",
            f"--renew-deadline-seconds={ELECTION.renew_deadline_seconds}",
            f"--retry-period-seconds={ELECTION.retry_period_seconds}",
            on_spawn=started.append, started=until)
        process.liveness_port = port
        return process
    yield start
    for process in started:
        process.stop()
    for process in started:
        denials = [line for line in process.log_tail(10**7).splitlines() if RBAC_DENIAL.search(line)]
        assert not denials, f"{process.log_path.name} hit RBAC denials:\n" + "\n".join(denials[:10])


def identity(process: Process) -> str:
    return f"{socket.gethostname()}_{process.popen.pid}"


def log_before(process: Process, marker: str) -> str:
    text = process.log_tail(10**7)
    return text[:text.index(marker)] if marker in text else text


def healthz(process: Process) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{process.liveness_port}/healthz", timeout=2) as response:
        assert response.status == 200
        return json.loads(response.read() or b"{}")


def assert_one_leads(leader: Process, standby: Process, leases, seconds: float) -> None:
    """The leader runs its cycle; for `seconds` the Lease stays its own and the standby does not act."""
    wait_for(lambda: "cycle: " in leader.log_tail(10**7), 60, "the leader's first cycle")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert leases.read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity == identity(leader)
        assert standby.running() and leader.running()
        assert not [m for m in ACTING if m in standby.log_tail(10**7)], standby.log_tail()
        time.sleep(ELECTION.retry_period_seconds)


def test_one_acts_and_the_standby_takes_over_when_it_is_killed(candidates, leases):
    first = candidates("first", ACQUIRED)
    wait_for(lambda: KOPF_STARTED in first.log_tail(10**7), 60, "the leader to start Kopf")
    second = candidates("second", STANDING_BY)
    assert healthz(second) == {"leading": False, "lease": f"{NAMESPACE}/{LEASE}", "holder": identity(first)}
    assert_one_leads(first, second, leases, seconds=4 * ELECTION.retry_period_seconds)
    assert not [m for m in ACTING if m in log_before(first, ACQUIRED)], "the first acted before it led"

    before = leases.read_namespaced_lease(LEASE, NAMESPACE).spec
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait()
    killed, killed_at = time.monotonic(), datetime.now(timezone.utc)
    wait_for(lambda: ACQUIRED in second.log_tail(10**7), ELECTION.handover_seconds + 2, "the standby to take over")
    handover = time.monotonic() - killed
    after = leases.read_namespaced_lease(LEASE, NAMESPACE).spec
    assert after.holder_identity == identity(second)
    assert after.lease_transitions == before.lease_transitions + 1
    # Never two at once: the standby took the Lease after the leader died, having waited out
    # a whole lease duration since a renewal it saw, and acted only after taking it.
    assert after.acquire_time > killed_at
    assert after.acquire_time - before.renew_time >= timedelta(seconds=ELECTION.lease_duration_seconds)
    assert not [m for m in ACTING if m in log_before(second, ACQUIRED)], "the standby acted before it led"
    assert handover <= ELECTION.handover_seconds + 1, f"handed over in {handover:.1f}s"
    wait_for(lambda: "cycle: " in second.log_tail(10**7), 60, "the new leader's first cycle")


def test_a_leader_that_sees_another_holder_exits_at_once(candidates, leases):
    leader = candidates("leader", KOPF_STARTED)

    def take_over() -> bool:
        lease = leases.read_namespaced_lease(LEASE, NAMESPACE)
        lease.spec.holder_identity = "intruder"
        try:
            leases.replace_namespaced_lease(LEASE, NAMESPACE, lease)
        except client.ApiException as error:  # the leader renewed in between
            assert error.status == 409, error
            return False
        return True
    wait_for(take_over, 10, "another holder to take the Lease", interval=0.1)
    started = time.monotonic()
    wait_for(lambda: not leader.running(), 3 * ELECTION.retry_period_seconds, "the leader to exit")
    assert time.monotonic() - started < ELECTION.renew_deadline_seconds
    assert leader.popen.returncode == 1
    assert "lost Lease" in leader.log_tail() and "held by intruder" in leader.log_tail()


def test_a_leader_stopped_cleanly_gives_the_lease_up_at_once(candidates, leases):
    """As in an upgrade: SIGTERM to the leader; the standby takes over without waiting out the lease."""
    leader = candidates("old", KOPF_STARTED)
    standby = candidates("new", STANDING_BY)
    leader.popen.send_signal(signal.SIGTERM)
    stopping = time.monotonic()
    wait_for(lambda: ACQUIRED in standby.log_tail(10**7), ELECTION.lease_duration_seconds, "the new pod to lead")
    assert time.monotonic() - stopping < ELECTION.lease_duration_seconds
    # The old one gives the Lease up only once Kopf has stopped, and then exits cleanly.
    wait_for(lambda: "released Lease" in leader.log_tail(), 5, "the old pod's release")
    wait_for(lambda: not leader.running(), 10, "the old pod to exit")
    assert leader.popen.returncode == 0
    assert leases.read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity == identity(standby)
