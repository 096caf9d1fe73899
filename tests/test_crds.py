"""The CRDs: generated from the models without drift, and enforced by a real apiserver;
the models reject what it rejects, naming the same field."""
import json
import re

import pytest
import yaml
from pydantic import ValidationError

from quartermaster.operator.crdgen import crd_manifest, render
from quartermaster.operator.models import GROUP, KINDS
from quartermaster.testbed.processes import REPO


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


def policy(**spec) -> dict:
    """A ScalingPolicy spec with the required fields, and `spec` over them."""
    return {"targetRef": {"kind": "Deployment", "name": "web"}, "signals": [{"type": "cpu"}], **spec}


def requirement(operator: str, **values) -> dict:
    """A selector with one matchExpressions requirement."""
    return {"matchExpressions": [{"key": "zone", "operator": operator, **values}]}


# Checks across fields: CEL rules on the apiserver and model validators in the operator,
# which must name the same field with the same message. The schema's defaults are in
# place before either runs.
RULE_VIOLATIONS = {
    "minReplicas above maxReplicas": ("ScalingPolicy", policy(minReplicas=5, maxReplicas=3),
                                      "spec.minReplicas", "must not be greater than maxReplicas"),
    "minReplicas above the default maxReplicas": ("ScalingPolicy", policy(minReplicas=11),
                                                  "spec.minReplicas", "must not be greater than maxReplicas"),
    "promql signal without a query": ("ScalingPolicy", policy(signals=[{"type": "promql"}]),
                                      "spec.signals[0].query",
                                      "must be specified when `type` is 'promql' or 'queueDepth'"),
    "queueDepth signal with an empty query": ("ScalingPolicy",
                                              policy(signals=[{"type": "cpu"}, {"type": "queueDepth", "query": ""}]),
                                              "spec.signals[1].query",
                                              "must be specified when `type` is 'promql' or 'queueDepth'"),
    "critical equal to warning": ("ResourcePool", {"pressureThresholds": {"cpu": {"warning": 0.8, "critical": 0.8}}},
                                  "spec.pressureThresholds.cpu.critical", "must be greater than warning"),
    "emergency under the default critical": ("ResourcePool", {"pressureThresholds": {"memory": {"emergency": 0.8}}},
                                             "spec.pressureThresholds.memory.emergency",
                                             "must be greater than critical"),
    "pods thresholds decreasing": ("ResourcePool",
                                   {"pressureThresholds": {"pods": {"warning": 0.9, "critical": 0.5, "emergency": 0.6}}},
                                   "spec.pressureThresholds.pods.critical", "must be greater than warning"),
    "nodeSelector with fixedCapacity": ("ResourcePool", {"nodeSelector": {}, "fixedCapacity": {"cpu": "8"}},
                                        "spec.fixedCapacity", "may not be specified together with nodeSelector"),
    "In without values": ("ResourcePool", {"nodeSelector": requirement("In")},
                          "spec.nodeSelector.matchExpressions[0].values",
                          "must be specified when `operator` is 'In' or 'NotIn'"),
    "NotIn with empty values": ("ResourcePool", {"workloads": {"selector": requirement("NotIn", values=[])}},
                                "spec.workloads.selector.matchExpressions[0].values",
                                "must be specified when `operator` is 'In' or 'NotIn'"),
    "Exists with values": ("ResourcePool", {"workloads": {"namespaceSelector": requirement("Exists", values=["a"])}},
                           "spec.workloads.namespaceSelector.matchExpressions[0].values",
                           "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
}

MALFORMED = {
    "wrong type": ("ResourcePool", {"pressureThresholds": {"cpu": {"warning": "high"}}},
                   "spec.pressureThresholds.cpu.warning", "must be of type number"),
    "negative quantity": ("ResourcePool", {"fixedCapacity": {"cpu": "-4"}},
                          "spec.fixedCapacity.cpu", "should match"),
    "negative integer quantity": ("ResourcePool", {"fixedCapacity": {"memory": -1}},
                                  "spec.fixedCapacity.memory", "greater than or equal to 0"),
    "unknown enum value": ("ResourcePool", {"strategy": "Sometimes"},
                           "spec.strategy", 'Unsupported value: "Sometimes"'),
    "fraction above one": ("ScalingPolicy", policy(confidenceThreshold=1.5),
                           "spec.confidenceThreshold", "less than or equal to 1"),
    "missing required field": ("SwapPlan", {"approval": "Auto"}, "spec.poolRef", "Required value"),
    "unknown priority": ("Quota", {"scope": {"namespaces": ["a"]}, "priorityClass": "urgent"},
                         "spec.priorityClass", 'Unsupported value: "urgent"'),
    **RULE_VIOLATIONS,
}

# Objects at the edges of those rules, which both must accept.
VALID = {
    "minReplicas equal to maxReplicas": ("ScalingPolicy", policy(minReplicas=3, maxReplicas=3)),
    "promql signal with a query": ("ScalingPolicy", policy(signals=[{"type": "promql", "query": "sum(up)"}])),
    "thresholds given in part, increasing with the defaults": ("ResourcePool",
                                                               {"pressureThresholds": {"cpu": {"warning": 0.5}}}),
    "fixedCapacity alone": ("ResourcePool", {"fixedCapacity": {"cpu": "8"}}),
    "requirements with and without values": ("ResourcePool", {"nodeSelector": {"matchExpressions": [
        {"key": "a", "operator": "Exists"}, {"key": "b", "operator": "DoesNotExist", "values": []},
        {"key": "c", "operator": "NotIn", "values": ["x"]}]}}),
}

MODELS = {kind.kind: kind for kind in KINDS}


def manifest(kind: str, spec: dict, name: str = "malformed") -> str:
    metadata = {"name": name, **({"namespace": "default"} if kind == "ScalingPolicy" else {})}
    return json.dumps({"apiVersion": f"{GROUP}/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec})


def field_path(loc: tuple) -> str:
    """A pydantic error location as the apiserver writes a field path: spec.signals[0].query."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def model_errors(kind: str, spec: dict) -> list[tuple[str, str]]:
    """(field path, message) of each error the operator's models find in an object's spec."""
    try:
        MODELS[kind].model_validate({"spec": spec})
    except ValidationError as error:
        return [(field_path(e["loc"]), e["msg"]) for e in error.errors()]
    return []


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_apiserver_rejects_malformed_objects_naming_the_field(case, kubectl, crds_installed):
    kind, spec, field, message = MALFORMED[case]
    result = kubectl("apply", "-f", "-", input=manifest(kind, spec), check=False)
    assert result.returncode != 0, f"accepted a malformed {kind}: {result.stdout}"
    assert re.search(f"{re.escape(field)}: .*{re.escape(message)}", result.stderr), result.stderr


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_models_reject_malformed_objects_naming_the_field(case):
    kind, spec, field, _ = MALFORMED[case]
    assert field in [path for path, _ in model_errors(kind, spec)]


@pytest.mark.parametrize("case", RULE_VIOLATIONS, ids=list(RULE_VIOLATIONS))
def test_models_break_rules_with_the_apiservers_message(case):
    kind, spec, field, message = RULE_VIOLATIONS[case]
    assert model_errors(kind, spec) == [(field, message)]


@pytest.mark.parametrize("case", VALID, ids=list(VALID))
def test_objects_at_the_edges_of_the_rules_are_accepted(case, kubectl, crds_installed):
    kind, spec = VALID[case]
    assert model_errors(kind, spec) == []
    kubectl("apply", "--dry-run=server", "-f", "-", input=manifest(kind, spec, name="valid"))


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


def test_the_models_accept_the_examples():
    objects = [o for path in sorted((REPO / "examples").glob("*.yaml"))
               for o in yaml.safe_load_all(path.read_text()) if o and o["kind"] in MODELS]
    assert {o["kind"] for o in objects} == set(MODELS)
    for o in objects:
        assert model_errors(o["kind"], o["spec"]) == [], o["metadata"]["name"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_status_has_observed_generation_and_conditions_and_age_comes_last(kind):
    status = crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert {"observedGeneration", "conditions"} <= set(status["properties"])
    assert kind.printer_columns[-1]["name"] == "Age"
