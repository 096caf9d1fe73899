"""The four custom resources, as pydantic models: the one source of truth for the CRDs.

`crdgen` turns these into structural OpenAPI v3 schemas; handlers parse objects with them.
Field names are snake_case in Python and camelCase on the wire, as Kubernetes expects.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Callable, ClassVar, Literal, Mapping, Optional

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                      ValidationError, model_validator)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from quartermaster.operator.quantities import to_float
from quartermaster.planner.evictions import DECIDED, EvictionOutcome
from quartermaster.planner.priority import PriorityClass
from quartermaster.planner.waste import FindingKind

GROUP = "quartermaster.dev"
VERSION = "v1alpha1"


class Quantity(str):
    """A Kubernetes quantity ("500m", "4Gi", 2): never negative here.

    The CRD schema marks it int-or-string with the apimachinery pattern (without the
    minus sign), so the apiserver itself rejects "-1" and "lots" naming the field.
    """

    PATTERN: ClassVar[str] = (
        r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE]\+?[0-9]+))?$"
    )
    MAX_LENGTH: ClassVar[int] = 64  # bounds the cost the apiserver estimates for rules that parse one

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        def validate(value):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError("a quantity is a number or a string such as 500m or 4Gi")
            text = str(value)
            if not re.match(cls.PATTERN, text) or len(text) > cls.MAX_LENGTH:
                raise ValueError(f"{text!r} is not a non-negative Kubernetes quantity")
            return cls(text)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        return {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": cls.PATTERN,
            "maxLength": cls.MAX_LENGTH,
            "minimum": 0,
        }


@dataclass(frozen=True)
class Rule:
    """A rule across an object's fields, enforced twice with one message: by the apiserver
    as CEL (`x-kubernetes-validations`, run after the schema's defaults are applied) and by
    the models as `holds` (run after pydantic's defaults, which are the same ones).

    `field` is the wire name of the field the message is about, relative to the object;
    `reason` is the apiserver's error kind ("FieldValueRequired", "FieldValueForbidden"),
    an invalid value when None.
    """

    cel: str
    holds: Callable[[Any], bool]
    field: str
    message: str
    reason: Optional[str] = None

    def x_kubernetes_validation(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message, "fieldPath": f".{self.field}",
                **({"reason": self.reason} if self.reason else {})}


def validation_message(error: ValidationError) -> str:
    """Each error of a spec with its field written as kubectl writes it (`spec.a.b[0].c`)."""
    def path(loc) -> str:
        return "spec" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return "; ".join(f"{path(e['loc'])}: {e['msg']}" for e in error.errors())


def parse_spec(model: type[BaseModel], spec: Mapping) -> BaseModel | str:
    """`spec` as `model`, or the message saying what is wrong with it."""
    try:
        return model.model_validate(spec)
    except ValidationError as error:
        return validation_message(error)


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _obey_rules(self):
        broken = [InitErrorDetails(type=PydanticCustomError("rule", rule.message), loc=(rule.field,), input=self)
                  for rule in self.rules if not rule.holds(self)]
        if broken:
            raise ValidationError.from_exception_data(type(self).__name__, broken)
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        schema = handler(core_schema)
        if cls.rules:
            handler.resolve_ref_schema(schema)["x-kubernetes-validations"] = [
                rule.x_kubernetes_validation() for rule in cls.rules]
        return schema


Fraction = Annotated[float, Field(ge=0, le=1)]
Seconds = NonNegativeInt
Quantile = Annotated[float, Field(gt=0, lt=1)]
HorizonSeconds = Annotated[int, Field(ge=60)]


# ---- shared pieces ----------------------------------------------------------------

class LabelSelectorRequirement(Model):
    """metav1.LabelSelectorRequirement."""

    # The checks the apiserver makes of a real selector's requirements.
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
             lambda r: r.operator not in ("In", "NotIn") or bool(r.values),
             "values", "must be specified when `operator` is 'In' or 'NotIn'", "FieldValueRequired"),
        Rule("self.operator in ['In', 'NotIn'] || !has(self.values) || size(self.values) == 0",
             lambda r: r.operator in ("In", "NotIn") or not r.values,
             "values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
             "FieldValueForbidden"),
    )
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    """metav1.LabelSelector; an empty selector selects everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    # Bounded so that the apiserver's cost estimate for the requirements' rules stays low.
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=64)


class ResourceList(Model):
    """Amounts per resource; the keys the operator accounts for."""

    cpu: Optional[Quantity] = None
    memory: Optional[Quantity] = None
    gpu: Optional[Quantity] = Field(default=None, alias="nvidia.com/gpu")
    pods: Optional[Quantity] = None


class Condition(Model):
    """metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: Optional[int] = None


class ObjectReference(Model):
    name: str = Field(min_length=1)


class Status(Model):
    """What every kind's status carries."""

    observed_generation: Optional[int] = None
    conditions: list[Condition] = Field(default_factory=list)


# Printer columns every kind ends with (SwapPlan, which shows its phase, has no Ready).
READY_COLUMN = {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def kind_columns(*own: dict, ready: bool = True) -> list[dict]:
    """A kind's own columns, then Ready (unless `ready` is false) and Age; fresh dicts each time."""
    return [dict(c) for c in (*own, *([READY_COLUMN] if ready else []), AGE_COLUMN)]


# ---- ResourcePool -------------------------------------------------------------------

class AllocationStrategy(str, Enum):
    CONSERVATIVE = "Conservative"
    BALANCED = "Balanced"
    AGGRESSIVE = "Aggressive"
    ADAPTIVE = "Adaptive"


class PressureLevel(str, Enum):
    NORMAL = "Normal"
    WARNING = "Warning"
    CRITICAL = "Critical"
    EMERGENCY = "Emergency"


class PressureThreshold(Model):
    """Fractions of capacity at which a resource's pressure level rises."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("self.warning < self.critical", lambda t: t.warning < t.critical,
             "critical", "must be greater than warning"),
        Rule("self.critical < self.emergency", lambda t: t.critical < t.emergency,
             "emergency", "must be greater than critical"),
    )
    warning: Fraction = 0.7
    critical: Fraction = 0.85
    emergency: Fraction = 0.95


class PressureThresholds(Model):
    cpu: PressureThreshold = Field(default_factory=PressureThreshold)
    memory: PressureThreshold = Field(default_factory=PressureThreshold)
    gpu: PressureThreshold = Field(default_factory=PressureThreshold, alias="nvidia.com/gpu")
    pods: PressureThreshold = Field(default_factory=PressureThreshold)


class ProviderNodePool(Model):
    # an entry-point name in quartermaster.providers: a third party may add one
    provider: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)
    name: str = Field(min_length=1)
    instance_types: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, description=(
        "Instance types the pool's new nodes may be, by the provider's names: a NodePool policy picks "
        "the cheapest that fits the demand. Empty: the pool's own type."))
    spot_percentage: Optional[Annotated[int, Field(ge=0, le=100)]] = Field(default=None, description=(
        "Share of the pool's new nodes (above the provider's on-demand base) to be spot; on-demand "
        "instead while spot is refused or interrupted. Unset: the pool's own split."))
    spot_retry_seconds: Annotated[int, Field(ge=60)] = Field(default=600, description=(
        "After spot was refused or interrupted, how long new nodes are on-demand before spot is "
        "tried again."))


class WorkloadSelector(Model):
    """Which pods draw on the pool: in these namespaces (all when empty) and matching labels."""

    namespaces: list[str] = Field(default_factory=list)
    namespace_selector: Optional[LabelSelector] = None
    selector: Optional[LabelSelector] = None


# quartermaster-critical's value (planner.priority): the highest evictBelowPriority may
# be, so that pods of the critical class (and the system classes above it) are never evicted.
CRITICAL_PRIORITY = PriorityClass.CRITICAL.kubernetes_value


class PressureActions(Model):
    """What the operator does by itself when a resource of the pool reaches Emergency: nothing
    unless `evictAtEmergency` is set."""

    evict_at_emergency: bool = Field(default=False, description=(
        "Evict member pods of the lowest priority through the Eviction API (PodDisruptionBudgets "
        "respected) while a listed resource is at Emergency, until it is below Critical."))
    resources: list[Literal["cpu", "memory", "nvidia.com/gpu", "pods"]] = Field(
        default_factory=lambda: ["cpu", "memory", "nvidia.com/gpu", "pods"], max_length=4,
        description="The resources whose Emergency evicts.")
    evict_below_priority: int = Field(default=0, le=CRITICAL_PRIORITY, description=(
        "Only pods whose spec.priority is below this are evicted. 0 (the default): quartermaster-low "
        "and other classes below normal; 100000 adds normal and unclassified pods. At most 1000000, "
        "quartermaster-critical's value, so critical pods are never evicted."))
    max_evictions_per_round: Annotated[int, Field(ge=1, le=100)] = Field(
        default=3, description="The most pods evicted in one round.")
    cooldown_seconds: Annotated[int, Field(ge=10)] = Field(
        default=300, description="After a round, the next waits this long, so that the pool settles.")


class ResourcePoolSpec(Model):
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("!has(self.nodeSelector) || !has(self.fixedCapacity)",
             lambda s: s.node_selector is None or s.fixed_capacity is None,
             "fixedCapacity", "may not be specified together with nodeSelector", "FieldValueForbidden"),
    )
    node_selector: Optional[LabelSelector] = Field(
        default=None, description="Nodes whose allocatable capacity forms the pool."
    )
    provider_node_pool: Optional[ProviderNodePool] = None
    fixed_capacity: Optional[ResourceList] = Field(
        default=None, description="A fixed capacity, used instead of selected nodes."
    )
    workloads: WorkloadSelector = Field(default_factory=WorkloadSelector)
    strategy: AllocationStrategy = AllocationStrategy.BALANCED
    pressure_thresholds: PressureThresholds = Field(default_factory=PressureThresholds)
    pressure_actions: PressureActions = Field(default_factory=PressureActions)


class ResourceForecast(Model):
    """One resource's forecast for the pool."""

    resource: str = Field(description='"cpu" or "memory".')
    quantile: Quantile
    horizon_seconds: int
    peak: Quantity = Field(description="The quantile's peak over the horizon.")
    peak_at: Optional[str] = Field(default=None, description="RFC3339.")
    tier: Literal["model", "robust", "default"]
    model: str = Field(default="", description="What produced the forecast, in words.")
    confidence: Optional[Fraction] = None


class GrowthScenario(Model):
    growth_per_month: NonNegativeFloat = Field(description="0.10 for +10 % a month.")
    exhausts_at: Optional[str] = Field(
        default=None, description="RFC3339; absent when not within the horizon looked at.")
    days_left: Optional[NonNegativeFloat] = None


class CapacityProjection(Model):
    resource: str
    trend_per_day: float = Field(
        description="Units of the resource (cores, bytes) per day; negative when shrinking.")
    exhausts_at: Optional[str] = Field(default=None, description="RFC3339.")
    days_left: Optional[NonNegativeFloat] = None
    scenarios: list[GrowthScenario] = Field(default_factory=list, max_length=8)


class ForecastAccuracy(Model):
    resource: str
    coverage: Optional[Fraction] = Field(
        default=None, description="Share of actuals at or under the upper quantile.")
    scaled_error: Optional[NonNegativeFloat] = None
    samples: NonNegativeInt = 0


class PodEviction(Model):
    pod: str = Field(description="namespace/name")
    priority: int = Field(description="its spec.priority")
    priority_class_name: Optional[str] = None
    resource: str = Field(description="the resource at Emergency it was evicted for")
    use: Quantity = Field(description="its share of the figure (requests or usage) that set that resource's pressure")
    outcome: EvictionOutcome = Field(default=DECIDED, description=(
        "Decided: recorded, not yet asked; Refused: a PodDisruptionBudget allowed no disruption; Gone: "
        "the pod no longer existed; Failed: the apiserver refused otherwise (an ActionFailed Event says why)."))


class EvictionRound(Model):
    """A round of pressure evictions, recorded before they are made: the cooldown runs from
    `time`, so an operator that restarts does not evict again."""

    time: str = Field(description="RFC3339")
    pods: list[PodEviction] = Field(default_factory=list, max_length=100)


class ResourcePoolStatus(Status):
    capacity: Optional[ResourceList] = None
    requested: Optional[ResourceList] = None
    used: Optional[ResourceList] = None
    metrics_time: Optional[str] = Field(default=None, description="RFC3339 of the samples `used` is from.")
    forecast: Optional[ResourceList] = None
    forecast_details: list[ResourceForecast] = Field(default_factory=list, max_length=8)
    capacity_plan: list[CapacityProjection] = Field(default_factory=list, max_length=8)
    forecast_accuracy: list[ForecastAccuracy] = Field(default_factory=list, max_length=8)
    free: Optional[ResourceList] = None
    pressure: dict[str, PressureLevel] = Field(default_factory=dict)
    nodes: int = 0
    members: int = Field(default=0, description="Member pods.")
    workloads: NonNegativeInt = Field(default=0, description="Member workloads.")
    last_evictions: Optional[EvictionRound] = None


class ResourcePool(Model):
    kind: ClassVar[str] = "ResourcePool"
    plural: ClassVar[str] = "resourcepools"
    short_names: ClassVar[list[str]] = ["rpool"]
    namespaced: ClassVar[bool] = False
    printer_columns: ClassVar[list[dict]] = kind_columns(
        {"name": "CPU", "type": "string", "jsonPath": ".status.capacity.cpu", "description": "Allocatable CPU"},
        {"name": "CPU-Req", "type": "string", "jsonPath": ".status.requested.cpu"},
        {"name": "Used", "type": "string", "jsonPath": ".status.used.cpu", "description": "CPU in use"},
        {"name": "Forecast", "type": "string", "jsonPath": ".status.forecast.cpu", "description": "CPU forecast"},
        {"name": "Memory", "type": "string", "jsonPath": ".status.capacity.memory"},
        {"name": "Mem-Req", "type": "string", "jsonPath": ".status.requested.memory"},
        {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes"},
        {"name": "Members", "type": "integer", "jsonPath": ".status.members", "description": "Member pods"},
        {"name": "Pressure", "type": "string", "jsonPath": ".status.pressure.cpu"},
        {"name": "Mem-Used", "type": "string", "jsonPath": ".status.used.memory", "priority": 1},
        {"name": "Mem-Forecast", "type": "string", "jsonPath": ".status.forecast.memory", "priority": 1},
        {"name": "Days-Left", "type": "number", "jsonPath": '.status.capacityPlan[?(@.resource=="cpu")].daysLeft',
         "priority": 1, "description": "Days until the pool's CPU runs out"},
        {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy", "priority": 1},
    )
    spec: ResourcePoolSpec = Field(default_factory=ResourcePoolSpec)
    status: Optional[ResourcePoolStatus] = None


# ---- Quota ----------------------------------------------------------------------------

class TeamLabel(Model):
    key: str = Field(min_length=1)
    value: str


class PatternText(str):
    """A string of a given form: the CRD schema holds its pattern, so the apiserver rejects
    a bad one naming the field; the model says what the form is (`FORM`)."""

    PATTERN: ClassVar[str]
    FORM: ClassVar[str]

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        def validate(value):
            if not isinstance(value, str) or not re.match(cls.PATTERN, value):
                raise ValueError(f"{value!r} is not {cls.FORM}")
            return cls(value)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str))

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        return {"type": "string", "pattern": cls.PATTERN}


class LabelValue(PatternText):
    PATTERN: ClassVar[str] = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    FORM: ClassVar[str] = ("a label value: 1 to 63 letters, digits, '-', '_' or '.', beginning and ending with a "
                           "letter or digit")


class QuotaScope(Model):
    namespaces: list[str] = Field(default_factory=list)
    team: Optional[TeamLabel] = None
    user: Optional[LabelValue] = None  # the namespaces labelled quartermaster.dev/user=<user>


class QuotaLimits(Model):
    cpu: Optional[Quantity] = None
    memory: Optional[Quantity] = None
    gpu: Optional[Quantity] = Field(default=None, alias="nvidia.com/gpu")
    pods: Optional[NonNegativeInt] = None
    concurrent_workloads: Optional[NonNegativeInt] = None
    storage: Optional[Quantity] = None


class BorrowableLimits(Model):
    """Amounts of the resources its pods request that a Quota may borrow, lend or reserve."""

    cpu: Optional[Quantity] = None
    memory: Optional[Quantity] = None
    gpu: Optional[Quantity] = Field(default=None, alias="nvidia.com/gpu")
    pods: Optional[NonNegativeInt] = None


class BudgetAction(str, Enum):
    ALERT = "Alert"
    BLOCK = "Block"


class CostBudget(Model):
    daily: Optional[NonNegativeFloat] = None
    monthly: Optional[NonNegativeFloat] = None
    currency: str = "USD"
    action: BudgetAction = Field(default=BudgetAction.ALERT, description=(
        "Alert: conditions and Events only. Block: also, while BudgetExceeded, the ScalingPolicies in the "
        "scope do not scale up (they may scale down)."))


class ContainerAmounts(Model):
    cpu: Optional[Quantity] = None
    memory: Optional[Quantity] = None


class ContainerDefaults(Model):
    """What the LimitRange in each namespace gives a container that does not say."""

    requests: Optional[ContainerAmounts] = None
    limits: Optional[ContainerAmounts] = None


class TimeOfDay(PatternText):
    PATTERN: ClassVar[str] = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
    FORM: ClassVar[str] = "a time of day: HH:MM in UTC, 00:00 to 23:59"

    @property
    def minutes(self) -> int:
        """Minutes after midnight."""
        hours, minutes = self.split(":")
        return int(hours) * 60 + int(minutes)


class Weekday(str, Enum):
    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


class ReservationSchedule(Model):
    """A weekly window, UTC: from `start` to `end` (the next day's when it is not later than
    `start`), on the `days` it starts on (every day when none are given)."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("self.start != self.end", lambda s: s.start != s.end, "end",
             "must differ from start (leave the schedule out for a reservation that always holds)"),
    )
    start: TimeOfDay
    end: TimeOfDay
    days: list[Weekday] = Field(default_factory=list, max_length=7)


class Reservation(Model):
    """Capacity held for the Quota's scope: always, or in its schedule's window."""

    name: Optional[str] = Field(default=None, max_length=63)
    resources: BorrowableLimits
    schedule: Optional[ReservationSchedule] = None


# CEL names a property with characters outside [A-Za-z0-9_] escaped (`.` as __dot__, `/` as __slash__)
_CEL_NAMES = {"cpu": "cpu", "memory": "memory", "nvidia.com/gpu": "nvidia__dot__com__slash__gpu", "pods": "pods"}


def _reserved_within_hard(resource: str, attribute: str) -> Rule:
    """A reservation holds part of the Quota's own limit: `resource` reserved only where
    spec.hard limits it, and no more than that."""
    field = _CEL_NAMES[resource]
    left, right = f"r.resources.{field}", f"self.hard.{field}"
    compare = (f"{left} <= {right}" if resource == "pods"
               else f"quantity(string({left})).compareTo(quantity(string({right}))) <= 0")

    def holds(spec) -> bool:
        limit = getattr(spec.hard, attribute)
        amounts = [getattr(r.resources, attribute) for r in spec.reservations]
        return all(a is None or (limit is not None and to_float(a) <= to_float(limit)) for a in amounts)

    return Rule(f"!has(self.reservations) || self.reservations.all(r, !has({left}) || (has({right}) && {compare}))",
                holds, "reservations",
                f"may not reserve more {resource} than spec.hard.{resource} limits (a reservation holds part of "
                f"the Quota's own limit)")


class QuotaSpec(Model):
    rules: ClassVar[tuple[Rule, ...]] = tuple(
        _reserved_within_hard(resource, attribute) for resource, attribute in (
            ("cpu", "cpu"), ("memory", "memory"), ("nvidia.com/gpu", "gpu"), ("pods", "pods")))
    scope: QuotaScope
    hard: QuotaLimits = Field(default_factory=QuotaLimits)
    defaults: Optional[ContainerDefaults] = None
    budget: Optional[CostBudget] = None
    priority_class: PriorityClass = PriorityClass.NORMAL
    fair_share_weight: PositiveFloat = 1.0
    borrow_idle: bool = False
    borrowing_limit: Optional[BorrowableLimits] = None  # with borrowIdle: the most borrowed, per resource
    lending_limit: Optional[BorrowableLimits] = None  # the most of its idle capacity others may borrow
    reservations: list[Reservation] = Field(default_factory=list, max_length=8)


class CostSpent(Model):
    """Spend as of `asOf`, charged as OpenCost does (max of request and usage × price); the
    forecasts add the last hour's rate for the hours left in the UTC day and month."""

    today: NonNegativeFloat = 0.0
    this_month: NonNegativeFloat = 0.0
    forecast_today: Optional[NonNegativeFloat] = None
    forecast_month: Optional[NonNegativeFloat] = None
    currency: str = "USD"
    as_of: Optional[str] = None


class NamespaceShare(Model):
    """One namespace's part of the Quota's total: what it uses and the hard limit it gets."""

    namespace: str
    used: QuotaLimits
    hard: QuotaLimits


class WasteFinding(Model):
    """A workload in the scope found wasting (planner/waste.py), as of the last cost read."""

    kind: FindingKind
    workload: str = Field(description="namespace/kind/name")
    monthly_saving: Optional[NonNegativeFloat] = Field(default=None, description=(
        "Rightsizing: the month's saving at the recommended requests; Idle: the workload's cost a month."))
    currency: str = "USD"
    recommended: Optional[ResourceList] = Field(default=None, description="Rightsizing: the requests per pod.")
    message: str
    reported: str = Field(description="The UTC day (YYYY-MM-DD) its Event was last filed: one a day.")


class OwnedObject(Model):
    kind: Literal["ResourceQuota", "LimitRange"]
    namespace: str
    name: str


class ReservationState(Model):
    """A reservation as of the last cycle: whether it holds, and for a scheduled one the
    window it is in, or else the next one (UTC)."""

    name: str
    active: bool
    start: Optional[str] = None
    end: Optional[str] = None


# a Quota's status lists at most this many findings (operator/cost.py says which)
FINDINGS_SHOWN = 20


class QuotaStatus(Status):
    usage: Optional[QuotaLimits] = None
    remaining: Optional[QuotaLimits] = None
    split: list[NamespaceShare] = Field(default_factory=list)
    borrowed: Optional[QuotaLimits] = None  # over spec.hard, from other Quotas' idle capacity
    lent: Optional[QuotaLimits] = None  # of spec.hard, to Quotas that borrow
    reservations: Optional[list[ReservationState]] = None
    cost: Optional[CostSpent] = None
    findings: Optional[list[WasteFinding]] = Field(default=None, max_length=FINDINGS_SHOWN)
    owned_objects: list[OwnedObject] = Field(default_factory=list)
    last_action: Optional[LastAction] = None


class Quota(Model):
    kind: ClassVar[str] = "Quota"
    plural: ClassVar[str] = "quotas"
    # `quota` is ResourceQuota's short name; ours must not collide with it.
    short_names: ClassVar[list[str]] = ["qmquota"]
    namespaced: ClassVar[bool] = False
    printer_columns: ClassVar[list[dict]] = kind_columns(
        {"name": "Priority", "type": "string", "jsonPath": ".spec.priorityClass"},
        {"name": "CPU", "type": "string", "jsonPath": ".spec.hard.cpu"},
        {"name": "CPU-Used", "type": "string", "jsonPath": ".status.usage.cpu"},
        {"name": "Budget-Day", "type": "number", "jsonPath": ".spec.budget.daily", "priority": 1},
        {"name": "Spent-Day", "type": "number", "jsonPath": ".status.cost.today", "priority": 1},
    )
    spec: QuotaSpec
    status: Optional[QuotaStatus] = None


# ---- ScalingPolicy ---------------------------------------------------------------------

class ScalingMode(str, Enum):
    REACTIVE = "Reactive"
    PREDICTIVE = "Predictive"
    VERTICAL = "Vertical"


class UpdateMode(str, Enum):
    OFF = "Off"
    AUTO = "Auto"
    IN_PLACE = "InPlace"


class ScaleTargetReference(Model):
    kind: Literal["Deployment", "StatefulSet", "NodePool"]
    name: str = Field(min_length=1)
    api_version: Optional[str] = None


class Signal(Model):
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("!(self.type in ['promql', 'queueDepth']) || (has(self.query) && size(self.query) > 0)",
             lambda s: s.type not in ("promql", "queueDepth") or bool(s.query),
             "query", "must be specified when `type` is 'promql' or 'queueDepth'", "FieldValueRequired"),
    )
    type: Literal["cpu", "memory", "queueDepth", "promql"]
    query: Optional[str] = Field(default=None, description="PromQL, for queueDepth and promql signals.")
    target: Optional[Quantity] = Field(default=None, description="Per-replica target value.")


class ScalingStep(Model):
    step: Annotated[int, Field(ge=1)] = 1
    cooldown_seconds: Seconds = 300


class ForecastSettings(Model):
    """Unset fields come from the strategy of the target's ResourcePool, else 900 s and 0.9."""

    horizon_seconds: Optional[HorizonSeconds] = Field(
        default=None, description="How far ahead to look; default: the pool strategy's horizon, else 900.")
    quantile: Optional[Quantile] = Field(
        default=None, description="The forecast quantile to plan for; default: the pool strategy's, else 0.9.")


class ScalingPolicySpec(Model):
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("self.minReplicas <= self.maxReplicas", lambda s: s.min_replicas <= s.max_replicas,
             "minReplicas", "must not be greater than maxReplicas"),
    )
    target_ref: ScaleTargetReference
    # Bounded so that the apiserver's cost estimate for the signals' rule stays low.
    signals: list[Signal] = Field(min_length=1, max_length=16)
    mode: ScalingMode = ScalingMode.REACTIVE
    min_replicas: NonNegativeInt = 1
    max_replicas: Annotated[int, Field(ge=1)] = 10
    scale_up: ScalingStep = Field(default_factory=ScalingStep)
    scale_down: ScalingStep = Field(default_factory=ScalingStep)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    confidence_threshold: Fraction = 0.6
    update_mode: UpdateMode = Field(default=UpdateMode.AUTO, description=(
        "Off: recommend only. Auto: act (the HPA's bounds; for Vertical, the pod template's "
        "requests). InPlace: as Auto, resizing running pods where the cluster supports it."))


