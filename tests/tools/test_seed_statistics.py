"""tools/analysis_tools/seed_statistics.py: intervals and paired tests."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
STATS = load_tool_module(
    str(REPO / 'tools' / 'analysis_tools' / 'seed_statistics.py'))


def test_half_width_is_the_student_t_interval():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    # t_{0.975, 9} = 2.2622; s = 3.0277; n = 10.
    assert STATS.t_half_width(values) == pytest.approx(
        2.2622 * 3.0277 / math.sqrt(10), rel=1e-3)
    assert math.isnan(STATS.t_half_width([1.0]))


def test_the_interval_covers_the_mean_about_95_percent_of_the_time():
    rng = random.Random(0)
    trials, covered = 2000, 0
    for _ in range(trials):
        values = [rng.gauss(3.0, 2.0) for _ in range(5)]
        ci = STATS.MeanCI.of(values)
        covered += abs(ci.mean - 3.0) <= ci.half_width
    assert 0.93 < covered / trials < 0.97


def test_mean_ci_skips_missing_values_and_formats():
    ci = STATS.MeanCI.of([2.0, 4.0, math.nan])
    assert (ci.n, ci.mean, ci.std) == (2, 3.0, pytest.approx(math.sqrt(2)))
    assert ci.format() == f'3.0 ± {ci.half_width:.1f}'
    assert STATS.MeanCI.of([]).format() == 'n/a'
    assert STATS.MeanCI.of([5.0]).format() == '5.0'


def test_a_consistent_shift_is_significant_even_with_large_spread():
    rng = random.Random(1)
    lower = {seed: rng.uniform(0, 40) for seed in range(10)}
    upper = {seed: value + 2.0 + rng.uniform(-0.5, 0.5)
             for seed, value in lower.items()}
    result = STATS.paired_comparison(upper, lower)
    assert result.significant and result.verdict() == 'higher'
    assert (result.wins, result.ties, result.n) == (10, 0, 10)
    assert result.mean_diff == pytest.approx(2.0, abs=0.5)
    assert result.wilcoxon_p < 0.01
    assert STATS.paired_comparison(lower, upper).verdict() == 'lower'


def test_noise_is_not_significant():
    rng = random.Random(2)
    lower = {seed: rng.gauss(10, 3) for seed in range(8)}
    upper = {seed: rng.gauss(10, 3) for seed in range(8)}
    result = STATS.paired_comparison(upper, lower)
    assert not result.significant
    assert result.verdict() == 'no significant difference'


def test_degenerate_differences():
    same = STATS.paired_comparison({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert (same.p_value, same.ties) == (1.0, 2)
    assert math.isnan(same.wilcoxon_p)
    shifted = STATS.paired_comparison({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
    assert shifted.p_value == 0.0 and shifted.verdict() == 'higher'


def test_only_shared_seeds_are_paired():
    result = STATS.paired_comparison({0: 1.0, 1: 2.0, 5: 9.0},
                                     {0: 0.0, 1: 0.0, 2: 7.0})
    assert result.n == 2
    with pytest.raises(ValueError, match='at least two seeds'):
        STATS.paired_comparison({0: 1.0}, {0: 0.0, 1: 1.0})
