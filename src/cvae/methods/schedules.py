"""Term-weight schedules and training stages, evaluated at a fractional epoch ``t``.

A schedule multiplies a term's weight: ``constant`` (1), ``linear:E`` (min(1, t / E), a warm-up
over E epochs), ``cyclical:P:R`` (Fu et al. 2019, cyclical annealing: within each period of P
epochs the factor rises linearly from 0 to 1 over the first fraction R, then stays at 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvae.errors import ConfigError

Schedule = Callable[[float], float]


def parse_schedule(text: str) -> Schedule:
    """``"linear:10"`` -> a function of the fractional epoch returning the weight factor."""
    kind, *args = str(text).split(":")
    try:
        values = [float(a) for a in args]
    except ValueError:
        raise ConfigError(f"schedule '{text}': arguments must be numbers") from None
    if kind == "constant" and not values:
        return lambda t: 1.0
    if kind == "linear" and len(values) == 1 and values[0] > 0:
        (epochs,) = values
        return lambda t: min(1.0, t / epochs)
    if kind == "cyclical" and len(values) == 2 and values[0] > 0 and 0 < values[1] <= 1:
        period, ratio = values
        return lambda t: min(1.0, (t % period) / (period * ratio))
    raise ConfigError(
        f"schedule '{text}' is not one of constant, linear:EPOCHS, cyclical:PERIOD:RATIO"
    )


class WeightPlan:
    """Effective term weights at any fractional epoch: base weights, replaced by the current
    stage's weights (if stages are given), times each term's schedule."""

    def __init__(
        self, base: dict[str, float], schedules: dict[str, str], stages: list[dict[str, Any]]
    ) -> None:
        self.base = base
        self.schedules = {term: parse_schedule(text) for term, text in schedules.items()}
        self.stages = stages

    def weights(self, t: float) -> dict[str, float]:
        weights = dict(self.base)
        start = 0
        for stage in self.stages:
            if t < start + stage["epochs"]:
                weights.update({k: float(v) for k, v in stage.get("weights", {}).items()})
                break
            start += stage["epochs"]
        return {
            k: w * self.schedules[k](t) if k in self.schedules else w for k, w in weights.items()
        }
