"""Live container usage for the test bed's Prometheus, as cAdvisor would export it.

A UsageDrive is one workload (the pods a label selector picks in a namespace) whose total
usage follows a bundled trace (traces.TraceUsage), split evenly among its Running pods.
The exporter serves `container_cpu_usage_seconds_total` (each pod's share integrated
between scrapes) and `container_memory_working_set_bytes` for the pods it finds through
the Kubernetes API, and, as kube-state-metrics does, `kube_pod_container_resource_requests`
of the drive's container from each pod's spec. Pods named in `backfill_pods` also get 7
days of history before the session's start (UsageDrive.backfill, which Prometheus writes
with promtool; their requests are the drive's `requests`), and their live counters carry
on from the backfilled values.

The exporter runs as its own process (UsageExporter), so that `make demo` can leave it
running. It re-reads its drives file on every scrape: UsageExporter.add() takes effect at
the next one.

    python -m quartermaster.testbed.usage --kubeconfig K --drives FILE --session-start T --port P
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
from kubernetes import client, config
from kubernetes.utils import parse_quantity

from .processes import ProcessGroup, free_port
from .traces import TraceUsage, Workload, workload_from_trace, write_openmetrics

BACKFILL_DAYS = 7
BACKFILL_STEP = 300  # seconds, as cAdvisor metrics are commonly kept
LISTING_TTL = 2.0  # seconds a drive's pod listing is reused between scrapes
CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass(frozen=True)
class UsageDrive:
    """One workload's usage: `trace` scaled as traces.TraceUsage does, for the Running pods
    in `namespace` that `selector` matches. `backfill_pods` are pods whose names are known
    before they run (a StatefulSet's `name-0`, `name-1`), backfilled before Prometheus
    starts; a drive added once Prometheus runs is live only. `requests` are the backfilled
    pods' container requests, as their spec will give them, by kube-state-metrics' names
    ("cpu" cores, "memory" bytes); live pods' come from their spec."""

    namespace: str
    selector: dict[str, str]
    trace: Path
    peak_cores: float = 2.0
    base_memory: float = 256 * 2**20
    peak_memory: float = 1024 * 2**20
    backfill_pods: tuple[str, ...] = ()
    container: str = "app"
    requests: dict[str, float] = field(default_factory=dict)

    def usage(self, session_start: float) -> TraceUsage:
        return TraceUsage(self.trace, session_start, self.peak_cores, self.base_memory, self.peak_memory)

    def backfill(self, session_start: float) -> list[Workload]:
        """Each backfilled pod's share of the usage, every 5 minutes for 7 days up to the start."""
        usage = self.usage(session_start)
        return [replace(workload_from_trace(usage, self.namespace, pod, session_start, 1 / len(self.backfill_pods),
                                            BACKFILL_DAYS, BACKFILL_STEP, self.container), requests=self.requests)
                for pod in self.backfill_pods]

    def to_json(self) -> dict:
        return {**asdict(self), "trace": str(self.trace), "backfill_pods": list(self.backfill_pods)}

    @classmethod
    def from_json(cls, data: dict) -> "UsageDrive":
        return cls(**{**data, "trace": Path(data["trace"]), "backfill_pods": tuple(data["backfill_pods"])})


def running_pods(core: client.CoreV1Api, namespace: str, selector: dict[str, str]) -> list[str]:
    """The names of the Running pods `selector` matches in `namespace`, sorted."""
    return sorted(running_pod_requests(core, namespace, selector, ""))


def running_pod_requests(core: client.CoreV1Api, namespace: str, selector: dict[str, str],
                         container: str) -> dict[str, dict[str, float]]:
    """The Running pods `selector` matches in `namespace`, each with its `container`'s
    requests by kube-state-metrics' resource names (e.g. "nvidia_com_gpu")."""
    label_selector = ",".join(f"{key}={value}" for key, value in selector.items())
    pods = core.list_namespaced_pod(namespace, label_selector=label_selector, _request_timeout=10).items

    def requests(pod) -> dict[str, float]:
        found = next((c for c in pod.spec.containers if c.name == container), None)
        wanted = (found.resources.requests if found is not None and found.resources else None) or {}
        return {resource.replace(".", "_").replace("/", "_"): float(parse_quantity(amount))
                for resource, amount in wanted.items()}

    return {pod.metadata.name: requests(pod) for pod in pods if pod.status and pod.status.phase == "Running"}


class LiveDrive:
    """A drive's pods and their counters, inside the exporter process."""

    def __init__(self, drive: UsageDrive, session_start: float, core: client.CoreV1Api):
        self.drive, self.session_start, self.core = drive, session_start, core
        self.usage = drive.usage(session_start)
        self.backfilled = {w.pod: w for w in drive.backfill(session_start)}
        self.pods: dict[str, dict[str, float]] = {}  # Running pod -> its container's requests
        self.listed_at = -np.inf
        self.counters: dict[str, float] = {}  # pod -> cpu seconds at `sampled_at`
        self.sampled_at = session_start
        self.seeded: set[str] = set()  # backfilled pods whose counter has started from it

    def _list(self, now: float) -> dict[str, dict[str, float]]:
        if now - self.listed_at >= LISTING_TTL:
            try:
                self.pods = running_pod_requests(self.core, self.drive.namespace, self.drive.selector,
                                                 self.drive.container)
            except Exception as error:  # an apiserver hiccup: keep serving the last listing
                print(f"usage: listing {self.drive.namespace} {self.drive.selector}: {error}", file=sys.stderr)
            self.listed_at = now
        return self.pods

    def _first_counter(self, pod: str, now: float) -> float:
        """A backfilled pod, seen for the first time, carries on from its backfilled value
        at the start, plus its share since; any other new pod (or a backfilled one seen
        again after it went away, as a restarted container would) starts from zero."""
        history = self.backfilled.get(pod)
        if history is None or pod in self.seeded:
            return 0.0
        self.seeded.add(pod)
        share = 1 / len(self.drive.backfill_pods)
        return float(history.cpu_seconds_total[-1] + share * self.usage.cpu_seconds(self.session_start, now))

    def sample(self, now: float) -> list[Workload]:
        """Each Running pod's counter and gauge at `now`; the cores used since the last
        sample are shared among the pods running now."""
        pods = self._list(now)
        if pods:
            gained = float(self.usage.cpu_seconds(self.sampled_at, now)) / len(pods)
            memory = float(self.usage.memory_bytes(now)) / len(pods)
        self.counters = {pod: self.counters[pod] + gained if pod in self.counters else self._first_counter(pod, now)
                         for pod in pods}
        self.sampled_at = now
        return [Workload(self.drive.namespace, pod, self.drive.container, np.array([now]),
                         np.array([cpu_seconds]), np.array([memory]), pods[pod])
                for pod, cpu_seconds in self.counters.items()]


class UsageServer(HTTPServer):
    """Serves /metrics for the drives in `drives_file`, re-read on each scrape."""

    def __init__(self, port: int, drives_file: Path, kubeconfig: Path, session_start: float):
        super().__init__(("127.0.0.1", port), MetricsHandler)
        self.drives_file, self.session_start = drives_file, session_start
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.live: dict[str, LiveDrive] = {}  # by the drive's JSON

    def exposition(self) -> str:
        now = time.time()
        drives = json.loads(self.drives_file.read_text())
        keys = [json.dumps(d, sort_keys=True) for d in drives]
        self.live = {key: self.live.get(key) or LiveDrive(UsageDrive.from_json(d), self.session_start, self.core)
                     for key, d in zip(keys, drives)}
        out = io.StringIO()
        write_openmetrics((s for live in self.live.values() for s in live.sample(now)), out, stamped=False)
        return out.getvalue()


class MetricsHandler(BaseHTTPRequestHandler):
    server: UsageServer

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = self.server.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Quiet: Prometheus scrapes every few seconds."""


@dataclass
class UsageExporter(ProcessGroup):
    """The exporter process for `drives`, on a loopback port; `session_start` (whole
    seconds) is where the traces' middle falls and where the backfill ends."""

    workdir: Path
    kubeconfig: Path
    drives: list[UsageDrive]
    session_start: int = field(default_factory=lambda: int(time.time()))
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.drives = list(self.drives)  # add() must not grow the caller's list

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    @property
    def log_dir(self) -> Path:
        return self.workdir

    @property
    def drives_file(self) -> Path:
        return self.workdir / "drives.json"

    def backfill(self) -> list[Workload]:
        """The history of every drive's backfilled pods, for Prometheus to write before it starts."""
        return [w for drive in self.drives for w in drive.backfill(self.session_start)]

    def add(self, drive: UsageDrive) -> None:
        """Serve one more workload from the next scrape on (live only: no backfill)."""
        self.drives.append(drive)
        self._write_drives()

    def _write_drives(self) -> None:
        partial = self.drives_file.with_suffix(".tmp")
        partial.write_text(json.dumps([d.to_json() for d in self.drives]))
        os.replace(partial, self.drives_file)  # the server never reads half a file

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_drives()
        exporter = self._spawn("usage-exporter", [
            sys.executable, "-m", "quartermaster.testbed.usage", f"--kubeconfig={self.kubeconfig}",
            f"--drives={self.drives_file}", f"--session-start={self.session_start}", f"--port={self.port}",
        ])
        exporter.wait_until(lambda: urllib.request.urlopen(self.url, timeout=5).status == 200, 60, "serving")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m quartermaster.testbed.usage", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--drives", type=Path, required=True, help="a JSON list of UsageDrive.to_json()")
    parser.add_argument("--session-start", type=float, required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args(argv)
    UsageServer(options.port, options.drives, options.kubeconfig, options.session_start).serve_forever()


if __name__ == "__main__":
    main()
