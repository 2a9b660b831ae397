"""Statistics over seeds for the toy studies: means with 95% confidence
intervals and paired comparisons of two settings run with the same seeds.

A shared module of tools/analysis_tools (no ``__main__``): the scripts
import it by name.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
# A paired difference is called significant below this two-sided p-value.
ALPHA = 0.05


def t_half_width(values: Sequence[float],
                 confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t confidence interval of the mean.

    Args:
        values (Sequence[float]): One value per seed.
        confidence (float): Coverage of the interval.

    Returns:
        float: ``t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)``; NaN for
        fewer than two values.
    """
    values = [float(v) for v in values]
    if len(values) < 2:
        return math.nan
    quantile = stats.t.ppf((1 + confidence) / 2, len(values) - 1)
    return float(quantile * statistics.stdev(values) / math.sqrt(len(values)))


@dataclass(frozen=True)
class MeanCI:
    """Mean, sample std (n - 1) and 95% CI half-width of seed values."""
    mean: float
    std: float
    half_width: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> MeanCI:
        values = [float(v) for v in values if not math.isnan(float(v))]
        if not values:
            return cls(math.nan, math.nan, math.nan, 0)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, t_half_width(values),
                   len(values))

    def format(self) -> str:
        """``mean ± half-width`` (one decimal); ``n/a`` without values."""
        if self.n == 0:
            return 'n/a'
        if math.isnan(self.half_width):
            return f'{self.mean:.1f}'
        return f'{self.mean:.1f} ± {self.half_width:.1f}'


@dataclass(frozen=True)
class PairedComparison:
    """``upper - lower`` over the seeds both settings ran with.

    Attributes:
        mean_diff (float): Mean of the per-seed differences.
        half_width (float): 95% CI half-width of that mean.
        p_value (float): Two-sided paired t-test (1.0 when every
            difference is 0; 0.0 when they are all the same non-zero value).
        wilcoxon_p (float): Two-sided Wilcoxon signed-rank test (exact for
            small n; NaN when every difference is 0).
        wins (int): Seeds where ``upper > lower``.
        ties (int): Seeds where they are equal.
        n (int): Paired seeds.
    """
    mean_diff: float
    half_width: float
    p_value: float
    wilcoxon_p: float
    wins: int
    ties: int
    n: int

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def verdict(self) -> str:
        """``'higher'``, ``'lower'`` or ``'no significant difference'``."""
        if not self.significant:
            return 'no significant difference'
        return 'higher' if self.mean_diff > 0 else 'lower'


def paired_comparison(upper: dict[int, float],
                      lower: dict[int, float]) -> PairedComparison:
    """Compare two settings seed by seed.

    Args:
        upper (dict[int, float]): ``{seed: value}`` of one setting.
        lower (dict[int, float]): The same for the other.

    Returns:
        PairedComparison: Over the seeds both have.

    Raises:
        ValueError: Fewer than two shared seeds.
    """
    seeds = sorted(set(upper) & set(lower))
    if len(seeds) < 2:
        raise ValueError('a paired comparison needs at least two seeds both '
                         f'settings ran with, got {seeds}')
    diffs = [float(upper[s]) - float(lower[s]) for s in seeds]
    spread = statistics.stdev(diffs)
    mean_diff = statistics.fmean(diffs)
    if spread == 0:
        p_value = 1.0 if mean_diff == 0 else 0.0
    else:
        p_value = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    if all(d == 0 for d in diffs):
        wilcoxon_p = math.nan
    else:
        wilcoxon_p = float(stats.wilcoxon(diffs).pvalue)
    return PairedComparison(
        mean_diff=mean_diff, half_width=t_half_width(diffs),
        p_value=p_value, wilcoxon_p=wilcoxon_p,
        wins=sum(d > 0 for d in diffs), ties=sum(d == 0 for d in diffs),
        n=len(seeds))
