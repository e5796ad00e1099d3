"""Term-weight schedules and training stages, evaluated at a fractional epoch ``t``.

A schedule multiplies a term's weight: ``constant`` (1), ``linear:E`` (min(1, t / E), a warm-up
over E epochs), ``cyclical:P:R`` (Fu et al. 2019, cyclical annealing: within each period of P
epochs the factor rises linearly from 0 to 1 over the first fraction R, then stays at 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from cvae.config import Stage, TermName, schedule_spec

Schedule = Callable[[float], float]


def parse_schedule(text: str) -> Schedule:
    """``"linear:10"`` -> a function of the fractional epoch returning the weight factor."""
    kind, values = schedule_spec(text)
    if kind == "linear":
        (epochs,) = values
        return lambda t: min(1.0, t / epochs)
    if kind == "cyclical":
        period, ratio = values
        return lambda t: min(1.0, (t % period) / (period * ratio))
    return lambda t: 1.0


class WeightPlan:
    """Effective term weights at any fractional epoch: base weights, replaced by the current
    stage's weights (if stages are given), times each term's schedule."""

    def __init__(
        self,
        base: Mapping[TermName, float],
        schedules: Mapping[TermName, str],
        stages: Sequence[Stage],
    ) -> None:
        self.base = dict(base)
        self.schedules = {term: parse_schedule(text) for term, text in schedules.items()}
        self.stages = list(stages)

    def weights(self, t: float) -> dict[TermName, float]:
        weights = dict(self.base)
        start = 0
        for stage in self.stages:
            if t < start + stage.epochs:
                weights.update(stage.weights)
                break
            start += stage.epochs
        return {
            k: w * self.schedules[k](t) if k in self.schedules else w for k, w in weights.items()
        }
