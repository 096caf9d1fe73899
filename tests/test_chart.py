"""The Helm chart: renders, installs the CRDs, runs the operator as non-root with a narrow role."""
import subprocess

from conftest import RELEASE
from quartermaster.testbed.processes import REPO


def test_chart_lints(testbed_bin):
    result = subprocess.run([str(testbed_bin / "helm"), "lint", str(REPO / "charts" / "quartermaster")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_ships_the_generated_crds(testbed_bin):
    result = subprocess.run([str(testbed_bin / "helm"), "show", "crds", str(REPO / "charts" / "quartermaster")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for path in (REPO / "crds").glob("*.yaml"):
        assert path.read_text() in result.stdout, f"{path.name} is not the chart's copy"


def test_operator_pod_runs_as_non_root_with_nothing_extra(helm_template):
    deployment = next(d for d in helm_template() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False and container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["serviceAccountName"] == f"{RELEASE}-quartermaster"


def test_role_has_no_wildcards_and_never_writes_spec_of_its_resources(helm_template):
    role = next(d for d in helm_template() if d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"update", "create", "delete"} & set(rule["verbs"]) or all(
            r.endswith("/status") or r == "events" for r in rule["resources"]), rule


def test_peering_permission_only_when_peering_is_on(helm_template):
    def groups(docs):
        return {g for d in docs if d["kind"] == "ClusterRole" for r in d["rules"] for g in r["apiGroups"]}
    assert "kopf.dev" not in groups(helm_template())
    assert "kopf.dev" in groups(helm_template("peering=quartermaster"))


# Exactly what the operator sends (Kopf and operator/kube.py): the e2e tests run the
# operator with this role and fail on any denial, so a missing verb shows up there.
EXPECTED_RULES = [
    (["quartermaster.dev"], ["resourcepools", "quotas", "scalingpolicies", "swapplans"], ["list", "watch", "patch"]),
    (["quartermaster.dev"], ["resourcepools/status", "quotas/status", "scalingpolicies/status", "swapplans/status"],
     ["patch"]),
    ([""], ["nodes", "pods", "namespaces"], ["list", "watch"]),
    ([""], ["events"], ["create"]),
]
PEERING_RULE = (["kopf.dev"], ["clusterkopfpeerings"], ["list", "watch", "patch"])


def test_role_grants_exactly_the_verbs_the_operator_uses(helm_template):
    def rules(*values):
        role = next(d for d in helm_template(*values) if d["kind"] == "ClusterRole")
        return [(r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]]
    assert rules() == EXPECTED_RULES
    assert rules("peering=quartermaster") == EXPECTED_RULES + [PEERING_RULE]