class ContainerRecommendation(Model):
    name: str
    requests: ResourceList


class Recommendation(Model):
    replicas: Optional[int] = None
    requests: Optional[ResourceList] = Field(default=None, description="per pod")
    containers: list[ContainerRecommendation] = Field(default_factory=list)
    instance_type: Optional[str] = Field(default=None, description=(
        "NodePool: the cheapest fitting of the pool's instanceTypes, which its new nodes are."))
    spot_percentage: Optional[int] = Field(default=None, description=(
        "NodePool: the share of new nodes asked to be spot now (0 while falling back to on-demand)."))
    price_per_hour: Optional[float] = Field(default=None, description=(
        "NodePool: the pool's price per hour at the recommended size, type and spot share (USD)."))


class OomKill(Model):
    """The last OOMKill seen in the target's pods: memory stays raised for a day after it."""

    time: str
    pod_peak: Quantity = Field(description="the per-pod memory peak the raise was made from")


class SpotRefusal(Model):
    """NodePool: the latest spot refusal or interruption; new nodes are on-demand for spotRetrySeconds after it."""

    time: str
    cause: str


class LastAction(Model):
    action: str
    time: str


class PolicySettings(Model):
    """What the policy decided with: its own forecast fields, else its pool strategy's."""

    quantile: Quantile
    horizon_seconds: int
    scale_down_delay_seconds: int = Field(description="How long Predictive holds replicas before giving them back.")
    buffer: NonNegativeFloat = Field(description="Vertical: headroom on the forecast requests.")
    source: str = Field(description="Where each came from: the policy, a ResourcePool's strategy, or the defaults.")


