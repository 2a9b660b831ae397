"""Build a trained model and its evaluation data outside a Runner.

The analysis tools (``tools/analysis_tools/vis_features.py``,
``vis_predictions.py``) look inside several trained models at once: they
need the model in eval mode with its checkpoint, and the validation data
set with ground truth, without the Runner's training or evaluation loops.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset, pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import nn

from mmpading.models.utils.stage2 import set_dataset_meta
from mmpading.registry import UPSTREAM_SCOPES
from mmpading.utils.compat import CheckpointLoadError
from mmpading.utils.config_utils import (
    TOY_CONFIG_DIR,
    load_rebased_config,
)

from .checkpoint_checks import check_config_checkpoint


def config_path(config: str) -> str:
    """The file of a config given by path or by toy config name.

    Raises:
        FileNotFoundError: Neither an existing file nor a toy config name
            (the message lists the toy configs).
    """
    if osp.isfile(config):
        return config
    path = osp.join(TOY_CONFIG_DIR, f'{config}.py')
    if osp.isfile(path):
        return path
    raise FileNotFoundError(
        f'config {config!r} is neither a file nor a toy config name (one of '
        f'{", ".join(toy_config_names())})')


def resolve_config(config: str,
                   data_root: str | None = None,
                   options: dict[str, Any] | None = None) -> Config:
    """Load a config given by toy config name or by file path.

    Args:
        config (str): A toy config name (``configs/toy/<name>.py``, e.g.
            ``'pading_toy_stage2'``) or the path of a ``.py`` config.
        data_root (str, optional): Folder that replaces the config's own
            ``data_root`` (``data/toy/`` in the toy configs) in every path
            of the config.
        options (dict, optional): Dotted overrides, as ``--cfg-options``
            takes them.

    Returns:
        Config: The loaded config.

    Raises:
        FileNotFoundError: Neither a toy config name nor an existing file.
        DataRootError: ``data_root`` is given but the config has none.
    """
    return load_rebased_config(
        config_path(config), data_root, **dict(options or {}))


def toy_config_names() -> list[str]:
    """Names of the bundled toy configs (``configs/toy/*.py``)."""
    if not osp.isdir(TOY_CONFIG_DIR):
        return []
    return sorted(
        name[:-3] for name in os.listdir(TOY_CONFIG_DIR)
        if name.endswith('.py'))


def _registries(cfg: Config) -> ModuleType:
    """The registries of the config's scope, made the default scope."""
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in UPSTREAM_SCOPES:
        raise ValueError(f'default_scope {scope!r} unsupported; expected one '
                         f'of {sorted(UPSTREAM_SCOPES)}')
    init_default_scope(scope)
    return UPSTREAM_SCOPES[scope]


def load_model(cfg: Config,
               checkpoint: str,
               device: str | torch.device = 'cpu') -> nn.Module:
    """Build ``cfg.model``, load ``checkpoint`` and switch to eval mode.

    The checkpoint must fit the config's stage
    (:func:`~mmpading.apis.checkpoint_checks.check_checkpoint_fits`): a
    stage-2 model refuses a stage-1 checkpoint, which would leave its
    learner (classifier, generator) random and silently show meaningless
    results; a stage-1 model given a stage-2 checkpoint logs that the
    stage-2 classifier is ignored.

    Args:
        cfg (Config): The model's config.
        checkpoint (str): Checkpoint file.
        device (str | torch.device): Device of the model.

    Returns:
        nn.Module: The model, in eval mode.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        ValueError: The checkpoint cannot be read or does not fit
            (:class:`CheckpointMismatchError` for the other stage's).
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} not found')
    try:
        note = check_config_checkpoint(cfg, checkpoint, 'test')
    except CheckpointLoadError as error:
        raise ValueError(str(error)) from None
    if note is not None:
        print_log(note, logger='current', level=logging.WARNING)
    model = _registries(cfg).MODELS.build(cfg.model)
    if hasattr(model, 'learner'):
        set_dataset_meta(model, config_dataset_meta(cfg))
    try:
        load_checkpoint(model, checkpoint, map_location='cpu')
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        raise ValueError(
            f'cannot load checkpoint {checkpoint!r} into {cfg.model.type}: '
            f'{error}') from error
    return model.to(device).eval()


def load_trained_model(config: str,
                       checkpoint: str,
                       data_root: str | None = None,
                       options: dict[str, Any] | None = None,
                       device: str | torch.device = 'cpu'
                       ) -> tuple[nn.Module, Config]:
    """:func:`resolve_config` and :func:`load_model` in one call.

    Returns:
        tuple[nn.Module, Config]: The model in eval mode and its config.
    """
    cfg = resolve_config(config, data_root, options)
    return load_model(cfg, checkpoint, device), cfg


def build_eval_dataset(cfg: Config, split: str = 'val') -> BaseDataset:
    """The data set of ``cfg.<split>_dataloader``, ground truth included.

    Args:
        cfg (Config): A config with ``val_dataloader`` / ``test_dataloader``
            / ``train_dataloader``.
        split (str): ``'val'``, ``'test'`` or ``'train'``.

    Returns:
        BaseDataset: The built data set (its pipeline as configured).
    """
    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise ValueError(f'the config has no {key}')
    return _registries(cfg).DATASETS.build(cfg[key].dataset)


def config_dataset_meta(cfg: Config, split: str = 'test') -> dict:
    """The ``metainfo`` of ``cfg.<split>_dataloader``'s data set, without
    reading its annotations (the data set is built with ``lazy_init``).

    A stage-2 model takes its classes and split from it
    (:func:`~mmpading.models.utils.stage2.set_dataset_meta`), as a Runner
    gives them through ``DatasetMetaHook``.

    Args:
        cfg (Config): A config with that data loader.
        split (str): ``'test'``, ``'val'`` or ``'train'``.
    """
    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise ValueError(f'the config has no {key}')
    dataset_cfg = dict(cfg[key].dataset, lazy_init=True)
    return dict(_registries(cfg).DATASETS.build(dataset_cfg).metainfo)


def collate(dataset: BaseDataset, indices: Sequence[int]) -> dict:
    """A batch of ``dataset`` items, as the default dataloader makes it."""
    return pseudo_collate([dataset[index] for index in indices])


