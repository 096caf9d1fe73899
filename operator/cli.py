"""`quartermaster`: the operator process and its tools.

    quartermaster run [--kubeconfig PATH] [--resync-seconds N] [--liveness-port N [--liveness-host H]]
                      [--metrics-port N [--metrics-host H]] [--peering NAME]
                      [--api-port N [--api-host H] [--api-tls-certificate PEM --api-tls-key PEM]]
                      [--prometheus-url URL] [--prometheus-timeout S] [--metrics-step-seconds N]
                      [--history-seconds N] [--rate-window W] [--cpu-query PROMQL] [--memory-query PROMQL]
                      [--cpu-request-query PROMQL] [--memory-request-query PROMQL] [--gpu-request-query PROMQL]
                      [--cost-step-seconds N] [--price-table FILE]
    quartermaster crds [FOLDER]
    quartermaster status [--kubeconfig PATH] [--context NAME] [-n NS | -A] [-o table|json|yaml]
    quartermaster replay [--csv FILE ...] [--target-per-replica CORES] [--policy POLICY.yaml]
                         [--json OUT] [--plot OUT.png]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from quartermaster.operator import crdgen, replay, settings, status_command
from quartermaster.operator.prices import PriceTable, PriceTableError, load_price_table
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
    run.add_argument("--peering", help="Kopf peering name: pause while a higher-priority peer runs "
                                       "(not leader election; the ClusterKopfPeering must exist). "
                                       "Default: standalone")
    run.add_argument("--verbose", action="store_true")
    crds = commands.add_parser("crds", help="write the CRD manifests generated from the models")
    crds.add_argument("folder", nargs="?", default="crds")
    status_command.add_arguments(commands.add_parser(
        "status", help="a table per kind: pools, policies, quotas and swap plans, from their status",
        epilog="example: quartermaster status -A   (or -o yaml for the objects)"))
    replay.add_arguments(commands.add_parser(
        "replay", help="replay a horizontal ScalingPolicy on recorded demand (CSV), offline"))
    return parser


def run(options: argparse.Namespace) -> int:
    if options.kubeconfig:
        # Kopf logs in through the kubernetes client (in-cluster, else the kubeconfig), which
        # also configures the client our own writes use; the client reads $KUBECONFIG when it
        # is first imported, so set it before anything imports it.
        os.environ["KUBECONFIG"] = options.kubeconfig
    try:
        prices = PriceTable() if options.price_table is None else load_price_table(options.price_table)
    except PriceTableError as error:
        print(f"quartermaster run: {error}", file=sys.stderr)
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
        price_table=prices,
    )
    logging.basicConfig(level=logging.DEBUG if options.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kopf.run(
        clusterwide=True,
        standalone=config.peering is None,
        peering_name=config.peering,
        liveness_endpoint=(f"http://{config.liveness_host}:{config.liveness_port}/healthz"
                           if config.liveness_port else None),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if options.command == "crds":
        for path in crdgen.write_all(Path(options.folder)):
            print(path)
        return 0
    if options.command == "replay":
        return replay.run(options)
    if options.command == "status":
        return status_command.run(options)
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
