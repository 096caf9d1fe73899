"""The price table cost is charged at: OpenCost's published defaults, overridden per node
label or instance type from a YAML file (`quartermaster run --price-table FILE`; in the
chart, a ConfigMap mounted as that file).

    currency: USD
    default: {cpuCoreHour: 0.031611, memoryGiBHour: 0.004237, gpuHour: 0.95}
    overrides:                       # the first that matches a pod's node wins
      - instanceType: m5.large       # node.kubernetes.io/instance-type
        cpuCoreHour: 0.048
      - nodeSelector: {karpenter.sh/capacity-type: spot}
        cpuCoreHour: 0.012
        memoryGiBHour: 0.0016

A price an override leaves out is the default's. A node no override matches whose
instance type the providers' table lists (providers/instance_types.yaml) is charged at
that type's list price, on-demand or spot as its labels say (`instanceTypePrices: false`
turns this off): the node's hourly price spread over what it offers pods in proportion
to the default prices, as OpenCost splits a cloud node's price between CPU and memory, so
that its whole allocatable costs exactly its list price.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Mapping, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, ValidationError

from quartermaster.planner.cost import GIB, Prices
from quartermaster.providers.interface import InstanceType, table_instance_types

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Labels that mark a spot (preemptible) node: Karpenter's (and the kwok provider's), EKS
# managed node groups', GKE's two and AKS's.
SPOT_LABELS = {"karpenter.sh/capacity-type": "spot", "eks.amazonaws.com/capacityType": "SPOT",
               "cloud.google.com/gke-spot": "true", "cloud.google.com/gke-preemptible": "true",
               "kubernetes.azure.com/scalesetpriority": "spot"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class HourlyPrices(_Strict):
    cpu_core_hour: NonNegativeFloat = Field(default=Prices.core_hour, alias="cpuCoreHour")
    memory_gib_hour: NonNegativeFloat = Field(default=Prices.gib_hour, alias="memoryGiBHour")
    gpu_hour: NonNegativeFloat = Field(default=Prices.gpu_hour, alias="gpuHour")


class PriceOverride(_Strict):
    instance_type: Optional[str] = Field(default=None, alias="instanceType", min_length=1)
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    cpu_core_hour: Optional[NonNegativeFloat] = Field(default=None, alias="cpuCoreHour")
    memory_gib_hour: Optional[NonNegativeFloat] = Field(default=None, alias="memoryGiBHour")
    gpu_hour: Optional[NonNegativeFloat] = Field(default=None, alias="gpuHour")

    def matches(self, labels: Mapping[str, str]) -> bool:
        wanted = {**self.node_selector, **({INSTANCE_TYPE_LABEL: self.instance_type} if self.instance_type else {})}
        return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


class PriceTable(_Strict):
    currency: str = Field(default="USD", min_length=1)
    default: HourlyPrices = Field(default_factory=HourlyPrices)
    overrides: list[PriceOverride] = Field(default_factory=list)
    instance_type_prices: bool = Field(default=True, alias="instanceTypePrices")

    def prices(self, node_labels: Optional[Mapping[str, str]]) -> Prices:
        """The prices on a node with these labels: the first matching override's, else its
        instance type's list price (``node_prices``), else the default's; the default's
        for no node (a gone pod's)."""
        base = self.default
        default = Prices(base.cpu_core_hour, base.memory_gib_hour, base.gpu_hour)
        override = next((o for o in self.overrides if node_labels is not None and o.matches(node_labels)), None)
        if override is None:
            kind = instance_types().get((node_labels or {}).get(INSTANCE_TYPE_LABEL, ""))
            if kind is None or not self.instance_type_prices:
                return default
            spot = any(node_labels.get(key) == value for key, value in SPOT_LABELS.items())
            return node_prices(kind, spot, default)
        pick = (lambda field: getattr(base, field) if getattr(override, field) is None else getattr(override, field))
        return Prices(pick("cpu_core_hour"), pick("memory_gib_hour"), pick("gpu_hour"))


@cache
def instance_types() -> dict[str, InstanceType]:
    """Every instance type of the providers' table, by name (names do not repeat across clouds)."""
    return {kind.name: kind for catalogue in ("aws", "gcp", "azure") for kind in table_instance_types(catalogue)}


def node_prices(kind: InstanceType, spot: bool, default: Prices) -> Prices:
    """Unit prices on a node of this type: the default prices scaled so that the node's
    allocatable cpu, memory and GPUs together cost its hourly list price (spot or on-demand)."""
    price = kind.price(1.0 if spot else 0.0)
    offered = kind.allocatable
    worth = (offered.get("cpu", 0.0) * default.core_hour + offered.get("memory", 0.0) / GIB * default.gib_hour
             + offered.get("nvidia.com/gpu", 0.0) * default.gpu_hour)
    scale = price / worth if worth > 0 else 1.0
    return Prices(default.core_hour * scale, default.gib_hour * scale, default.gpu_hour * scale)


class PriceTableError(ValueError):
    pass


def load_price_table(path: Path) -> PriceTable:
    """The table in `path`; PriceTableError saying what is wrong with it otherwise."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise PriceTableError(f"cannot read the price table {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PriceTableError(f"the price table {path} is not YAML: {error}") from None
    if not isinstance(data, dict):
        raise PriceTableError(f"the price table {path} must be a mapping (currency, default, overrides)")
    try:
        table = PriceTable.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors())
        raise PriceTableError(f"the price table {path}: {problems}") from None
    empty = [i for i, o in enumerate(table.overrides) if not o.instance_type and not o.node_selector]
    if empty:
        raise PriceTableError(f"the price table {path}: overrides[{empty[0]}] needs instanceType or nodeSelector")
    return table
