"""`quartermaster`: the operator process and its tools.

    quartermaster run [--kubeconfig PATH] [--resync-seconds N] [--liveness-port N [--liveness-host H]]
                      [--metrics-port N [--metrics-host H]] [--peering NAME]
                      [--leader-election [--leader-election-namespace NS] [--leader-election-lease NAME]
                       [--lease-duration-seconds N] [--renew-deadline-seconds S] [--retry-period-seconds S]]
                      [--api-port N [--api-host H] [--api-tls-certificate PEM --api-tls-key PEM]]
                      [--prometheus-url URL] [--prometheus-timeout S] [--metrics-step-seconds N]
                      [--history-seconds N] [--rate-window W] [--cpu-query PROMQL] [--memory-query PROMQL]
                      [--cpu-request-query PROMQL] [--memory-request-query PROMQL] [--gpu-request-query PROMQL]
                      [--cost-step-seconds N] [--price-table FILE] [--providers FILE]
    quartermaster crds [FOLDER]
    quartermaster status [--kubeconfig PATH] [--context NAME] [-n NS | -A] [-o table|json|yaml]
    quartermaster history [KIND/NAME] [--since 2h] [--kubeconfig PATH] [--context NAME] [-n NS | -A]
                          [-o table|json|yaml]
    quartermaster set-quota NAME [--cpu Q] [--memory Q] [--gpu Q] [--priority CLASS] [--kubeconfig PATH]
                            [--context NAME]
    quartermaster export [-o csv|json|yaml] [--kind pool|quota|cost|recommendation|swap ...]
                         [--kubeconfig PATH] [--context NAME] [-n NS | -A]
    quartermaster monitor [--interval S] [--once] [--kubeconfig PATH] [--context NAME] [-n NS | -A]
    quartermaster replay [--csv FILE ...] [--target-per-replica CORES] [--policy POLICY.yaml]
                         [--json OUT] [--plot OUT.png]
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

import yaml
from kubernetes.config import kube_config
from pydantic import ValidationError

from quartermaster.operator import crdgen, leadership, replay, settings, status_command
from quartermaster.operator import export_command, history_command, monitor_command, set_quota_command
from quartermaster.operator.prices import PriceTable, PriceTableError, load_price_table
from quartermaster.operator.leadership import LeaderElectionSettings
from quartermaster.operator.settings import MetricsSettings, OperatorSettings


def _parser() -> argparse.ArgumentParser:
    defaults = OperatorSettings()
    parser = argparse.ArgumentParser(prog="quartermaster")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator against a cluster")
    run.add_argument("--kubeconfig", help="the kubeconfig to use outside a cluster (default: $KUBECONFIG, "
                                          "then ~/.kube/config); in a Pod the service account is used")
    run.add_argument("--resync-seconds", type=float, default=defaults.resync_seconds)
    run.add_argument("--liveness-port", type=int, help="serve /healthz on this port")
    run.add_argument("--liveness-host", default=defaults.liveness_host,
                     help="the address /healthz listens on (default: all)")
    run.add_argument("--metrics-port", type=int, help="serve the operator's own /metrics on this port")
    run.add_argument("--metrics-host", default=defaults.metrics_host,
                     help="the address /metrics listens on (default: all)")
    run.add_argument("--api-port", type=int, help="serve the REST API (forecasts, swaps) on this port")
    run.add_argument("--api-host", default=defaults.api_host, help="the address the REST API listens on (default: all)")
    run.add_argument("--api-tls-certificate", help="serve the REST API over HTTPS with this certificate (PEM)")
    run.add_argument("--api-tls-key", help="the certificate's private key (PEM)")
    usage = defaults.metrics
    run.add_argument("--prometheus-url", help="the Prometheus that holds the workloads' usage "
                                              "(e.g. http://prometheus.monitoring:9090); without it no usage is read")
    run.add_argument("--prometheus-timeout", type=float, default=usage.timeout_seconds,
                     help="seconds one range query may take")
    run.add_argument("--metrics-step-seconds", type=int, default=usage.step_seconds,
                     help="resolution of the usage history")
    run.add_argument("--history-seconds", type=int, default=usage.history_seconds,
                     help="how much usage history the forecasts see")
    run.add_argument("--rate-window", default=usage.rate_window, help="the cpu query's rate() window")
    run.add_argument("--cpu-query", default=usage.cpu_query,
                     help="PromQL template: cores per pod, labelled namespace and pod; ${namespaces} "
                          "and ${window} are filled in")
    run.add_argument("--memory-query", default=usage.memory_query,
                     help="PromQL template: working-set bytes per pod, labelled namespace and pod")
    for resource, unit in (("cpu", "cores"), ("memory", "bytes"), ("gpu", "GPUs")):
        run.add_argument(f"--{resource}-request-query", default=getattr(usage, f"{resource}_request_query"),
                         help=f"PromQL template: requested {unit} per pod (kube-state-metrics), for cost")
    run.add_argument("--cost-step-seconds", type=int, default=usage.cost_step_seconds,
                     help="the resolution cost is read from Prometheus at")
    run.add_argument("--price-table", type=Path, help="YAML: prices per core-, GiB- and GPU-hour, overridden "
                                                      "per node label or instance type (default: OpenCost's)")
    run.add_argument("--providers", type=Path, help="YAML: each node-pool provider's options by its name "
                                                    "(kwok: its pools' instanceType, minSize, maxSize)")
    run.add_argument("--peering", help="Kopf peering name: pause while a higher-priority peer runs "
                                       "(not leader election; the ClusterKopfPeering must exist). "
                                       "Default: standalone")
    run.add_argument("--leader-election", action="store_true",
                     help="stand by until this process holds a coordination.k8s.io Lease, then run; "
                          "exit when it is lost (run several replicas, one acts)")
    run.add_argument("--leader-election-namespace",
                     help="the Lease's namespace (default: the pod's own, from its service account)")
    election = LeaderElectionSettings.model_fields
    run.add_argument("--leader-election-lease", default=election["lease_name"].default, help="the Lease's name")
    run.add_argument("--lease-duration-seconds", type=int, default=election["lease_duration_seconds"].default,
                     help="a standby takes over once the Lease has not been renewed for this long")
    run.add_argument("--renew-deadline-seconds", type=float, default=election["renew_deadline_seconds"].default,
                     help="the leader exits once it has not renewed the Lease for this long")
    run.add_argument("--retry-period-seconds", type=float, default=election["retry_period_seconds"].default,
                     help="how often to try to take or renew the Lease")
    run.add_argument("--verbose", action="store_true")
    crds = commands.add_parser("crds", help="write the CRD manifests generated from the models")
    crds.add_argument("folder", nargs="?", default="crds")
    status_command.add_arguments(commands.add_parser(
        "status", help="a table per kind: pools, policies, quotas and swap plans, from their status",
        epilog="example: quartermaster status -A   (or -o yaml for the objects)"))
    history_command.add_arguments(commands.add_parser(
        "history", help="the operator's decisions and actions, newest first, from Events and status",
        epilog="example: quartermaster history spol/web --since 2h -n shop"))
    set_quota_command.add_arguments(commands.add_parser(
        "set-quota", help="change a Quota's limits or priority class (server-side apply, only the fields given)",
        epilog="example: quartermaster set-quota team-a --cpu 30 --memory 64Gi --priority critical"))
    export_command.add_arguments(commands.add_parser(
        "export", help="recommendations, pools' capacity and forecasts, quotas' usage and cost, swaps: "
                       "flat rows for reports (CSV, JSON, YAML)",
        epilog="example: quartermaster export -A --kind recommendation --kind swap > report.csv"))
    monitor_command.add_arguments(commands.add_parser(
        "monitor", help="a live view: pools' load and forecast against capacity, recent actions (Ctrl-C quits)",
        epilog="example: quartermaster monitor --interval 2   (quartermaster monitor --once | less: plain lines)"))
    replay.add_arguments(commands.add_parser(
        "replay", help="replay a horizontal ScalingPolicy on recorded demand (CSV), offline"))
    return parser


def run(options: argparse.Namespace) -> int:
    if options.kubeconfig:
        # Kopf logs in through the kubernetes client (in-cluster, else the kubeconfig), which
        # also configures the client our own writes use. The client takes $KUBECONFIG's value
        # as its default when first imported, and this module's imports (leadership) already
        # have imported it: tell it the path itself too.
        os.environ["KUBECONFIG"] = options.kubeconfig
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = options.kubeconfig
    try:
        prices = PriceTable() if options.price_table is None else load_price_table(options.price_table)
    except PriceTableError as error:
        print(f"quartermaster run: {error}", file=sys.stderr)
        return 2
    providers = {} if options.providers is None else _provider_options(options.providers)
    if isinstance(providers, str):
        print(f"quartermaster run: {providers}", file=sys.stderr)
        return 2
    import kopf

    from quartermaster.operator import handlers  # noqa: F401  (registers the handlers)

    settings.current = config = OperatorSettings(
        resync_seconds=options.resync_seconds, liveness_port=options.liveness_port,
        liveness_host=options.liveness_host, metrics_port=options.metrics_port,
        metrics_host=options.metrics_host, peering=options.peering, api_port=options.api_port,
        api_host=options.api_host, api_tls_certificate=options.api_tls_certificate, api_tls_key=options.api_tls_key,
        metrics=MetricsSettings(
            prometheus_url=options.prometheus_url, timeout_seconds=options.prometheus_timeout,
            step_seconds=options.metrics_step_seconds, history_seconds=options.history_seconds,
            rate_window=options.rate_window, cpu_query=options.cpu_query, memory_query=options.memory_query,
            cpu_request_query=options.cpu_request_query, memory_request_query=options.memory_request_query,
            gpu_request_query=options.gpu_request_query, cost_step_seconds=options.cost_step_seconds),
        price_table=prices, providers=providers,
    )
    logging.basicConfig(level=logging.DEBUG if options.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    elector = None
    if options.leader_election:
        elector = _leader_elector(options)
        if isinstance(elector, str):
            print(f"quartermaster run: {elector}", file=sys.stderr)
            return 2
        with (leadership.StandbyHealth(elector, config.liveness_host, config.liveness_port)
              if config.liveness_port else contextlib.nullcontext()):
            elector.wait_until_leading()
        elector.keep_renewing()
    try:
        kopf.run(
            clusterwide=True,
            standalone=config.peering is None,
            peering_name=config.peering,
            liveness_endpoint=(f"http://{config.liveness_host}:{config.liveness_port}/healthz"
                               if config.liveness_port else None),
        )
    finally:
        if elector is not None:
            elector.release()
    return 0


def _provider_options(path: Path) -> dict[str, dict] | str:
    """The --providers file: a mapping of provider names to their options; or what is wrong with it."""
    try:
        options = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        return f"--providers {path}: {error}"
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        return f"--providers {path}: expected a mapping of provider names to their options"
    return options


def _leader_elector(options: argparse.Namespace) -> leadership.LeaderElector | str:
    """The elector `run --leader-election` asks for, or what is wrong with its flags."""
    if options.peering:
        return "--leader-election and --peering exclude each other: with a Lease, Kopf runs standalone"
    namespace = options.leader_election_namespace or leadership.pod_namespace()
    if not namespace:
        return "--leader-election-namespace is needed outside a cluster (in a pod it is the pod's namespace)"
    try:
        election = LeaderElectionSettings(
            lease_name=options.leader_election_lease, lease_namespace=namespace,
            lease_duration_seconds=options.lease_duration_seconds,
            renew_deadline_seconds=options.renew_deadline_seconds,
            retry_period_seconds=options.retry_period_seconds)
    except ValidationError as error:
        flags = {"lease_name": "--leader-election-lease", "lease_namespace": "--leader-election-namespace"}
        return "; ".join(
            f"{flags.get(e['loc'][0], '--' + str(e['loc'][0]).replace('_', '-'))}: {e['msg']}" if e["loc"]
            else e["msg"].removeprefix("Value error, ") for e in error.errors())
    return leadership.LeaderElector(election, leadership.lease_api())


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if options.command == "crds":
        for path in crdgen.write_all(Path(options.folder)):
            print(path)
        return 0
    commands = {"replay": replay.run, "status": status_command.run, "history": history_command.run,
                "set-quota": set_quota_command.run, "export": export_command.run, "monitor": monitor_command.run}
    return commands.get(options.command, run)(options)


if __name__ == "__main__":
    sys.exit(main())
