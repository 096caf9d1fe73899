"""The repository's layout keeps the standard library importable and our namespace whole."""
import subprocess
import sys

from quartermaster.testbed.processes import REPO


def run_from_root(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_numpy_and_kopf_import_from_the_repository_root():
    result = run_from_root("import numpy, kopf; print('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_operator_folder_does_not_shadow_the_standard_library():
    result = run_from_root("import operator; print(operator.__file__); print(operator.itemgetter(1)([5, 7]))")
    assert result.returncode == 0, result.stderr
    path, value = result.stdout.split()
    assert not path.startswith(str(REPO)), path
    assert value == "7"


def test_code_folders_import_as_one_namespace():
    result = run_from_root(
        "import quartermaster.operator.models as m, quartermaster.predictors as p, quartermaster.planner as q; "
        "print(m.__file__); print(p.__file__); print(q.__file__)")
    assert result.returncode == 0, result.stderr
    models, predictors, planner = result.stdout.split()
    assert models == str(REPO / "operator" / "models.py")
    assert predictors.startswith(str(REPO / "predictors"))
    assert planner.startswith(str(REPO / "planner"))
