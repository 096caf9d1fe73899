"""The docs keep up with the code: every condition reason the operator can set is explained
in docs/troubleshooting.md, and every spec field of every kind on its kind's page."""
import ast
import re
from pathlib import Path

import pytest

from quartermaster.operator import crdgen
from quartermaster.operator.models import KINDS

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CAMEL = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)+$|^[A-Z][a-z]{3,}$")
# Functions whose string arguments are condition types and reasons.
CONDITION_CALLS = {"set_condition", "condition", "ready", "not_ready", "ActResult", "MetricsUnavailable"}


def _called(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")


def _literals(node: ast.expr) -> list[str]:
    """The CamelCase strings an argument can be: a literal, or either branch of `a if c else b`."""
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) and CAMEL.match(node.value) else []


def _is_message(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and " " in str(node.value))


def condition_reasons() -> set[str]:
    """The reasons in the operator's code: CamelCase literals passed to the functions that set
    conditions, and the first item of (reason, message) pairs handed to them as problems."""
    found = set()
    for path in (REPO / "operator").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _called(node) in CONDITION_CALLS:
                found |= {value for arg in node.args for value in _literals(arg)}
            elif isinstance(node, ast.Tuple) and len(node.elts) in (2, 3) and _is_message(node.elts[1]):
                found |= set(_literals(node.elts[0]))
    return found


def test_the_reason_scan_finds_the_reasons_it_should():
    reasons = condition_reasons()
    assert {"Conflict", "LowConfidence", "PrometheusUnreachable", "NoSamples", "Infeasible", "OverBudget",
            "NoMemberWorkloads", "UsageStale", "NotReadYet"} <= reasons


def test_every_condition_reason_is_explained():
    page = (DOCS / "troubleshooting.md").read_text()
    missing = sorted(r for r in condition_reasons() if f"`{r}`" not in page)
    assert not missing, f"reasons set in operator/ but not explained in docs/troubleshooting.md: {missing}"


def spec_fields(kind) -> set[str]:
    names = set()

    def walk(node):
        for name, prop in (node.get("properties") or {}).items():
            names.add(name)
            walk(prop)
            walk(prop.get("items") or {})
    walk(crdgen.openapi_schema(kind)["properties"]["spec"])
    return names


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_spec_field_is_on_its_kinds_page(kind):
    page = (DOCS / f"{kind.kind.lower()}.md").read_text()
    missing = sorted(f for f in spec_fields(kind) if f"`{f}`" not in page and not re.search(rf"`[^`]*\b{re.escape(f)}\b[^`]*`", page))
    assert not missing, f"spec fields of {kind.kind} not on docs/{kind.kind.lower()}.md: {missing}"
