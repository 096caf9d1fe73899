"""A real Prometheus: its TSDB backfilled once with promtool, then scraping live usage.

stop() and start() again on the same object restart it on the same port and TSDB,
without backfilling a second time (the e2e tests check that the operator recovers).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .processes import ProcessGroup, TestbedError, free_port
from .traces import Workload, write_openmetrics


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise TestbedError(f"{name} not found: run hack/testbed.sh (installs Debian's prometheus)")
    return path


@dataclass
class Prometheus(ProcessGroup):
    """`workloads` are backfilled before the first start; `scrape_targets` (host:port
    serving /metrics) are scraped every 5 s, their `job` and `instance` labels dropped so
    that the live series continue the backfilled ones."""

    workdir: Path
    workloads: list[Workload]
    scrape_targets: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    backfilled: bool = field(default=False, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.workdir

    @property
    def tsdb(self) -> Path:
        return self.workdir / "tsdb"

    def _backfill(self) -> None:
        self.tsdb.mkdir(parents=True, exist_ok=True)
        metrics = self.workdir / "backfill.om"
        with open(metrics, "w") as out:
            write_openmetrics(self.workloads, out)
        result = subprocess.run(
            [_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics",
             "--max-block-duration=24h", str(metrics), str(self.tsdb)],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise TestbedError(f"promtool backfill failed: {result.stderr[-2000:]}")
        metrics.unlink()
        self.backfilled = True

    def _write_config(self) -> Path:
        scrape = [{
            "job_name": "usage", "static_configs": [{"targets": self.scrape_targets}],
            "metric_relabel_configs": [{"action": "labeldrop", "regex": "job|instance"}],
        }] if self.scrape_targets else []
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "5s"}, "scrape_configs": scrape}))
        return config

    def _start(self) -> None:
        if not self.backfilled:
            self._backfill()
        prometheus = self._spawn("prometheus", [
            _tool("prometheus"), f"--config.file={self._write_config()}", f"--storage.tsdb.path={self.tsdb}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=30d",
        ])
        prometheus.wait_until(
            lambda: urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).status == 200,
            120, "ready")

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql, "time": f"{time.time() if at is None else at:.3f}"}
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise TestbedError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]
