"""Config helpers of the tools and the Python API: the data root.

A config derives its data paths from ``data_root`` when it is parsed
(``zero_shot_split = data_root + 'split.json'``, metric ``ann_file``,
``class_embeddings``, ...), so overriding ``data_root`` afterwards
(``--cfg-options data_root=...``) changes none of them.
:func:`rebase_data_root` moves every string that starts with the config's
own ``data_root`` to a new folder instead.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

from mmengine.config import Config

PACKAGE_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# A source checkout has configs/ beside the package; an installed wheel
# ships them as package data for mim.
TOY_CONFIG_DIR = next(
    (path for path in (osp.join(osp.dirname(PACKAGE_ROOT), 'configs', 'toy'),
                       osp.join(PACKAGE_ROOT, '.mim', 'configs', 'toy'))
     if osp.isdir(path)), osp.join(osp.dirname(PACKAGE_ROOT), 'configs',
                                   'toy'))
#: ``data_root`` of the toy configs, relative to the current folder.
TOY_DATA_ROOT = 'data/toy/'
DATA_ROOT_KEY = 'data_root'


class DataRootError(ValueError):
    """A data root that cannot be used: named, with the fix."""


def _config_name(cfg: Config) -> str:
    return cfg.filename or 'the config'


def _rebase(value: Any, old_root: str, new_root: str) -> Any:
    """``value`` with ``old_root`` replaced by ``new_root`` in its strings.

    Both roots come without a trailing ``/``. A string matches when it is
    the old root itself or starts with ``old_root + '/'``
    (``'data/toy2/x'`` is not under ``'data/toy'``).
    """
    if isinstance(value, str):
        if value == old_root or value.startswith(old_root + '/'):
            return new_root + value[len(old_root):]
        return value
    if isinstance(value, dict):
        return type(value)(
            {key: _rebase(item, old_root, new_root)
             for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return type(value)(
            _rebase(item, old_root, new_root) for item in value)
    return value


def rebase_data_root(cfg: Config, new_root: str) -> Config:
    """``cfg`` with every path under its ``data_root`` moved to ``new_root``.

    Every string of the config that is ``cfg.data_root`` or starts with it
    (data set roots, the split and class-embedding files, the metrics'
    ``ann_file`` / ``seg_prefix``, ...) is re-rooted; ``data_root`` itself
    becomes ``new_root``. Paths relative to a data set's ``data_root``
    (``ann_file='annotations/...'``) follow it.

    Args:
        cfg (Config): A config with a top-level ``data_root`` string.
        new_root (str): The folder that replaces it (relative paths stay
            relative to the current folder).

    Returns:
        Config: A new config; ``cfg`` is left as it is.

    Raises:
        DataRootError: ``cfg`` has no ``data_root`` (nothing to re-root).
    """
    old_root = cfg.get(DATA_ROOT_KEY, None)
    if not isinstance(old_root, str) or not old_root.rstrip('/'):
        raise DataRootError(
            f'{_config_name(cfg)} has no `data_root` string to re-root '
            f'(found {old_root!r}): --data-root replaces the paths that '
            'start with the config\'s data_root. Set the data paths of '
            'this config with --cfg-options (e.g. '
            'train_dataloader.dataset.data_root=DIR) instead.')
    old = old_root.rstrip('/')
    new = new_root.rstrip('/') or '/'
    # data_root keeps its trailing '/': configs append file names to it.
    rebased = _rebase(cfg.to_dict(), old, new)
    return Config(rebased, filename=cfg.filename)


def take_data_root_option(data_root: str | None,
                          cfg_options: dict | None) -> str | None:
    """The data root requested by ``--data-root`` or ``--cfg-options``.

    ``--cfg-options data_root=DIR`` is the same request as ``--data-root
    DIR``: a plain merge would set ``data_root`` but none of the paths
    derived from it. The entry is removed from ``cfg_options``.

    Args:
        data_root (str, optional): ``--data-root``.
        cfg_options (dict, optional): ``--cfg-options``, changed in place.

    Returns:
        str | None: The requested folder, if any.

    Raises:
        DataRootError: Both give different folders.
    """
    if not cfg_options or DATA_ROOT_KEY not in cfg_options:
        return data_root
    option = str(cfg_options.pop(DATA_ROOT_KEY))
    if data_root is not None and \
            data_root.rstrip('/') != option.rstrip('/'):
        raise DataRootError(
            f'--data-root {data_root!r} and --cfg-options '
            f'data_root={option!r} ask for different data roots: pass '
            'one of them')
    if data_root is None:
        print(f'--cfg-options data_root={option}: re-rooting the config\'s '
              'data paths as --data-root does', flush=True)
    return option


def cwd_note(path: str) -> str:
    """`` (relative to the current folder /x)`` for a relative ``path``.

    Error messages add it: a relative data or checkpoint path means
    something else in another folder (e.g. under ``mim``).
    """
    if osp.isabs(osp.expanduser(path)):
        return ''
    return f' (relative to the current folder {os.getcwd()})'


def check_data_root_folder(path: str, option: str = '--data-root') -> None:
    """Refuse a data root that is not an existing folder.

    Raises:
        DataRootError: ``path`` is not a folder; the message says which
            folder a relative path was resolved against.
    """
    if not osp.isdir(path):
        raise DataRootError(
            f'{option} {path!r} is not a folder{cwd_note(path)}: give the '
            'folder that holds the data set (the toy data set: tools/'
            'dataset_converters/make_toy_dataset.py --out-dir DIR)')


def _dataset_roots(value: Any) -> list[str]:
    """The ``data_root`` strings of a (nested) data set config."""
    if isinstance(value, dict):
        roots = [value[DATA_ROOT_KEY]] if isinstance(
            value.get(DATA_ROOT_KEY), str) and value[DATA_ROOT_KEY] else []
        for key, item in value.items():
            if key != DATA_ROOT_KEY:
                roots.extend(_dataset_roots(item))
        return roots
    if isinstance(value, (list, tuple)):
        return [root for item in value for root in _dataset_roots(item)]
    return []


def check_dataset_roots(cfg: Config, dataloaders: Sequence[str]) -> None:
    """Refuse a config whose data sets' ``data_root`` folders are missing.

    The toy configs read ``data/toy/`` relative to the current folder;
    run elsewhere (e.g. ``mim test`` from another folder), every data path
    would fail later, one by one, deep in the data set code.

    Args:
        cfg (Config): The config.
        dataloaders (Sequence[str]): The data loaders the run builds, e.g.
            ``('train_dataloader', 'val_dataloader')``; absent or ``None``
            ones are skipped.

    Raises:
        DataRootError: A data set's ``data_root`` is not a folder.
    """
    for name in dataloaders:
        loader = cfg.get(name, None)
        if not loader:
            continue
        for root in _dataset_roots(loader.get('dataset', {})):
            if not osp.isdir(root):
                raise DataRootError(
                    f'{name}: data_root {root!r} of {_config_name(cfg)} is '
                    f'not a folder{cwd_note(root)}. Run from the folder '
                    'that holds it, or pass --data-root DIR to re-root '
                    'every data path of the config (the toy data set: '
                    'tools/dataset_converters/make_toy_dataset.py --out-dir '
                    'DIR)')


def load_tool_config(path: str,
                     data_root: str | None = None,
                     cfg_options: dict | None = None) -> Config:
    """The config of ``tools/train.py`` / ``tools/test.py``.

    ``--data-root`` (or ``--cfg-options data_root=DIR``, the same request:
    a plain merge would leave every path derived from data_root unchanged)
    re-roots the config (:func:`rebase_data_root`), with one line on the
    console; the other options are merged afterwards, so that a path given
    explicitly wins.

    Args:
        path (str): Config file.
        data_root (str, optional): ``--data-root``.
        cfg_options (dict, optional): ``--cfg-options`` (not changed).

    Returns:
        Config: The loaded config.

    Raises:
        DataRootError: The data root is not a folder, or the config has no
            ``data_root``, or two different roots were asked for.
    """
    options = dict(cfg_options or {})
    data_root = take_data_root_option(data_root, options)
    if data_root is not None:
        check_data_root_folder(data_root)
    cfg = Config.fromfile(path)
    if data_root is not None:
        old_root = cfg.get(DATA_ROOT_KEY, None)
        cfg = rebase_data_root(cfg, data_root)
        print(f'data root: {old_root} -> {cfg[DATA_ROOT_KEY]} (every path '
              'of the config under it re-rooted)', flush=True)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def load_rebased_config(path: str,
                        data_root: str | None = None,
                        work_dir: str | None = None,
                        **options: Any) -> Config:
    """Load a config file, re-rooted at another data folder.

    Args:
        path (str): Config file.
        data_root (str, optional): Folder that replaces the config's own
            ``data_root`` (``data/toy/`` in the toy configs) in every
            string of the config (:func:`rebase_data_root`).
        work_dir (str, optional): Work directory.
        **options: Dotted overrides, as ``--cfg-options`` takes them.

    Returns:
        Config: The loaded config.

    Raises:
        DataRootError: ``data_root`` is given but the config has none.
    """
    cfg = Config.fromfile(path)
    if data_root is not None:
        cfg = rebase_data_root(cfg, data_root)
    if work_dir is not None:
        cfg.work_dir = work_dir
    if options:
        cfg.merge_from_dict(options)
    return cfg


def toy_config(name: str,
               data_root: str | None = None,
               work_dir: str | None = None,
               **options: Any) -> Config:
    """Load ``configs/toy/<name>.py`` for another data root.

    Args:
        name (str): Config name without ``.py``, e.g.
            ``'pading_toy_stage1'``.
        data_root (str, optional): Folder of a generated toy data set that
            replaces ``data/toy/`` everywhere in the config
            (:func:`rebase_data_root`).
        work_dir (str, optional): Work directory.
        **options: Dotted overrides, as ``--cfg-options`` takes them.

    Returns:
        Config: The loaded config.
    """
    return load_rebased_config(
        osp.join(TOY_CONFIG_DIR, f'{name}.py'), data_root, work_dir,
        **options)


def toy_class_count_options(data_root: str) -> dict[str, Any]:
    """Dotted overrides of the toy configs' head class counts for a toy
    data root whose ``metainfo.json`` lists other classes (the configs
    state 20 things and 9 stuff), e.g. one with classes held out
    (:mod:`mmpading.datasets.held_out_classes`).

    Returns:
        dict[str, Any]: ``num_things_classes`` / ``num_stuff_classes`` of
        the panoptic head and fusion head, and the head's per-class CE
        weights (1 per class, 0.1 for no-object, as the configs).
    """
    with open(osp.join(data_root, 'metainfo.json')) as f:
        metainfo = json.load(f)
    things = len(metainfo['thing_classes'])
    stuff = len(metainfo['stuff_classes'])
    options: dict[str, Any] = {}
    for head in ('panoptic_head', 'panoptic_fusion_head'):
        options[f'model.{head}.num_things_classes'] = things
        options[f'model.{head}.num_stuff_classes'] = stuff
    options['model.panoptic_head.loss_cls.class_weight'] = \
        [1.0] * (things + stuff) + [0.1]
    return options


def enable_amp(cfg: Config) -> None:
    """Switch every optimizer wrapper of ``cfg`` to AmpOptimWrapper."""
    optim_wrapper = cfg.optim_wrapper
    if optim_wrapper.get('constructor') == 'PADingOptimWrapperConstructor':
        # Its default groups too (those the config leaves out).
        for name in ('generator', 'classifier'):
            optim_wrapper.setdefault(name, dict(optimizer=dict()))
    named = [
        value for key, value in optim_wrapper.items()
        if isinstance(value, dict) and 'optimizer' in value
    ] if 'optimizer' not in optim_wrapper else [optim_wrapper]
    for wrapper in named:
        if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            continue
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
