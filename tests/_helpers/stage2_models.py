"""Stage-2 models built outside a Runner, given their data set's classes."""
from __future__ import annotations

from mmengine.config import Config
from torch import nn

from mmpading.apis.model_loading import config_dataset_meta
from mmpading.models.utils.stage2 import set_dataset_meta
from mmpading.registry import UPSTREAM_SCOPES


def build_with_dataset_meta(cfg: Config, split: str = 'train') -> nn.Module:
    """``cfg.model``, given ``cfg.<split>_dataloader``'s metainfo as a
    Runner's ``DatasetMetaHook`` gives it (stage 1: the model as built)."""
    scope = cfg.get('default_scope', 'mmdet')
    model = UPSTREAM_SCOPES[scope].MODELS.build(cfg.model)
    if hasattr(model, 'learner'):
        set_dataset_meta(model, config_dataset_meta(cfg, split))
    return model
