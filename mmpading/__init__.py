"""mmpading: PADing zero-shot segmentation for mmdet 3.x / mmseg 1.x.

``import mmpading`` (or ``custom_imports=dict(imports=['mmpading'])`` in a
config) registers every component in the mmdet and mmseg registries (see
:mod:`mmpading.registry`) and applies one narrowly scoped fix that any
user of them needs: loading mmengine checkpoints under torch's
``weights_only`` default (:mod:`mmpading.utils.compat`). It changes nothing
else in the process.

Process-wide set-up is explicit, as in mmdet's tools: a tool or script that
may run distributed on the CPU calls
:func:`mmpading.utils.setup_cpu_distributed` (mmengine's launchers and DDP
wrappers without a GPU; :mod:`mmpading.utils.dist_compat`) before it builds
the Runner; ``tools/train.py`` and ``tools/test.py`` do.
"""
# Imported for their side effect: registering components.
from . import datasets, engine, evaluation, models, registry, visualization
from .utils import apply_torch_load_compat
from .version import __version__, version_info

apply_torch_load_compat()

__all__ = [
    '__version__', 'version_info', 'registry', 'datasets', 'engine',
    'evaluation', 'models', 'visualization'
]
