"""Functions of the evaluation that need no data set or model."""
from .seen_unseen_curve import (
                                SeenUnseenPoint,
                                area_under_seen_unseen_curve,
                                best_harmonic_mean,
                                pareto_front,
)

__all__ = [
    'SeenUnseenPoint', 'area_under_seen_unseen_curve', 'best_harmonic_mean',
    'pareto_front'
]
