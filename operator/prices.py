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

A price an override leaves out is the default's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, ValidationError

from quartermaster.planner.cost import Prices

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


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

    def prices(self, node_labels: Optional[Mapping[str, str]]) -> Prices:
        """The prices on a node with these labels; the default's for no node (a gone pod's)."""
        override = next((o for o in self.overrides if node_labels is not None and o.matches(node_labels)), None)
        base = self.default
        pick = (lambda field: getattr(base, field) if override is None or getattr(override, field) is None
                else getattr(override, field))
        return Prices(pick("cpu_core_hour"), pick("memory_gib_hour"), pick("gpu_hour"))


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
