"""The switches of the model tier's layers: one typed, frozen settings object the engine is
given, so a layer can be turned off for one call (the ablation benchmark, the tests that
pin each layer) without touching module state."""
from __future__ import annotations

from dataclasses import dataclass

from .calibration import ANCHOR_SHARES
from .selection import TOLERANCE

# Share of the analogs' forecast in each quantile of a model-tier forecast: an equal
# average of the two, the combination that needs no weights estimated.
ANALOG_WEIGHT = 0.5
# A seasonal model's deviation from its profile is held, or fades by these factors per step.
SEASONAL_DAMPINGS = (1.0, 0.8)


@dataclass(frozen=True)
class ForecastOptions:
    """How the model tier forecasts; the defaults are the product's settings.

    ensemble_tolerance: models whose backtest loss is within this factor of the best one
        are combined (1.0: the best model alone).
    seasonal_dampings: the factors by which a seasonal model's deviation fades per step.
    anchor_shares: the shares of the way from the point forecast to the last value a
        quantile's anchor may take ((0.0,): always the point forecast).
    analog_weight: the analogs' share in each quantile (0: no analogs).
    only_model: use only the model variant so described, on every series (None: all
        eligible ones), as in "daily seasonal profile (median of 3 cycles)".
    without_models: leave out the model variants so described.
    """

    ensemble_tolerance: float = TOLERANCE
    seasonal_dampings: tuple[float, ...] = SEASONAL_DAMPINGS
    anchor_shares: tuple[float, ...] = ANCHOR_SHARES
    analog_weight: float = ANALOG_WEIGHT
    only_model: str | None = None
    without_models: tuple[str, ...] = ()