class ScalingPolicyStatus(Status):
    current_replicas: Optional[NonNegativeInt] = None
    settings: Optional[PolicySettings] = None
    recommendation: Optional[Recommendation] = None
    confidence: Optional[Fraction] = None
    reasoning: Optional[str] = None
    forecast: list[float] = Field(default_factory=list)
    last_action: Optional[LastAction] = None
    last_oom_kill: Optional[OomKill] = None
    last_spot_refusal: Optional[SpotRefusal] = None


class ScalingPolicy(Model):
    kind: ClassVar[str] = "ScalingPolicy"
    plural: ClassVar[str] = "scalingpolicies"
    short_names: ClassVar[list[str]] = ["spol"]
    namespaced: ClassVar[bool] = True
    printer_columns: ClassVar[list[dict]] = kind_columns(
        {"name": "Target", "type": "string", "jsonPath": ".spec.targetRef.name"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
        {"name": "Current", "type": "integer", "jsonPath": ".status.currentReplicas"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.recommendation.replicas"},
        {"name": "Confidence", "type": "number", "jsonPath": ".status.confidence"},
        {"name": "Update", "type": "string", "jsonPath": ".spec.updateMode", "priority": 1},
    )
    spec: ScalingPolicySpec
    status: Optional[ScalingPolicyStatus] = None


# ---- SwapPlan --------------------------------------------------------------------------

class ApprovalMode(str, Enum):
    DRY_RUN = "DryRun"
    MANUAL = "Manual"
    AUTO = "Auto"


class SwapPhase(str, Enum):
    PENDING = "Pending"
    PLANNED = "Planned"
    APPROVED = "Approved"
    EXECUTING = "Executing"
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class ObjectiveWeights(Model):
    shortfall: NonNegativeFloat = 10.0
    waste: NonNegativeFloat = 1.0
    move: NonNegativeFloat = 0.1


class SwapConstraints(Model):
    max_change_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    min_interval_seconds: Seconds = 600
    min_swap_fraction: Annotated[float, Field(ge=0, le=1, description=(
        "A workload's change of a resource smaller than this share of its requests is not made."))] = 0.05
    max_swaps: Optional[Annotated[int, Field(ge=1)]] = Field(default=None, description=(
        "At most this many workloads' allocations change in one plan."))
    risk_threshold: Fraction = Field(default=0.5, description=(
        "Auto approval takes plans up to this risk; riskier ones wait for a person, as Manual."))
    rollout_timeout_seconds: Annotated[int, Field(ge=30)] = Field(default=600, description=(
        "A workload that has not rolled out to its new requests this long after the change rolls the plan back."))


class RollbackGuard(Model):
    query: str = Field(min_length=1, description="PromQL that is non-empty while the SLO holds.")
    window_seconds: Annotated[int, Field(ge=30)] = 300


class SwapPlanSpec(Model):
    pool_ref: ObjectReference
    horizon_seconds: HorizonSeconds = 1800
    quantile: Quantile = 0.9
    weights: ObjectiveWeights = Field(default_factory=ObjectiveWeights)
    constraints: SwapConstraints = Field(default_factory=SwapConstraints)
    approval: ApprovalMode = ApprovalMode.DRY_RUN
    rollback_guard: Optional[RollbackGuard] = None


class Swap(Model):
    source: str = Field(alias="from")
    to: str
    resource: str
    amount: Quantity


class Objective(Model):
    before: float
    after: float


class SwapHistoryEntry(Model):
    time: str
    phase: SwapPhase
    swaps: int
    plan_id: Optional[str] = None
    message: Optional[str] = None


class ExecutionStep(Model):
    """One workload's change: its containers' requests before (to roll back to) and after."""

    workload: str = Field(description="namespace/Kind/name")
    before: list[ContainerRecommendation]
    after: list[ContainerRecommendation]
    state: Literal["Pending", "Applying", "Applied", "Restoring", "Restored"] = "Pending"
    since: Optional[str] = Field(default=None, description="when the step's change was made")


class Execution(Model):
    plan_id: str
    direction: Literal["Forward", "Back"] = "Forward"
    steps: list[ExecutionStep] = Field(default_factory=list)
    guard_since: Optional[str] = None
    reason: Optional[str] = Field(default=None, description="why it rolls back")


class SwapPlanStatus(Status):
    phase: SwapPhase = SwapPhase.PENDING
    plan_id: Optional[str] = Field(default=None, description=(
        "Approve this plan with: kubectl annotate swapplan NAME quartermaster.dev/approve=<planId>"))
    planned_at: Optional[str] = None
    swaps: list[Swap] = Field(default_factory=list)
    swap_count: Optional[NonNegativeInt] = None
    objective: Optional[Objective] = None
    saving: Optional[float] = Field(default=None, description="objective before minus after")
    risk: Optional[Fraction] = None
    execution: Optional[Execution] = None
    finished_at: Optional[str] = None
    history: list[SwapHistoryEntry] = Field(default_factory=list, max_length=20)


class SwapPlan(Model):
    kind: ClassVar[str] = "SwapPlan"
    plural: ClassVar[str] = "swapplans"
    short_names: ClassVar[list[str]] = ["swplan"]
    namespaced: ClassVar[bool] = False
    printer_columns: ClassVar[list[dict]] = kind_columns(
        {"name": "Pool", "type": "string", "jsonPath": ".spec.poolRef.name"},
        {"name": "Approval", "type": "string", "jsonPath": ".spec.approval"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Swaps", "type": "integer", "jsonPath": ".status.swapCount"},
        {"name": "Risk", "type": "number", "jsonPath": ".status.risk"},
        {"name": "Saving", "type": "number", "jsonPath": ".status.saving"},
        {"name": "Plan", "type": "string", "jsonPath": ".status.planId", "priority": 1},
    )
    spec: SwapPlanSpec
    status: Optional[SwapPlanStatus] = None


KINDS: tuple[type[Model], ...] = (ResourcePool, Quota, ScalingPolicy, SwapPlan)
