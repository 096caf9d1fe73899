"""The operator's settings: typed objects, set from the command line (`quartermaster run`)
and passed to the control cycle."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from quartermaster.operator.prices import PriceTable

# cAdvisor's names, as the kubelet exports them and the test bed backfills them. A template
# must return one series per pod, labelled `namespace` and `pod`; `${namespaces}` becomes
# a regex of the namespaces the cycle needs, `${window}` the rate window (e.g. "10m").
DEFAULT_CPU_QUERY = ('sum by (namespace, pod) (rate(container_cpu_usage_seconds_total'
                     '{container!="", container!="POD", namespace=~"${namespaces}"}[${window}]))')
DEFAULT_MEMORY_QUERY = ('sum by (namespace, pod) (container_memory_working_set_bytes'
                        '{container!="", container!="POD", namespace=~"${namespaces}"})')
# kube-state-metrics' requests per pod, which cost is charged for when above usage.
DEFAULT_REQUEST_QUERIES = {
    resource: ('sum by (namespace, pod) (kube_pod_container_resource_requests'
               f'{{resource="{name}", unit="{unit}", namespace=~"${{namespaces}}"}})')
    for resource, name, unit in (("cpu", "cpu", "core"), ("memory", "memory", "byte"),
                                 ("gpu", "nvidia_com_gpu", "integer"))}


class MetricsSettings(BaseModel):
    """Where usage comes from and how much of it the cycle keeps."""

    prometheus_url: Optional[str] = Field(
        default=None, description="Prometheus's base URL; None: no usage is read (MetricsAvailable=False).")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per range query.")
    step_seconds: int = Field(default=300, ge=1, description="The history's resolution.")
    history_seconds: int = Field(default=7 * 86400, ge=60, description="How much history forecasts see.")
    rate_window: str = Field(default="10m", description="The window of rate() in the cpu template.")
    cpu_query: str = DEFAULT_CPU_QUERY
    memory_query: str = DEFAULT_MEMORY_QUERY
    cpu_request_query: str = DEFAULT_REQUEST_QUERIES["cpu"]
    memory_request_query: str = DEFAULT_REQUEST_QUERIES["memory"]
    gpu_request_query: str = DEFAULT_REQUEST_QUERIES["gpu"]
    cost_step_seconds: int = Field(default=3600, ge=60, description="The resolution cost is read at.")
    cost_lookback_seconds: int = Field(default=7 * 86400, ge=3600,
                                       description="Cost is read from this long ago or the month's start, "
                                                   "whichever is earlier.")
    # Samples older than this many steps do not count as current usage (stale data).
    max_age_steps: int = Field(default=3, ge=1)
    # Prometheus refuses more than 11,000 points per series in one range query.
    max_points_per_series: int = Field(default=11_000, ge=2)
    # Bounds the JSON of one range query (series x points), and so the operator's memory.
    max_samples_per_query: int = Field(default=350_000, ge=1_000)


class OperatorSettings(BaseModel):
    resync_seconds: float = Field(default=60.0, gt=0, description="Run the cycle at least this often.")
    debounce_seconds: float = Field(default=1.0, ge=0, description="Coalesce bursts of cluster changes.")
    liveness_port: Optional[int] = Field(default=None, ge=1, le=65535)
    liveness_host: str = Field(default="0.0.0.0", description="The address /healthz listens on.")
    metrics_port: Optional[int] = Field(default=None, ge=1, le=65535, description="Serve /metrics here.")
    metrics_host: str = Field(default="0.0.0.0", description="The address /metrics listens on.")
    api_port: Optional[int] = Field(default=None, ge=1, le=65535, description="Serve the REST API here.")
    api_host: str = Field(default="0.0.0.0", description="The address the REST API listens on.")
    api_tls_certificate: Optional[str] = Field(default=None, description="PEM file; with the key, serve HTTPS.")
    api_tls_key: Optional[str] = None
    peering: Optional[str] = Field(default=None, description="Kopf peering name; None runs standalone.")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    price_table: PriceTable = Field(default_factory=PriceTable)
    providers: dict[str, dict] = Field(default_factory=dict, description=(
        "Each node-pool provider's options by its entry-point name (kwok: its pools), from --providers."))


# Set once by the CLI before Kopf starts; the start-up handler hands it to the cycle.
current = OperatorSettings()
