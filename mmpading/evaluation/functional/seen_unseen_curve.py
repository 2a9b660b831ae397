"""The seen / unseen trade-off curve and the area under it (AUSUC).

Generalized zero-shot models trade seen accuracy for unseen accuracy: a
calibration constant γ subtracted from the seen scores
(``UniversalFusionHead.calibration_gamma``) moves a model along a curve
from "never predicts an unseen class" (γ → −∞) to "never predicts a seen
class" (γ → +∞). Chao et al., "An Empirical Study and Analysis of
Generalized Zero-Shot Learning for Object Recognition in the Wild" (ECCV
2016) summarise that curve by the area under it, AUSUC, which does not
depend on one γ.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..metrics import harmonic_mean


@dataclass(frozen=True)
class SeenUnseenPoint:
    """One calibration's seen and unseen score (in %, as the metrics
    print them).

    Attributes:
        gamma (float): The calibration constant.
        seen (float): Score on the seen classes.
        unseen (float): Score on the unseen classes.
    """
    gamma: float
    seen: float
    unseen: float

    @property
    def hm(self) -> float:
        """Their harmonic mean (0 when either is 0)."""
        return harmonic_mean(self.seen, self.unseen)


def pareto_front(points: Sequence[SeenUnseenPoint]) -> list[SeenUnseenPoint]:
    """The calibrations no other one beats on both scores, by unseen score.

    Args:
        points (Sequence[SeenUnseenPoint]): A sweep.

    Returns:
        list[SeenUnseenPoint]: Its Pareto-optimal points in ascending
        unseen (so descending seen) order.
    """
    front: list[SeenUnseenPoint] = []
    best_seen = -1.0
    # From the highest unseen score down, a point stays if it is the best
    # seen score so far (of equal unseen scores, the higher seen one).
    for point in sorted(points, key=lambda p: (-p.unseen, -p.seen)):
        if point.seen > best_seen:
            front.append(point)
            best_seen = point.seen
    return front[::-1]


def area_under_seen_unseen_curve(points: Sequence[SeenUnseenPoint]) -> float:
    """AUSUC of a calibration sweep, in [0, 1].

    Chao et al. trace seen against unseen accuracy as γ runs from −∞ to
    +∞, a curve on which a larger γ never lowers the unseen accuracy.
    Segmentation scores are not so tidy: at large γ every seen segment
    turns into an unseen false positive and unseen PQ falls again. The
    area is therefore taken under the sweep's Pareto front
    (:func:`pareto_front`; on an accuracy curve, every point), joined by
    straight lines (trapezoids on the unseen axis, scores as fractions of
    100) and closed as Chao et al.'s curve is: at the left by the front's
    best seen score down to unseen 0, at the right by a drop to seen 0 at
    its best unseen score. A sweep whose extremes reach those ends (for
    calibrated probabilities: γ ≤ −1 and γ ≥ 1) measures the whole area.

    Args:
        points (Sequence[SeenUnseenPoint]): At least one calibration.

    Returns:
        float: The area; 1 for a model perfect on both at some γ.
    """
    if not points:
        raise ValueError('the curve needs at least one point')
    front = pareto_front(points)
    xs = [0.0] + [p.unseen / 100 for p in front]
    ys = [front[0].seen / 100] + [p.seen / 100 for p in front]
    return sum((x1 - x0) * (y0 + y1) / 2
               for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))


def best_harmonic_mean(points: Sequence[SeenUnseenPoint]) -> SeenUnseenPoint:
    """The calibration with the highest harmonic mean (the smallest |γ|
    among equals)."""
    if not points:
        raise ValueError('the curve needs at least one point')
    return max(points, key=lambda p: (p.hm, -abs(p.gamma)))
