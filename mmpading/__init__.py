"""mmpading: PADing zero-shot segmentation for mmdet 3.x / mmseg 1.x.

Importing the package registers every component in the mmdet and mmseg
registries (see :mod:`mmpading.registry`) and applies the compatibility
fixes of :mod:`mmpading.utils.compat` (torch.load) and
:mod:`mmpading.utils.dist_compat` (distributed runs on the CPU).
"""
# Imported for their side effect: registering components.
from . import datasets, engine, evaluation, models, registry, visualization
from .utils import apply_cpu_dist_compat, apply_torch_load_compat
from .version import __version__, version_info

apply_torch_load_compat()
apply_cpu_dist_compat()

__all__ = [
    '__version__', 'version_info', 'registry', 'datasets', 'engine',
    'evaluation', 'models', 'visualization'
]
