"""seen_unseen_curve: AUSUC and the best harmonic mean of a sweep."""
import random

import pytest

from mmpading.evaluation import (
    SeenUnseenPoint,
    area_under_seen_unseen_curve,
    best_harmonic_mean,
    pareto_front,
)


def curve(*pairs):
    return [SeenUnseenPoint(gamma=i / 10, seen=s, unseen=u)
            for i, (s, u) in enumerate(pairs)]


def test_a_model_perfect_on_both_has_area_one():
    assert area_under_seen_unseen_curve(curve((100, 100))) == 1.0


def test_a_linear_trade_off_has_area_one_half():
    points = curve(*[(100 - u, u) for u in range(0, 101, 10)])
    assert area_under_seen_unseen_curve(points) == pytest.approx(0.5)
    random.Random(0).shuffle(points)
    assert area_under_seen_unseen_curve(points) == pytest.approx(0.5)


def test_the_curve_is_closed_at_both_ends():
    # One calibration: the rectangle under it (gamma -> -inf keeps its
    # seen score down to unseen 0; gamma -> +inf drops to seen 0).
    assert area_under_seen_unseen_curve(curve((80, 50))) == \
        pytest.approx(0.4)
    # Two: the left rectangle plus a trapezoid.
    assert area_under_seen_unseen_curve(curve((80, 20), (40, 60))) == \
        pytest.approx(0.8 * 0.2 + 0.4 * (0.8 + 0.4) / 2)


def test_a_better_model_has_a_larger_area():
    worse = curve((60, 0), (50, 10), (20, 30), (0, 40))
    better = curve((60, 0), (55, 20), (30, 40), (0, 50))
    assert area_under_seen_unseen_curve(better) > \
        area_under_seen_unseen_curve(worse)


def test_dominated_calibrations_do_not_count():
    # As on PQ: past its best, a large gamma loses seen and unseen score.
    front = curve((60, 0), (55, 20), (30, 40))
    with_tail = front + [SeenUnseenPoint(0.3, 0, 15),
                         SeenUnseenPoint(0.4, 20, 35),
                         SeenUnseenPoint(0.5, 25, 40)]
    assert pareto_front(with_tail) == front
    assert area_under_seen_unseen_curve(with_tail) == pytest.approx(
        area_under_seen_unseen_curve(front))
    # Sorting by unseen score alone would dip to seen 0 at unseen 15.
    assert area_under_seen_unseen_curve(front) == pytest.approx(
        0.6 * 0.0 + 0.2 * (0.6 + 0.55) / 2 + 0.2 * (0.55 + 0.3) / 2)


def test_best_harmonic_mean_and_ties():
    points = [SeenUnseenPoint(-0.1, 60, 0), SeenUnseenPoint(0.0, 55, 30),
              SeenUnseenPoint(0.2, 40, 45), SeenUnseenPoint(-0.2, 45, 40)]
    best = best_harmonic_mean(points)
    assert best.hm == pytest.approx(2 * 40 * 45 / 85)
    # 45/40 and 40/45 tie: the smaller |gamma| wins.
    assert best.gamma == -0.2 or best.gamma == 0.2
    assert best_harmonic_mean(points[:2]).gamma == 0.0
    assert SeenUnseenPoint(1.0, 50, 0).hm == 0


def test_empty_sweeps_are_refused():
    with pytest.raises(ValueError, match='at least one point'):
        area_under_seen_unseen_curve([])
    with pytest.raises(ValueError, match='at least one point'):
        best_harmonic_mean([])
