"""Local server processes for the test bed: free loopback ports, logs, readiness, teardown."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]


class TestbedError(RuntimeError):
    """The test bed could not be built or started; the message says which part and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def testbed_binaries() -> Path:
    """The folder with the pinned binaries that `make testbed` (hack/testbed.sh) built.
    Building them takes minutes and may need sudo, so it is not done here."""
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "testbed.sh"), "--print"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise TestbedError(f"the test bed is not built: run make testbed\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class Process:
    """One server: started with its output in a log file, stopped with SIGTERM then SIGKILL."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> "Process":
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ},
        )
        log.close()
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise TestbedError(f"{self.name} exited before {what}:\n{self.log_tail()}")
            try:
                if ready():
                    return
            except Exception:  # not up yet: connection refused, 5xx, partial state
                pass
            time.sleep(0.25)
        raise TestbedError(f"{self.name} not {what} after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, grace: float = 10) -> None:
        if not self.running():
            return
        self.popen.terminate()
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
