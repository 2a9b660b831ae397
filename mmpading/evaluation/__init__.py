"""Evaluation of the generalized zero-shot protocols."""
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
    'ClassGroups', 'SeenUnseenSpec', 'harmonic_mean'
]
