"""Evaluation of the generalized zero-shot protocols."""
from .functional import (
                         SeenUnseenPoint,
                         area_under_seen_unseen_curve,
                         best_harmonic_mean,
                         pareto_front,
)
from .metrics import (
                         ClassGroups,
                         GZSLInstanceMetric,
                         GZSLPanopticMetric,
                         GZSLSemSegMetric,
                         SeenUnseenSpec,
                         harmonic_mean,
)

__all__ = [
    'GZSLPanopticMetric', 'GZSLInstanceMetric', 'GZSLSemSegMetric',
    'ClassGroups', 'SeenUnseenSpec', 'harmonic_mean', 'SeenUnseenPoint',
    'area_under_seen_unseen_curve', 'best_harmonic_mean', 'pareto_front'
]
