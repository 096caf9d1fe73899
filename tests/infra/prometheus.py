"""A real Prometheus whose TSDB is backfilled with workloads built from real traces."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .processes import ProcessGroup, TestbedError, free_port
from .traces import Workload, write_openmetrics


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise TestbedError(f"{name} not found: run hack/testbed.sh (installs Debian's prometheus)")
    return path


@dataclass
class Prometheus(ProcessGroup):
    workdir: Path
    workloads: list[Workload]
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.workdir

    def _start(self) -> None:
        data = self.workdir / "tsdb"
        data.mkdir(parents=True, exist_ok=True)
        metrics = self.workdir / "backfill.om"
        write_openmetrics(self.workloads, metrics)
        result = subprocess.run(
            [_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics",
             "--max-block-duration=24h", str(metrics), str(data)],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise TestbedError(f"promtool backfill failed: {result.stderr[-2000:]}")
        metrics.unlink()
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 30s\nscrape_configs: []\n")
        prometheus = self._spawn("prometheus", [
            _tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
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
