"""The CRDs: generated from the models without drift, and enforced by a real apiserver."""
import json

import pytest
import yaml

from infra.processes import REPO
from quartermaster.operator.crdgen import crd_manifest, render
from quartermaster.operator.models import GROUP, KINDS


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_files_match_the_models(kind):
    path = REPO / "crds" / f"{GROUP}_{kind.plural}.yaml"
    assert path.exists(), f"{path.name} missing: run `make crds`"
    assert path.read_text() == render(kind), f"{path.name} drifted from operator/models.py: run `make crds`"


def test_no_stray_crd_files():
    expected = {f"{GROUP}_{kind.plural}.yaml" for kind in KINDS}
    assert {p.name for p in (REPO / "crds").glob("*.yaml")} == expected


def test_short_names_do_not_collide_with_any_served_resource(kubectl, crds_installed):
    listing = kubectl("api-resources", "-o", "wide", "--no-headers").stdout
    ours = {name for kind in KINDS for name in kind.short_names}
    owners: dict[str, list[str]] = {}
    for line in listing.splitlines():
        columns = line.split()
        for short in ours & set(",".join(columns).split(",")):
            owners.setdefault(short, []).append(columns[0])
    assert all(len(v) == 1 for v in owners.values()), owners
    assert set(owners) == ours, "every short name is served"


MALFORMED = {
    "wrong type": ("ResourcePool", {"pressureThresholds": {"cpu": {"warning": "high"}}},
                   "spec.pressureThresholds.cpu.warning", "must be of type number"),
    "negative quantity": ("ResourcePool", {"fixedCapacity": {"cpu": "-4"}},
                          "spec.fixedCapacity.cpu", "should match"),
    "negative integer quantity": ("ResourcePool", {"fixedCapacity": {"memory": -1}},
                                  "spec.fixedCapacity.memory", "greater than or equal to 0"),
    "unknown enum value": ("ResourcePool", {"strategy": "Sometimes"},
                           "spec.strategy", 'Unsupported value: "Sometimes"'),
    "fraction above one": ("ScalingPolicy", {"targetRef": {"kind": "Deployment", "name": "web"},
                                             "signals": [{"type": "cpu"}], "confidenceThreshold": 1.5},
                           "spec.confidenceThreshold", "less than or equal to 1"),
    "missing required field": ("SwapPlan", {"approval": "Auto"}, "spec.poolRef", "Required value"),
    "unknown priority": ("Quota", {"scope": {"namespaces": ["a"]}, "priorityClass": "urgent"},
                         "spec.priorityClass", 'Unsupported value: "urgent"'),
}


def manifest(kind: str, spec: dict, name: str = "malformed") -> str:
    metadata = {"name": name, **({"namespace": "default"} if kind == "ScalingPolicy" else {})}
    return json.dumps({"apiVersion": f"{GROUP}/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec})


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_apiserver_rejects_malformed_objects_naming_the_field(case, kubectl, crds_installed):
    kind, spec, field, message = MALFORMED[case]
    result = kubectl("apply", "-f", "-", input=manifest(kind, spec), check=False)
    assert result.returncode != 0, f"accepted a malformed {kind}: {result.stdout}"
    assert field in result.stderr and message in result.stderr, result.stderr


def test_unknown_fields_are_rejected_by_strict_validation(kubectl, crds_installed):
    result = kubectl("apply", "--validate=strict", "-f", "-",
                     input=manifest("ResourcePool", {"strategey": "Balanced"}), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.strategey"' in result.stderr, result.stderr


def test_examples_apply_cleanly_and_get_defaults(kubectl, crds_installed):
    kubectl("apply", "-f", str(REPO / "examples" / "00-namespaces.yaml"))
    result = kubectl("apply", "--dry-run=server", "-o", "yaml", "-f", str(REPO / "examples"))
    objects = [o for doc in yaml.safe_load_all(result.stdout) if doc for o in doc.get("items", [doc])]
    kinds = {o["kind"] for o in objects}
    assert {"ResourcePool", "Quota", "ScalingPolicy", "SwapPlan"} <= kinds
    swap_plan = next(o for o in objects if o["kind"] == "SwapPlan")
    assert swap_plan["spec"]["approval"] in ("DryRun", "Manual", "Auto")
    assert "quantile" in swap_plan["spec"], "the apiserver applies the schema's defaults"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_status_has_observed_generation_and_conditions_and_age_comes_last(kind):
    status = crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert {"observedGeneration", "conditions"} <= set(status["properties"])
    assert kind.printer_columns[-1]["name"] == "Age"
