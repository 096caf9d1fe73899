"""Local server processes for the test bed: free loopback ports, logs, readiness, teardown."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Self, TypeVar

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


class TestbedError(RuntimeError):
    """The test bed could not be built or started; the message says which part and why."""


class PollTimeout(TestbedError):
    """poll() gave up: the condition did not hold in time."""


def poll(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.25,
         ignore: tuple[type[Exception], ...] = ()) -> T:
    """Call `predicate()` until it returns something truthy, and return that; raise
    PollTimeout naming `what` after `timeout` seconds. Exceptions listed in `ignore`
    count as "not yet" (a TestbedError always propagates); others propagate."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
        except TestbedError:
            raise
        except ignore as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise PollTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


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
    env: dict[str, str] = field(default_factory=dict)  # added to the environment it inherits
    popen: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **self.env} if self.env else None,
            )
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """poll() `ready` (its exceptions mean "not yet") while this process runs."""
        def check() -> bool:
            if not self.running():
                raise TestbedError(f"{self.name} exited before {what}:\n{self.log_tail()}")
            return ready()

        try:
            poll(check, timeout, f"{self.name} {what}", ignore=(Exception,))
        except PollTimeout as error:
            raise TestbedError(f"{error}:\n{self.log_tail()}") from None

    def stop(self, grace: float = 10) -> None:
        if not self.running():
            return
        self.popen.terminate()
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class ProcessGroup:
    """Servers started together and stopped together, last started first stopped.

    start() runs the subclass's _start(); if that raises anything (a failed readiness
    check, an API error, Ctrl-C), whatever it had spawned is stopped before the exception
    propagates, so a failed start leaves nothing running. `on_spawn`, if set, is told of
    each process as soon as it starts (hack/demo.py records pids with it)."""

    processes: list[Process] = field(default_factory=list, kw_only=True)
    on_spawn: Callable[[Process], None] | None = field(default=None, kw_only=True, repr=False)

    @property
    def log_dir(self) -> Path:
        raise NotImplementedError

    def _start(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.log_dir / f"{name}.log")
        self.processes.append(process)
        process.start()
        if self.on_spawn:
            self.on_spawn(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
