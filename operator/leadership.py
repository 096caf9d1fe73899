"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does.

A candidate takes the Lease when there is none (create), when nobody holds it, or when its
holder has let it lapse: not renewed for its `leaseDurationSeconds`, both by the Lease's own
`renewTime` and by our clock since we first saw that renewal (client-go's rule, so a holder
whose clock runs behind ours is not deposed while it still renews). Every write is an
update carrying the resourceVersion read, so of two candidates exactly one wins.

The leader renews every retry period. It stops acting as soon as it sees another holder or
has not renewed for `renewDeadlineSeconds` (less than the lease duration, so it stops
before anyone may take over): it exits the process, and the Deployment restarts it as a
standby. A clean stop (SIGTERM) releases the Lease, so the standby takes over at its next
try rather than after the lease duration.

A standby takes over at most leaseDuration + 2 x retryPeriod after the leader's last
renewal: it notices that renewal within one retry period and tries again every retry
period after the lease has lapsed (19 s with the defaults 15 s and 2 s).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, Field, model_validator

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_identity() -> str:
    """The pod's name (a pod's hostname) and the process id: unique among live candidates."""
    return f"{socket.gethostname()}_{os.getpid()}"


def pod_namespace() -> Optional[str]:
    """The namespace of the pod we run in, from its service account; None outside a cluster."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


class LeaderElectionSettings(BaseModel):
    """client-go's defaults: a 15 s lease, renewed every 2 s, given up after 10 s without renewal."""

    lease_name: str = Field(default="quartermaster", min_length=1)
    lease_namespace: str = Field(min_length=1)
    identity: str = Field(default_factory=default_identity, min_length=1)
    lease_duration_seconds: int = Field(default=15, ge=1, description="How long a lease lasts unrenewed.")
    renew_deadline_seconds: float = Field(default=10, gt=0, description="The leader gives up after this "
                                                                        "long without a renewal.")
    retry_period_seconds: float = Field(default=2, gt=0, description="Between two tries to take or renew.")

    @model_validator(mode="after")
    def _leader_stops_before_others_take_over(self):
        if not self.lease_duration_seconds > self.renew_deadline_seconds > self.retry_period_seconds:
            raise ValueError(
                f"need lease duration ({self.lease_duration_seconds}s) > renew deadline "
                f"({self.renew_deadline_seconds}s) > retry period ({self.retry_period_seconds}s): the leader "
                "must stop acting before a standby may take over, and try more than once before")
        return self

    @property
    def handover_seconds(self) -> float:
        """The longest a standby waits after the leader's last renewal."""
        return self.lease_duration_seconds + 2 * self.retry_period_seconds


# --- the pure part: who may hold the Lease --------------------------------------------------

def lease_lapsed(renew_time: Optional[datetime], duration_seconds: Optional[float], now: datetime,
                 observed_at: float, monotonic_now: float) -> bool:
    """Whether a holder's lease has run out: its renewTime + duration is past, and so is the
    duration on our monotonic clock since we first saw this renewal."""
    if renew_time is None or not duration_seconds:
        return True
    return (renew_time + timedelta(seconds=duration_seconds) <= now
            and observed_at + duration_seconds <= monotonic_now)


def may_take(holder: Optional[str], identity: str, lapsed: bool) -> bool:
    """Whether `identity` may write itself as the holder."""
    return not holder or holder == identity or lapsed


def step_down_reason(holder: Optional[str], identity: str, last_renewed: float, now: float,
                     renew_deadline_seconds: float) -> Optional[str]:
    """Why the leader must stop acting now, or None while it may go on."""
    if holder is not None and holder != identity:
        return f"the Lease is now held by {holder}"
    if now - last_renewed >= renew_deadline_seconds:
        return f"not renewed for {now - last_renewed:.1f}s (renew deadline {renew_deadline_seconds:g}s)"
    return None


