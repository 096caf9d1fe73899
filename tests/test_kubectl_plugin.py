"""The kubectl plugin: the install puts `kubectl-quartermaster` beside `quartermaster`, and the
test bed's real kubectl runs it as `kubectl quartermaster …` from PATH (kubectl passes every
argument after the plugin's name through, and the kubeconfig through $KUBECONFIG)."""
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(sys.executable).parent


def test_the_install_provides_the_plugin_executable():
    plugin = SCRIPTS / "kubectl-quartermaster"
    assert plugin.is_file() and os.access(plugin, os.X_OK), "pip install -e . writes it ([project.scripts])"
    shown = subprocess.run([str(plugin), "status", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "example: quartermaster status" in shown.stdout


def test_kubectl_runs_it_as_a_subcommand(control_plane, crds_installed):
    environment = {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ['PATH']}",
                   "KUBECONFIG": str(control_plane.admin_kubeconfig)}
    kubectl = str(control_plane.bin_dir / "kubectl")
    listed = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, env=environment)
    assert str(SCRIPTS / "kubectl-quartermaster") in listed.stdout
    status = subprocess.run([kubectl, "quartermaster", "status", "-A"], capture_output=True, text=True,
                            env=environment)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0].split()[:2] == ["POOL", "CPU"], "status's tables, read from the test bed"
