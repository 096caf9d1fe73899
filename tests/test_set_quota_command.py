"""`quartermaster set-quota`: the apply document (only the fields given), the GitOps marks
it warns about, and the command against the real apiserver: the field changes under the
`quartermaster-cli` manager, the others keep their values and managers."""
import argparse
import json

import pytest
from cli_testing import quartermaster

from quartermaster.operator.models import GROUP, VERSION
from quartermaster.operator.set_quota_command import apply_body, gitops_manager, quantity


def test_only_the_fields_given_are_sent():
    assert apply_body("team-a", cpu="30", gpu="2")["spec"] == {"hard": {"cpu": "30", "nvidia.com/gpu": "2"}}
    assert apply_body("team-a", priority="critical") == {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Quota", "metadata": {"name": "team-a"},
        "spec": {"priorityClass": "critical"}}
    with pytest.raises(ValueError, match="nothing to set"):
        apply_body("team-a")


def test_quantities_are_checked_before_sending():
    assert quantity("64Gi") == "64Gi" and quantity("2500m") == "2500m"
    for bad in ("-1", "lots", "3x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="not a non-negative Kubernetes quantity"):
            quantity(bad)


@pytest.mark.parametrize("labels, annotations, manager", [
    ({"argocd.argoproj.io/instance": "platform"}, {}, "Argo CD (application platform)"),
    ({"app.kubernetes.io/instance": "platform"},
     {"argocd.argoproj.io/tracking-id": "platform:quartermaster.dev/Quota:/team-a"}, "Argo CD (application platform)"),
    ({"kustomize.toolkit.fluxcd.io/name": "quotas", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}, {},
     "Flux (Kustomization flux-system/quotas)"),
    ({"helm.toolkit.fluxcd.io/name": "qm"}, {}, "Flux (HelmRelease qm)"),
    ({"app.kubernetes.io/instance": "platform"}, {}, None),  # Helm's label alone: no GitOps tool to fight
    ({}, {}, None),
])
def test_gitops_marks(labels, annotations, manager):
    assert gitops_manager({"metadata": {"labels": labels, "annotations": annotations}}) == manager


def set_quota(kubeconfig, *args):
    return quartermaster("set-quota", kubeconfig, *args)


def quota(name, labels=None):
    return json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Quota", "metadata": {"name": name, "labels": labels or {}},
        "spec": {"scope": {"namespaces": [name]}, "hard": {"cpu": "10", "memory": "8Gi", "pods": 20},
                 "priorityClass": "normal", "fairShareWeight": 2}})


def test_the_command_applies_only_its_fields_under_its_own_manager(control_plane, crds_installed, kubectl):
    kubectl("apply", "--server-side", "--field-manager=git", "-f", "-", input=quota("set-quota-cli"))
    result = set_quota(control_plane.admin_kubeconfig, "set-quota-cli", "--cpu", "30", "--priority", "critical")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "no GitOps marks, no warning"
    obj = json.loads(kubectl("get", "quotas.quartermaster.dev", "set-quota-cli", "-o", "json",
                             "--show-managed-fields").stdout)
    assert obj["spec"]["hard"] == {"cpu": "30", "memory": "8Gi", "pods": 20}
    assert obj["spec"]["priorityClass"] == "critical" and obj["spec"]["fairShareWeight"] == 2
    assert obj["spec"]["scope"] == {"namespaces": ["set-quota-cli"]}
    managers = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
    ours = managers["quartermaster-cli"]
    assert ours["operation"] == "Apply"
    assert set(ours["fieldsV1"]["f:spec"]) == {"f:hard", "f:priorityClass"}
    assert set(ours["fieldsV1"]["f:spec"]["f:hard"]) == {"f:cpu"}
    assert "f:memory" in managers["git"]["fieldsV1"]["f:spec"]["f:hard"], "the other fields keep their manager"
    assert "f:cpu" not in managers["git"]["fieldsV1"]["f:spec"]["f:hard"]


def test_a_quota_kept_in_git_is_changed_with_a_warning(control_plane, crds_installed, kubectl):
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f", "-",
            input=quota("set-quota-argo", {"argocd.argoproj.io/instance": "platform"}))
    result = set_quota(control_plane.admin_kubeconfig, "set-quota-argo", "--memory", "64Gi")
    assert result.returncode == 0
    assert "kept in Git by Argo CD (application platform)" in result.stderr and "undo" in result.stderr
    obj = json.loads(kubectl("get", "quotas.quartermaster.dev", "set-quota-argo", "-o", "json").stdout)
    assert obj["spec"]["hard"]["memory"] == "64Gi"


def test_a_missing_quota_or_a_bad_quantity_is_a_clear_error(control_plane, crds_installed):
    missing = set_quota(control_plane.admin_kubeconfig, "no-such-quota", "--cpu", "3")
    assert missing.returncode == 1 and "there is no Quota named no-such-quota" in missing.stderr
    bad = set_quota(control_plane.admin_kubeconfig, "set-quota-cli", "--cpu", "lots")
    assert bad.returncode == 2 and "'lots' is not a non-negative Kubernetes quantity" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr
