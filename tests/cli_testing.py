"""What the CLI commands' tests share: running `quartermaster …` as a user would, and a pool
with a fixed capacity for the operator to reconcile."""
import json
import subprocess
import sys

from quartermaster.operator.models import GROUP, VERSION


def quartermaster(command: str, kubeconfig, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quartermaster.operator.cli", command, *args,
                           f"--kubeconfig={kubeconfig}"], capture_output=True, text=True)


def apply_pool(kubectl, name: str, **capacity: str) -> None:
    """ResourcePool `name` with this fixed capacity, drawing on namespace `name`."""
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "metadata": {"name": name},
        "spec": {"fixedCapacity": capacity, "workloads": {"namespaces": [name]}}}))
