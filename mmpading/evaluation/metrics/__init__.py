"""Generalized zero-shot metrics (seen / unseen / harmonic mean)."""
from .gzsl_instance_metric import GZSLInstanceMetric
from .gzsl_panoptic_metric import GZSLPanopticMetric
from .gzsl_semseg_metric import GZSLSemSegMetric
from .gzsl_utils import ClassGroups, SeenUnseenSpec, harmonic_mean

__all__ = [
    'GZSLPanopticMetric', 'GZSLInstanceMetric', 'GZSLSemSegMetric',
    'ClassGroups', 'SeenUnseenSpec', 'harmonic_mean'
]
