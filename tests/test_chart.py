"""The Helm chart: renders, installs the CRDs, runs the operator as non-root with a narrow role,
passes its values to the operator's flags, serves /metrics through a Service, and optionally
a ServiceMonitor for it and a Grafana dashboard of the operator's own metrics."""
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from conftest import OPERATOR_NAMESPACE, RELEASE
from quartermaster.operator.cli import _parser, _provider_options
from quartermaster.operator.leadership import LeaderElectionSettings
from quartermaster.operator.prices import load_price_table
from quartermaster.operator.settings import OperatorSettings
from quartermaster.operator.telemetry import Telemetry
from quartermaster.testbed import processes  # by module: pytest would collect a TestbedError

REPO = processes.REPO
CHART = REPO / "charts" / "quartermaster"


def test_chart_lints(testbed_bin):
    result = subprocess.run([str(testbed_bin / "helm"), "lint", "--strict", str(CHART)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_ships_the_generated_crds(testbed_bin):
    result = subprocess.run([str(testbed_bin / "helm"), "show", "crds", str(CHART)],
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
        if "quartermaster.dev" in rule["apiGroups"]:  # GitOps owns the spec of our own kinds
            assert not {"update", "create", "delete"} & set(rule["verbs"]) or all(
                r.endswith("/status") for r in rule["resources"]), rule
        # the kwok node-pool provider deletes the Nodes it drained, a Quota its objects in a
        # namespace that left its scope; nothing else is deleted
        assert "delete" not in rule["verbs"] or rule["resources"] in (["nodes"], ["resourcequotas", "limitranges"]), rule


def test_peering_permission_only_when_peering_is_on(helm_template):
    def groups(docs):
        return {g for d in docs if d["kind"] == "ClusterRole" for r in d["rules"] for g in r["apiGroups"]}
    assert "kopf.dev" not in groups(helm_template())
    assert "kopf.dev" in groups(helm_template("peering=quartermaster"))


# Exactly what the operator sends (Kopf and operator/kube.py): the e2e tests run the
# operator with this role and fail on any denial, so a missing verb shows up there.
EXPECTED_RULES = [
    (["quartermaster.dev"], ["resourcepools", "quotas", "scalingpolicies", "swapplans"], ["list", "watch"]),
    (["quartermaster.dev"], ["resourcepools/status", "quotas/status", "scalingpolicies/status", "swapplans/status"],
     ["patch"]),
    ([""], ["nodes", "pods", "namespaces"], ["list", "watch"]),
    ([""], ["nodes"], ["create", "patch", "delete"]),
    ([""], ["pods/eviction"], ["create"]),
    (["autoscaling"], ["horizontalpodautoscalers"], ["list", "watch", "create", "patch"]),
    (["autoscaling.k8s.io"], ["verticalpodautoscalers"], ["list", "watch"]),
    (["apps"], ["deployments", "statefulsets"], ["list", "watch", "patch"]),
    ([""], ["pods/resize"], ["patch"]),
    ([""], ["resourcequotas", "limitranges"], ["list", "watch", "create", "patch", "delete"]),
    (["scheduling.k8s.io"], ["priorityclasses"], ["list", "watch", "create", "patch"]),
    (["authentication.k8s.io"], ["tokenreviews"], ["create"]),
    (["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
    (["quartermaster.dev"], ["swapplans"], ["patch"]),
    ([""], ["events"], ["create"]),
]
PEERING_RULE = (["kopf.dev"], ["clusterkopfpeerings"], ["list", "watch", "patch"])


def test_role_grants_exactly_the_verbs_the_operator_uses(helm_template):
    def rules(*values):
        role = next(d for d in helm_template(*values) if d["kind"] == "ClusterRole")
        return [(r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]]
    assert rules() == EXPECTED_RULES
    assert rules("peering=quartermaster") == EXPECTED_RULES + [PEERING_RULE]


def operator_args(docs: list[dict]) -> list[str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


# Each differs from the chart's default, so a value the Deployment does not pass fails.
USER_VALUES = {
    "prometheus": {
        "url": "http://prometheus-server.monitoring:80",
        "timeoutSeconds": 12.5,
        "stepSeconds": 60,
        "historySeconds": 1_209_600,  # a values file's numbers reach templates as floats: 1.2096e+06
        "rateWindow": "5m",
        "queries": {
            "cpu": 'sum by (namespace, pod) (rate(cpu_seconds_total{ns=~"${namespaces}", c!=""}[${window}]))',
            "memory": "sum by (namespace, pod) (rss_bytes{ns=~'${namespaces}'}) # working set",
        },
    },
    "metrics": {"port": 9102},
}


def render_values_file(helm: Path, folder: Path, values: dict) -> list[dict]:
    """The chart rendered with `values` written as a values file, as users write one."""
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = subprocess.run([str(helm), "template", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE,
                             "--values", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_deployment_passes_the_values_as_the_operators_flags(testbed_bin, tmp_path):
    """A values file, rendered and parsed by `quartermaster run`'s own parser."""
    options = _parser().parse_args(operator_args(render_values_file(testbed_bin / "helm", tmp_path, USER_VALUES)))
    prometheus = USER_VALUES["prometheus"]
    assert options.prometheus_url == prometheus["url"]
    assert options.prometheus_timeout == prometheus["timeoutSeconds"]
    assert options.metrics_step_seconds == prometheus["stepSeconds"]
    assert options.history_seconds == prometheus["historySeconds"]
    assert options.rate_window == prometheus["rateWindow"]
    assert options.cpu_query == prometheus["queries"]["cpu"]
    assert options.memory_query == prometheus["queries"]["memory"]
    assert options.metrics_port == USER_VALUES["metrics"]["port"]


def test_chart_defaults_are_the_operators(helm_template):
    """Empty url and queries pass no flag, so the operator's own defaults apply; the numbers match them."""
    args = operator_args(helm_template())
    assert not [a for a in args if a.startswith(("--prometheus-url", "--cpu-query", "--memory-query"))]
    options, defaults = _parser().parse_args(args), OperatorSettings().metrics
    assert options.prometheus_url is None
    assert (options.prometheus_timeout, options.metrics_step_seconds, options.history_seconds, options.rate_window,
            options.cpu_query, options.memory_query) == (
        defaults.timeout_seconds, defaults.step_seconds, defaults.history_seconds, defaults.rate_window,
        defaults.cpu_query, defaults.memory_query)
    assert options.metrics_port == 8081


def test_metrics_service_targets_the_metrics_port(helm_template):
    docs = helm_template("metrics.port=9102")
    service = next(d for d in docs if d["kind"] == "Service")
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
    (port,) = service["spec"]["ports"]
    container_port = next(p for p in pod["spec"]["containers"][0]["ports"] if p["name"] == port["targetPort"])
    assert container_port["containerPort"] == port["port"] == 9102
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9102", "prometheus.io/path": "/metrics"}
    quiet = next(d for d in helm_template("metrics.scrapeAnnotations=false") if d["kind"] == "Service")
    assert "annotations" not in quiet["metadata"]


@pytest.mark.parametrize("value, message", [
    ("prometheus.stepSeconds=five", "stepSeconds"),
    ("prometheus.rateWindow=10 minutes", "rateWindow"),
    ("prometheus.url=prometheus:9090", "url"),
    ("metrics.port=70000", "port"),
    ("prometheus.queries.cpuu=x", "cpuu"),
    ("metrics.port=8080", "must differ"),
    ("replicas=-1", "replicas"),
    ("replicas=2,leaderElection.enabled=false", "replicas > 1 needs leaderElection.enabled"),
    ("leaderElection.leaseDurationSeconds=soon", "leaseDurationSeconds"),
    ("leaderElection.renewDeadlineSeconds=20", "leaseDurationSeconds > renewDeadlineSeconds"),
    ("leaderElection.leaseTime=5", "leaseTime"),
    ("fullnameOverride=Quarter_Master", "fullnameOverride"),
    ("nodeSelector.disktype=1", "nodeSelector"),
    ("extraArgs=--verbose", "extraArgs"),
    ("imagePullSecrets[0].secret=x", "imagePullSecrets"),
    ("metrics.serviceMonitor.interval=30 seconds", "interval"),
    ("metrics.serviceMonitor.labels.release=1", "labels"),
    ("grafana.dashboard.enabld=true", "enabld"),
])
def test_chart_rejects_wrong_values_by_name(helm_template, value, message):
    with pytest.raises(processes.TestbedError, match=message):
        helm_template(value)


def rendered(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_leader_election_is_on_by_default_with_the_operators_own_defaults(helm_template):
    options = _parser().parse_args(operator_args(helm_template()))
    defaults = LeaderElectionSettings(lease_namespace=OPERATOR_NAMESPACE)
    assert options.leader_election is True
    assert (options.leader_election_namespace, options.leader_election_lease) == (
        OPERATOR_NAMESPACE, f"{RELEASE}-quartermaster")
    assert (options.lease_duration_seconds, options.renew_deadline_seconds, options.retry_period_seconds) == (
        defaults.lease_duration_seconds, defaults.renew_deadline_seconds, defaults.retry_period_seconds)
    off = _parser().parse_args(operator_args(helm_template("leaderElection.enabled=false")))
    assert off.leader_election is False


def test_lease_rbac_is_a_role_for_the_operators_own_lease_in_its_namespace(helm_template):
    docs = helm_template()
    (role,), (binding,) = rendered(docs, "Role"), rendered(docs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert [(r["apiGroups"], r["resources"], r.get("resourceNames"), r["verbs"]) for r in role["rules"]] == [
        (["coordination.k8s.io"], ["leases"], None, ["create"]),
        (["coordination.k8s.io"], ["leases"], [f"{RELEASE}-quartermaster"], ["get", "update"]),
    ]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-quartermaster",
                                    "namespace": OPERATOR_NAMESPACE}]
    named = rendered(helm_template("leaderElection.leaseName=qm-leader"), "Role")[0]["rules"][1]
    assert named["resourceNames"] == ["qm-leader"]
    assert not rendered(helm_template("leaderElection.enabled=false"), "Role")


def test_a_disruption_budget_only_with_more_than_one_replica(helm_template):
    assert not rendered(helm_template(), "PodDisruptionBudget")
    docs = helm_template("replicas=2")
    (budget,) = rendered(docs, "PodDisruptionBudget")
    pod_labels = rendered(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert rendered(docs, "Deployment")[0]["spec"]["replicas"] == 2


def test_an_upgrade_never_runs_two_active_operators(helm_template):
    """With the Lease a surge pod only stands by; without it the old pod goes first."""
    strategy = rendered(helm_template(), "Deployment")[0]["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    off = rendered(helm_template("leaderElection.enabled=false"), "Deployment")[0]["spec"]["strategy"]
    assert off == {"type": "Recreate"}


def test_probes_ask_the_health_port_for_liveness_readiness_and_start_up(helm_template):
    container = rendered(helm_template(), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe


POD_VALUES = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
            "matchLabels": {"app.kubernetes.io/name": "quartermaster"}}}}]}},
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"team": "platform"},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "priorityClassName": "system-cluster-critical",
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    "extraArgs": ["--verbose"],
}


def test_the_pod_values_users_expect_reach_the_pod(testbed_bin, tmp_path):
    docs = render_values_file(testbed_bin / "helm", tmp_path, POD_VALUES)
    template = rendered(docs, "Deployment")[0]["spec"]["template"]
    pod, container = template["spec"], template["spec"]["containers"][0]
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        assert pod[key] == POD_VALUES[key], key
    assert template["metadata"]["annotations"] == POD_VALUES["podAnnotations"]
    assert template["metadata"]["labels"]["team"] == "platform"
    assert container["env"] == POD_VALUES["extraEnv"]
    assert _parser().parse_args(container["args"]).verbose is True


def test_names_are_cut_to_63_characters_and_stay_distinct(helm_template):
    docs = helm_template(f"fullnameOverride={'q' * 63}")
    names = [d["metadata"]["name"] for d in docs]
    assert all(len(name) <= 63 for name in names), names
    assert {n for n in names if n.endswith(("-metrics", "-api"))} == {f"{'q' * 55}-metrics", f"{'q' * 59}-api"}
    assert {d["metadata"]["name"] for d in helm_template("nameOverride=qmaster")} >= {f"{RELEASE}-qmaster"}


def test_notes_say_what_to_do_next(control_plane):
    """Rendered by a dry-run install, which asks the apiserver for its version first (and
    whether the objects exist: a release and namespace of its own, not the session operator's)."""
    release, namespace = "qm-notes", "qm-notes-system"
    result = subprocess.run([str(control_plane.bin_dir / "helm"), "install", release, str(CHART), "--namespace",
                             namespace, "--dry-run=client", "--set", "replicas=2",
                             "--kubeconfig", str(control_plane.admin_kubeconfig)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    notes = result.stdout[result.stdout.index("NOTES:"):]
    assert f"kubectl -n {namespace} get pods -l app.kubernetes.io/instance={release}" in notes
    assert f"get lease {release}-quartermaster" in notes and "within\n   19 s" in notes
    assert "kubectl get quartermaster -A" in notes
    assert "kubectl apply --server-side -f crds/" in notes


def test_service_monitor_scrapes_the_metrics_service_only(helm_template):
    assert not rendered(helm_template(), "ServiceMonitor")
    docs = helm_template("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.interval=15s",
                         "metrics.serviceMonitor.scrapeTimeout=10s",
                         "metrics.serviceMonitor.labels.release=kube-prometheus-stack")
    (monitor,) = rendered(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    services = {s["metadata"]["name"]: s for s in rendered(docs, "Service")}
    selected = [name for name, s in services.items()
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert selected == [f"{RELEASE}-quartermaster-metrics"], "the API's Service is not scraped"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [OPERATOR_NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    assert endpoint["port"] in [p["name"] for p in services[selected[0]]["spec"]["ports"]]


def exported_series() -> set[str]:
    """The series names a fresh operator's /metrics names (a labelled family is listed
    before it has any sample): a counter's _total, a histogram's _bucket, _count, _sum."""
    suffixes = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    families = re.findall(r"^# TYPE (\S+) (\S+)$", generate_latest(Telemetry().registry).decode(), re.M)
    return {name + suffix for name, kind in families for suffix in suffixes[kind]}


# What in a PromQL expression is not a metric name: strings, label matchers, ranges, the
# label lists of by/without/on/ignoring/group_*, function names (before a parenthesis),
# keywords and numbers.
PROMQL_NOT_METRICS = [r'"[^"]*"', r"\{[^}]*\}", r"\[[^\]]*\]",
                      r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                      r"\b[a-z_]+\s*(?=\()", r"\b(?:and|or|unless|bool|offset)\b", r"\b\d+(?:\.\d+)?(?:e\d+)?\b"]


def metric_names(expr: str) -> set[str]:
    for pattern in PROMQL_NOT_METRICS:
        expr = re.sub(pattern, " ", expr)
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))


def test_grafana_dashboard_charts_the_operators_own_metrics(helm_template, tmp_path):
    assert not rendered(helm_template(), "ConfigMap")
    (config_map,) = rendered(helm_template("grafana.dashboard.enabled=true",
                                           "grafana.dashboard.annotations.grafana_folder=Capacity"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Capacity"}
    dashboard = json.loads(config_map["data"]["quartermaster.json"])
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in panels}
    pool_variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "pool")["definition"]
    exprs["pool variable"] = [re.fullmatch(r"label_values\((\w+), *pool\)", pool_variable).group(1)]
    exported = exported_series()
    named = set()
    for title, queries in exprs.items():
        for expr in queries:
            names = metric_names(expr)
            assert names and names <= exported, f"{title}: {expr} names {names - exported or 'no metric'}"
            named |= names
    # what the issue asks the dashboard to show: forecasts against capacity, actions, accuracy
    assert {"quartermaster_pool_forecast", "quartermaster_pool_capacity", "quartermaster_actions_total",
            "quartermaster_forecast_coverage_ratio", "quartermaster_cycle_duration_seconds_bucket"} <= named
    # and each expression is PromQL that Prometheus parses, with Grafana's variables filled in
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"panel_{i}", "expr": expr.replace("$__rate_interval", "1m").replace("$pool", ".*")}
        for i, expr in enumerate(e for queries in exprs.values() for e in queries)]}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_goes_where_the_sidecar_looks(helm_template):
    (config_map,) = rendered(helm_template("grafana.dashboard.enabled=true", "grafana.dashboard.namespace=monitoring"),
                             "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    (default,) = rendered(helm_template("grafana.dashboard.enabled=true"), "ConfigMap")
    assert default["metadata"]["namespace"] == OPERATOR_NAMESPACE


def mounted_file(pod: dict, path: str) -> tuple[dict, str]:
    """The pod's volume a container path lies in, and the path inside that volume."""
    mount = next(m for m in pod["containers"][0].get("volumeMounts", []) if path.startswith(m["mountPath"] + "/"))
    return next(v for v in pod["volumes"] if v["name"] == mount["name"]), path[len(mount["mountPath"]) + 1:]


def config_map_file(docs: list[dict], path) -> str:
    """What the operator reads at `path` in its pod: the rendered ConfigMap's key mounted there."""
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    volume, key = mounted_file(pod, str(path))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"])
    return config_map["data"][key]


def test_the_price_table_value_reaches_the_operator_as_the_file_it_loads(testbed_bin, tmp_path):
    table = {"currency": "EUR", "default": {"cpuCoreHour": 0.04},
             "overrides": [{"instanceType": "m5.large", "cpuCoreHour": 0.05, "memoryGiBHour": 0.006}]}
    docs = render_values_file(testbed_bin / "helm", tmp_path, {"cost": {"priceTable": table}})
    (tmp_path / "prices.yaml").write_text(config_map_file(docs, _parser().parse_args(operator_args(docs)).price_table))
    loaded = load_price_table(tmp_path / "prices.yaml")  # what the operator reads at start-up
    assert loaded.currency == "EUR"
    assert loaded.prices({"node.kubernetes.io/instance-type": "m5.large"}).core_hour == 0.05
    assert loaded.prices({}).core_hour == 0.04


def test_the_node_pool_providers_value_reaches_the_operator_as_the_file_it_loads(testbed_bin, tmp_path):
    providers = {"kwok": {"pools": {"batch": {"instanceType": "m5.xlarge", "minSize": 0, "maxSize": 10}}}}
    docs = render_values_file(testbed_bin / "helm", tmp_path, {"nodePools": {"providers": providers}})
    (tmp_path / "providers.yaml").write_text(config_map_file(docs, _parser().parse_args(operator_args(docs)).providers))
    assert _provider_options(tmp_path / "providers.yaml") == providers  # what the operator reads at start-up
    # none configured: no flag, no ConfigMap
    assert _parser().parse_args(operator_args(render_values_file(testbed_bin / "helm", tmp_path, {}))).providers is None


def test_an_existing_price_table_config_map_is_mounted_instead(testbed_bin, tmp_path):
    docs = render_values_file(testbed_bin / "helm", tmp_path,
                              {"cost": {"priceTableConfigMap": {"name": "finance-prices", "key": "table.yaml"}}})
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    volume, key = mounted_file(pod, str(_parser().parse_args(operator_args(docs)).price_table))
    assert (volume["configMap"]["name"], key) == ("finance-prices", "table.yaml")
    assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-prices")]


def test_no_price_table_value_keeps_the_operators_defaults(helm_template):
    assert _parser().parse_args(operator_args(helm_template())).price_table is None


def test_provider_credentials_come_from_the_secrets_named(testbed_bin, tmp_path):
    docs = render_values_file(testbed_bin / "helm", tmp_path, {"providerCredentials": {
        "aws": {"secretName": "aws-keys"}, "azure": {"secretName": "azure-sp"},
        "gcp": {"secretName": "gcp-sa", "key": "sa.json"}}})
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert [source["secretRef"]["name"] for source in container["envFrom"]] == ["aws-keys", "azure-sp"]
    key_file = next(e["value"] for e in container["env"] if e["name"] == "GOOGLE_APPLICATION_CREDENTIALS")
    volume, key = mounted_file(pod, key_file)
    assert (volume["secret"]["secretName"], key) == ("gcp-sa", "sa.json")