def taken_spec(spec: Optional[client.V1LeaseSpec], identity: str, duration_seconds: int,
               now: datetime) -> client.V1LeaseSpec:
    """The Lease's spec once `identity` holds it, renewed now; as in client-go, every change
    of holder (from nobody too) counts a transition."""
    if spec is None:
        return client.V1LeaseSpec(holder_identity=identity, lease_duration_seconds=duration_seconds,
                                  acquire_time=now, renew_time=now, lease_transitions=0)
    kept = spec.holder_identity == identity
    return client.V1LeaseSpec(
        holder_identity=identity, lease_duration_seconds=duration_seconds,
        acquire_time=spec.acquire_time if kept else now, renew_time=now,
        lease_transitions=(spec.lease_transitions or 0) + (0 if kept else 1))


def micro_now() -> datetime:
    # A Lease's times are MicroTime, parsed with exactly six fractional digits, and
    # datetime.isoformat() leaves them out when they are all zero.
    now = datetime.now(timezone.utc)
    return now if now.microsecond else now.replace(microsecond=1)


# --- the I/O ---------------------------------------------------------------------------------

def lease_api() -> client.CoordinationV1Api:
    """A client of its own (in-cluster, else the kubeconfig): Kopf has not logged in yet."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return client.CoordinationV1Api(client.ApiClient(configuration))


@dataclass
class Observation:
    """The Lease as last read, and when (our monotonic clock) its current renewal was first seen."""

    lease: Optional[client.V1Lease]
    observed_at: float

    @property
    def spec(self) -> Optional[client.V1LeaseSpec]:
        return self.lease.spec if self.lease else None

    @property
    def holder(self) -> Optional[str]:
        return self.spec.holder_identity if self.spec else None


class LeaderElector:
    def __init__(self, election: LeaderElectionSettings, api: client.CoordinationV1Api,
                 exit_process: Callable[[int], None] = os._exit):
        self.election = election
        self.api = api
        self.exit_process = exit_process
        self.observation = Observation(None, time.monotonic())
        self.last_renewed = 0.0
        self.stopped = threading.Event()
        self.renewer: Optional[threading.Thread] = None

    @property
    def lease_ref(self) -> str:
        return f"{self.election.lease_namespace}/{self.election.lease_name}"

    def _lease(self, seen: Observation, spec: client.V1LeaseSpec) -> client.V1Lease:
        """The Lease to write over `seen`: its resourceVersion makes the write fail if another came first."""
        return client.V1Lease(
            api_version="coordination.k8s.io/v1", kind="Lease", spec=spec,
            metadata=client.V1ObjectMeta(name=self.election.lease_name, namespace=self.election.lease_namespace,
                                         resource_version=seen.lease.metadata.resource_version if seen.lease else None))

    def _observe(self, timeout: float) -> Observation:
        try:
            lease = self.api.read_namespaced_lease(self.election.lease_name, self.election.lease_namespace,
                                                   _request_timeout=timeout)
        except ApiException as error:
            if error.status != 404:
                raise
            lease = None
        before = self.observation.spec
        spec = lease.spec if lease else None
        same_renewal = (before is not None and spec is not None and before.holder_identity == spec.holder_identity
                        and before.renew_time == spec.renew_time)
        self.observation = Observation(lease, self.observation.observed_at if same_renewal else time.monotonic())
        return self.observation

    def try_take(self, timeout: float) -> bool:
        """One try to take (or renew) the Lease within `timeout` seconds; True if we hold it
        now. Raises for anything but a lost race (ApiException, urllib3's errors)."""
        election, started = self.election, time.monotonic()
        seen = self._observe(timeout)
        spec = seen.spec
        lapsed = spec is not None and lease_lapsed(spec.renew_time, spec.lease_duration_seconds, micro_now(),
                                                   seen.observed_at, time.monotonic())
        if not may_take(seen.holder, election.identity, lapsed):
            return False
        body = self._lease(seen, taken_spec(spec, election.identity, election.lease_duration_seconds, micro_now()))
        left = max(0.05, started + timeout - time.monotonic())
        try:
            if seen.lease is None:
                written = self.api.create_namespaced_lease(election.lease_namespace, body, _request_timeout=left)
            else:
                written = self.api.replace_namespaced_lease(election.lease_name, election.lease_namespace, body,
                                                            _request_timeout=left)
        except ApiException as error:
            if error.status == 409:  # another candidate wrote first (resourceVersion or create)
                return False
            raise
        # Counted from before the read: the others' lease runs from no earlier than that.
        self.last_renewed = started
        self.observation = Observation(written, seen.observed_at)
        return True

    def wait_until_leading(self) -> None:
        """Block (no handlers, no cycle, no actions) until this process holds the Lease."""
        election, waiting_for = self.election, None
        logger.info("leader election: %s is a candidate for Lease %s", election.identity, self.lease_ref)
        while True:
            try:
                if self.try_take(election.retry_period_seconds):
                    logger.info("leader election: %s acquired Lease %s (leaseTransitions %d); "
                                "starting the operator", election.identity, self.lease_ref,
                                self.observation.spec.lease_transitions)
                    return
                if self.observation.holder != waiting_for:
                    waiting_for = self.observation.holder
                    logger.info("leader election: standing by; Lease %s is held by %s", self.lease_ref, waiting_for)
            except Exception as error:  # the apiserver may be away for a while: keep trying
                logger.warning("leader election: cannot read or write Lease %s: %s", self.lease_ref,
                               getattr(error, "reason", None) or error)
            time.sleep(election.retry_period_seconds)

    def keep_renewing(self) -> None:
        """Renew on a thread of its own; step down (exit the process) when that fails."""
        self.renewer = threading.Thread(target=self._renew_loop, name="lease renewer", daemon=True)
        self.renewer.start()

    def _renew_loop(self) -> None:
        election = self.election
        while not self.stopped.wait(election.retry_period_seconds):
            left = self.last_renewed + election.renew_deadline_seconds - time.monotonic()
            try:
                if left > 0:
                    self.try_take(min(election.retry_period_seconds, left))
            except Exception as error:
                logger.warning("leader election: renewing Lease %s failed: %s", self.lease_ref,
                               getattr(error, "reason", None) or error)
            if self.stopped.is_set():
                return
            reason = step_down_reason(self.observation.holder, election.identity, self.last_renewed,
                                      time.monotonic(), election.renew_deadline_seconds)
            if reason:
                logger.critical("leader election: lost Lease %s: %s; exiting so that this process "
                                "restarts as a standby", self.lease_ref, reason)
                logging.shutdown()
                self.exit_process(1)
                return

    def release(self) -> None:
        """On a clean stop, after Kopf has stopped: give the Lease up so a standby takes it at once."""
        self.stopped.set()
        if self.renewer is not None:
            self.renewer.join()
        seen = self.observation
        if seen.holder != self.election.identity:
            return
        now = micro_now()
        # client-go's release: no holder, a one-second lease, the transitions kept.
        released = self._lease(seen, client.V1LeaseSpec(lease_duration_seconds=1, acquire_time=now, renew_time=now,
                                                        lease_transitions=seen.spec.lease_transitions))
        try:
            self.api.replace_namespaced_lease(self.election.lease_name, self.election.lease_namespace, released,
                                              _request_timeout=self.election.retry_period_seconds)
            logger.info("leader election: released Lease %s", self.lease_ref)
        except Exception as error:  # the standby then takes over once the lease lapses
            logger.warning("leader election: could not release Lease %s: %s", self.lease_ref,
                           getattr(error, "reason", None) or error)


class StandbyHealth:
    """/healthz for the liveness probe while standing by (Kopf serves it once leading)."""

    def __init__(self, elector: LeaderElector, host: str, port: int):
        lease = elector.lease_ref

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != "/healthz":
                    self.send_error(404)
                    return
                body = json.dumps({"leading": False, "lease": lease, "holder": elector.observation.holder}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # probes every few seconds would flood the log
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="standby /healthz", daemon=True)

    def __enter__(self) -> "StandbyHealth":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        # Closed before Kopf binds the same port for its own /healthz.
        self.server.shutdown()
        self.server.server_close()
