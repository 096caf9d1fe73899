"""The operator as a user installs it: the chart's RBAC, and `quartermaster run` with it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import yaml

from .cluster import ControlPlane
from .processes import REPO, Process, TestbedError

CHART = REPO / "charts" / "quartermaster"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def render_chart(helm: Path, release: str, namespace: str, *values: str) -> list[dict]:
    args = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise TestbedError(f"helm template failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def install_chart_rbac(control_plane: ControlPlane, release: str, namespace: str, path: Path) -> Path:
    """Apply only the chart's RBAC objects; return a kubeconfig for its ServiceAccount."""
    rbac = [d for d in render_chart(control_plane.bin_dir / "helm", release, namespace) if d["kind"] in RBAC_KINDS]
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    account = next(d for d in rbac if d["kind"] == "ServiceAccount")["metadata"]["name"]
    return control_plane.kubeconfig_for_service_account(namespace, account, path)


def start_operator(kubeconfig: Path, log: Path, *args: str, env: dict[str, str] | None = None,
                   on_spawn: Callable[[Process], None] | None = None,
                   started: str = "Activity 'configure' succeeded") -> Process:
    """`quartermaster run`, returned once its log shows `started` (by default: Kopf has
    configured itself; a leader-election standby logs something else); stopped again if
    that fails or is interrupted. `env` is added to the environment it inherits (e.g. a
    provider SDK's credentials); `on_spawn` is told of the process as soon as it starts."""
    process = Process("quartermaster", [
        sys.executable, "-m", "quartermaster.operator.cli", "run", f"--kubeconfig={kubeconfig}", *args,
    ], log, env or {}).start()
    try:
        if on_spawn:
            on_spawn(process)
        process.wait_until(lambda: started in process.log_tail(20000), 60, "started")
    except BaseException:
        process.stop()
        raise
    return process
