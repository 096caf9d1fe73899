"""`quartermaster monitor`: the bars and plain lines it draws (pure), and the command against
the real apiserver with the operator running: in a tmux terminal (the pool and its bar on
screen, Ctrl-C ends it with exit code 0 and the screen as it was) and through a pipe (plain
lines once per interval)."""
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

from cli_testing import apply_pool
from conftest import wait_for
from quartermaster.operator.monitor_command import bar, plain_lines, pool_lines

TMUX = "/usr/bin/tmux"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
POOLS = [
    {"metadata": {"name": "gpu"}, "status": {"capacity": {"cpu": "8", "nvidia.com/gpu": "0"}, "requested": {"cpu": "2"}}},
    {"metadata": {"name": "general"}, "status": {
        "capacity": {"cpu": "16", "memory": "64Gi"}, "used": {"cpu": "4"}, "requested": {"cpu": "6"},
        "forecast": {"cpu": "8"}, "pressure": {"cpu": "Warning"}}},
]


def test_bars_show_load_then_forecast_against_capacity():
    assert bar(0.25, 0.5, width=8) == "██▒▒░░░░"
    assert bar(0.5, 0.25, width=8) == "████░░░░", "a forecast under the load adds no shade"
    assert bar(1.7, None, width=4) == "████" and bar(None, None, width=4) == "░░░░"


def test_a_line_per_pool_and_resource_with_a_capacity():
    lines = pool_lines(POOLS)
    assert [(p.pool, p.resource) for p in lines] == [("general", "cpu"), ("general", "memory"), ("gpu", "cpu")]
    general = lines[0]
    assert (general.share(general.load), general.share(general.forecast)) == (0.25, 0.5), "the load is the usage"
    assert lines[2].share(lines[2].load) == 0.25, "without usage, the requests"
    text = plain_lines(lines, [{"time": "2026-12-01T11:55:00Z", "kind": "ScalingPolicy", "name": "web",
                                "reason": "Action", "message": "HPA min 5"}], NOW)
    assert text[0] == ("2026-12-01T12:00:00Z pool general cpu [########+++++++...............] used 4 requested 6 "
                       "forecast 8 capacity 16 (25% now, 50% forecast) pressure Warning")
    assert text[-1] == "2026-12-01T12:00:00Z action 2026-12-01T11:55:00Z ScalingPolicy/web Action: HPA min 5"
    assert plain_lines([], [], NOW) == ["2026-12-01T12:00:00Z no pools and no recorded actions"]


def monitor_command(kubeconfig, *args):
    return [sys.executable, "-m", "quartermaster.operator.cli", "monitor", "-A", f"--kubeconfig={kubeconfig}", *args]


def reconciled_pool(kubectl, name, cpu):
    apply_pool(kubectl, name, cpu=cpu)
    wait_for(lambda: kubectl("get", "resourcepool", name, "-o", "jsonpath={.status.capacity.cpu}").stdout == cpu,
             60, f"pool {name}'s capacity in status")


def test_in_a_terminal_it_draws_the_pool_and_ends_cleanly_on_ctrl_c(control_plane, operator_process, kubectl,
                                                                    tmp_path):
    reconciled_pool(kubectl, "monitor-tty", "4")
    exit_code = tmp_path / "exit-code"
    # The shell stays after the monitor so that the screen it leaves behind can be read. bash,
    # not sh: Ctrl-C reaches the whole foreground group, and dash dies of it even when the
    # monitor handles it, where bash goes on when its child exits normally.
    script = (f"LANG=C.UTF-8 {shlex.join(monitor_command(control_plane.admin_kubeconfig, '--interval=1'))}; "
              f"echo $? > {exit_code}; echo monitor-ended; sleep 120")
    tmux = [TMUX, "-L", f"qm-monitor-{os.getpid()}-{time.monotonic_ns()}"]
    subprocess.run([*tmux, "-u", "new-session", "-d", "-s", "monitor", "-x", "150", "-y", "45", "bash", "-c", script],
                   check=True)

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "monitor"], capture_output=True, text=True).stdout

    try:
        drawn = wait_for(lambda: (lambda s: "monitor-tty" in s and "░" in s and s)(screen()), 60,
                         "the pool and its bar in the monitor")
        line = next((l for l in drawn.splitlines() if "monitor-tty" in l and "░" in l), drawn)  # not its Events' line
        assert "cpu" in line and "░" * 10 in line, line
        subprocess.run([*tmux, "send-keys", "-t", "monitor", "C-c"], check=True)
        wait_for(lambda: exit_code.exists() and exit_code.read_text().strip(), 30, "the monitor to exit")
        assert exit_code.read_text().strip() == "0"
        after = wait_for(lambda: (lambda s: "monitor-ended" in s and s)(screen()), 10, "the shell's line")
        assert "monitor-tty" not in after and "Traceback" not in after, "the alternate screen is left: as before"
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_through_a_pipe_it_prints_plain_lines_each_interval(control_plane, operator_process, kubectl):
    reconciled_pool(kubectl, "monitor-pipe", "2")
    once = subprocess.run(monitor_command(control_plane.admin_kubeconfig, "--once"), capture_output=True, text=True)
    assert once.returncode == 0
    assert [l for l in once.stdout.splitlines() if " pool monitor-pipe cpu [" in l and "capacity 2 " in l]
    watching = subprocess.Popen(monitor_command(control_plane.admin_kubeconfig, "--interval=1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the pool's line as each refresh prints it, read as it comes: on a loaded machine the
    # first can take seconds (imports, the first reads), so no fixed sleep decides it
    seen, stamps, started = [], set(), time.monotonic()
    while len(stamps) < 3 and time.monotonic() - started < 60:
        line = watching.stdout.readline()
        if not line:
            break
        seen.append(line)
        if " pool monitor-pipe cpu " in line:
            stamps.add(line.split()[0])
    assert len(stamps) >= 3, f"refreshed each second: {''.join(seen)}"
    watching.send_signal(signal.SIGINT)  # inside its loop now: Ctrl-C ends it cleanly
    _, err = watching.communicate(timeout=30)
    assert watching.returncode == 0 and "Traceback" not in err
