"""High availability end to end: two `quartermaster run --leader-election` processes against
the test bed's apiserver, each with only the chart's ServiceAccount (a release of its own,
with its own Lease), so that exactly one acts; killing it hands over within the stated time.

Operators are cluster-wide, so whatever the pair's leader reconciles the session's operator
may reconcile too: most tests here judge the pair by its Lease and its logs. The one that
judges it by its actions freezes the session's operator while it runs, so that the pair is
the only one acting, and counts the pair's writes in the apiserver's audit log."""
import json
import signal
import socket
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client

from conftest import RBAC_DENIAL, wait_for
from quartermaster.operator.leadership import LeaderElectionSettings
from quartermaster.testbed.operator import install_chart_rbac, start_operator
from quartermaster.testbed.processes import Process, free_port, poll
from test_swapplan_e2e import (ORIGINAL, add_swap_pool, finished, planned_requests, status, swap_plan,
                               template_requests)

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

    def start(name: str, until: str, *extra: str) -> Process:
        port = free_port()
        process = start_operator(
            ha_kubeconfig, tmp_path / f"{name}.log", "--verbose", "--resync-seconds=5",
            f"--liveness-port={port}", "--liveness-host=127.0.0.1", "--leader-election",
            f"--leader-election-namespace={NAMESPACE}", f"--leader-election-lease={LEASE}",
            f"--lease-duration-seconds={ELECTION.lease_duration_seconds}",
            f"--renew-deadline-seconds={ELECTION.renew_deadline_seconds}",
            f"--retry-period-seconds={ELECTION.retry_period_seconds}", *extra,
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


@pytest.fixture
def only_the_pair_acts(operator_process):
    """The session's operator frozen (SIGSTOP) for the test and resumed (SIGCONT) after it,
    whatever happens: the pair under test is then the only operator acting."""
    operator_process.popen.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        operator_process.popen.send_signal(signal.SIGCONT)


@pytest.fixture(scope="module")
def swap_ha(sim_cluster, control_plane, prometheus, kubectl):
    with control_plane.api_client() as api:
        add_swap_pool(api, sim_cluster, control_plane, kubectl, "swap-ha")
        yield api


def template_writes(control_plane, namespace: str) -> Counter:
    """The pair's successful writes to StatefulSets in `namespace`, per StatefulSet, as the
    apiserver's audit log recorded them (the pair's ServiceAccount is its own)."""
    account = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-quartermaster"
    return Counter(e["objectRef"]["name"] for e in control_plane.audit_events()
                   if e["user"]["username"] == account and e["verb"] in ("create", "update", "patch")
                   and e["objectRef"].get("resource") == "statefulsets" and e["objectRef"].get("namespace") == namespace
                   and (e.get("responseStatus") or {}).get("code", 0) < 300)


def test_the_standby_finishes_a_plan_the_killed_leader_was_executing_making_each_change_once(
        candidates, leases, only_the_pair_acts, swap_ha, control_plane, kubectl, prometheus):
    reads_usage = (f"--prometheus-url={prometheus.url}", "--prometheus-timeout=5", "--metrics-step-seconds=15",
                   "--history-seconds=21600")
    first = candidates("first", ACQUIRED, *reads_usage)
    wait_for(lambda: KOPF_STARTED in first.log_tail(10**7), 60, "the leader to start Kopf")
    second = candidates("second", STANDING_BY, *reads_usage)
    kubectl("apply", "-f", "-", input=swap_plan("swap-ha", "Auto"))
    executing = poll(lambda: (s := status(kubectl, "swap-ha")).get("phase") == "Executing" and s, 240,
                     "the plan to start executing", interval=0.05)
    first.popen.send_signal(signal.SIGKILL)  # in the cycle that acts: its step is recorded, maybe not yet made
    first.popen.wait()
    assert any(step["state"] == "Applying" for step in executing["execution"]["steps"]), "killed mid-step"
    wait_for(lambda: ACQUIRED in second.log_tail(10**7), ELECTION.handover_seconds + 2, "the standby to take over")

    done = finished(kubectl, "swap-ha", 240)
    assert done["phase"] == "Succeeded", done
    assert done["planId"] == executing["planId"], "the standby carried on with the same plan"
    assert template_requests(swap_ha, "swap-ha") == {**ORIGINAL, **planned_requests(done)}
    assert [h["phase"] for h in done["history"]].count("Approved") == 1
    # each planned change reached the apiserver exactly once, whichever of the two made it
    changed = {step["workload"].rsplit("/", 1)[1] for step in done["execution"]["steps"]}
    assert template_writes(control_plane, "swap-ha") == Counter({name: 1 for name in changed})
