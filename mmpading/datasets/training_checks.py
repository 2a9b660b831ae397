"""Refuse training data that shows unseen classes (zero-shot leakage).

Zero-shot training must never see an unseen class: PADing drops every
training image with an unseen pixel (``zero_shot_mode='drop_unseen'``), the
ZSS protocol ignores unseen pixels (``'ignore_unseen'``). A data set left in
its default mode ``'all'``, or an upstream data set swapped into a PADing
config, would train on unseen classes without a word and the unseen scores
would be meaningless. Two checks guard against it:

- the zero-shot data sets refuse mode ``'all'`` in a training role
  (``test_mode=False``) at construction
  (:class:`~mmpading.datasets.zero_shot_mixin.ZeroShotDatasetMixin`);
- :func:`check_zero_shot_training_data` checks a whole config before the
  Runner is built: the training data set of a ``PADing`` /
  ``PADingSegmentor`` model (through ``ConcatDataset`` / ``RepeatDataset``
  / ``ClassBalancedDataset`` style wrappers) must be a zero-shot data set
  with a split and a seen-only mode.

Both accept an explicit opt-out (``allow_unseen_in_training=True``, on the
data set, or at the top of the config for an upstream data set) and then
log a warning that the training set contains unseen classes.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from .unseen_in_training import (
    MODE_FIX,
    OPT_OUT,
    TRAINING_MODES,
    ZeroShotTrainingDataError,
    warn_unseen_in_training,
)
from .zero_shot_mixin import ZeroShotDatasetMixin

ZERO_SHOT_MODELS = ('PADing', 'PADingSegmentor')


def _short_type(dataset_type) -> str:
    name = dataset_type if isinstance(dataset_type, str) else getattr(
        dataset_type, '__name__', repr(dataset_type))
    return name.rsplit('.', 1)[-1]


def iter_leaf_datasets(dataset_cfg: Mapping,
                       where: str = 'train_dataloader.dataset'
                       ) -> Iterator[tuple[str, Mapping]]:
    """The data set configs inside wrappers, with their config path.

    ``datasets`` (``ConcatDataset``) and ``dataset`` (``RepeatDataset``,
    ``ClassBalancedDataset``, ``MultiImageMixDataset``) are followed.
    """
    if isinstance(dataset_cfg.get('datasets'), (list, tuple)):
        for index, child in enumerate(dataset_cfg['datasets']):
            yield from iter_leaf_datasets(child, f'{where}.datasets.{index}')
    elif isinstance(dataset_cfg.get('dataset'), Mapping):
        yield from iter_leaf_datasets(dataset_cfg['dataset'],
                                      f'{where}.dataset')
    else:
        yield where, dataset_cfg


def dataset_class(dataset_type, scope: str) -> type | None:
    """The registered class of a data set config's ``type``; None if it is
    not registered in ``scope``."""
    if not isinstance(dataset_type, str):
        return dataset_type if isinstance(dataset_type, type) else None
    from mmpading.registry import UPSTREAM_SCOPES
    module = UPSTREAM_SCOPES.get(scope, UPSTREAM_SCOPES['mmdet'])
    return module.DATASETS.get(dataset_type)


def describe_dataset(where: str, dataset_cfg: Mapping) -> str:
    """``where (Type, ann_file '...')``, for messages."""
    ann_file = dataset_cfg.get('ann_file')
    data_root = dataset_cfg.get('data_root') or ''
    shown = f', ann_file {data_root + ann_file!r}' if ann_file else ''
    return f'{where} ({_short_type(dataset_cfg.get("type"))}{shown})'


def is_zero_shot_config(cfg: Mapping) -> bool:
    """Whether a config is a zero-shot experiment of either stage.

    Stage 2: the model is ``PADing`` or ``PADingSegmentor``. Stage 1 is
    upstream's model (``Mask2Former``, ``EncoderDecoder``); its config is
    a zero-shot one when it evaluates on a zero-shot data set
    (``val_dataloader`` or ``test_dataloader``).
    """
    model_type = (cfg.get('model') or {}).get('type')
    if model_type is not None and _short_type(model_type) in ZERO_SHOT_MODELS:
        return True
    return any(
        True for _ in zero_shot_leaf_datasets(
            cfg, ('val_dataloader', 'test_dataloader')))


def zero_shot_leaf_datasets(cfg: Mapping, dataloaders: Sequence[str]
                            ) -> Iterator[tuple[str, Mapping]]:
    """The zero-shot data set configs of some loaders, wrappers unwrapped.

    Args:
        cfg (Mapping): The full config.
        dataloaders (Sequence[str]): Loader keys, e.g.
            ``('val_dataloader', 'test_dataloader')``; absent ones, or ones
            without a ``dataset``, are skipped.

    Yields:
        tuple[str, Mapping]: The config path (``'val_dataloader.dataset'``)
        and the config of each data set whose type subclasses
        :class:`ZeroShotDatasetMixin`.
    """
    scope = cfg.get('default_scope') or 'mmdet'
    for key in dataloaders:
        loader = cfg.get(key) or {}
        if not loader.get('dataset'):
            continue
        for where, dataset_cfg in iter_leaf_datasets(loader['dataset'],
                                                     f'{key}.dataset'):
            cls = dataset_class(dataset_cfg.get('type'), scope)
            if cls is not None and issubclass(cls, ZeroShotDatasetMixin):
                yield where, dataset_cfg


def check_zero_shot_training_data(cfg: Mapping) -> None:
    """Refuse a zero-shot config whose training data may show unseen classes.

    Applies to zero-shot configs of either stage
    (:func:`is_zero_shot_config`: a ``PADing`` / ``PADingSegmentor`` model,
    or a stage-1 model evaluated on a zero-shot data set) that have a
    ``train_dataloader``. Every data set of ``train_dataloader.dataset``
    (wrappers unwrapped) must be a zero-shot data set
    (``ZeroShotCocoPanopticDataset``, ``ZeroShotCocoDataset``,
    ``ZeroShotCOCOStuffDataset`` or a subclass) with a
    ``zero_shot_split`` and ``zero_shot_mode`` ``'drop_unseen'`` or
    ``'ignore_unseen'``.

    Opt-outs (a WARNING is logged instead): ``allow_unseen_in_training=True``
    on the zero-shot data set, or at the top level of the config for a
    data set that is not a zero-shot one.

    Args:
        cfg (Mapping): The full config (``mmengine.Config``).

    Raises:
        ZeroShotTrainingDataError: Naming the data set (config path, type,
            ann_file), the option and the fix.
    """
    if not is_zero_shot_config(cfg):
        return
    model_type = _short_type((cfg.get('model') or {}).get('type'))
    loader = cfg.get('train_dataloader')
    if not loader or not loader.get('dataset'):
        return
    scope = cfg.get('default_scope') or 'mmdet'
    for where, dataset_cfg in iter_leaf_datasets(loader['dataset']):
        source = describe_dataset(where, dataset_cfg)
        cls = dataset_class(dataset_cfg.get('type'), scope)
        if cls is None or not issubclass(cls, ZeroShotDatasetMixin):
            reason = ('not a zero-shot data set' if cls is not None else
                      f'type not registered in scope {scope!r}')
            if cfg.get(OPT_OUT, False):
                warn_unseen_in_training(source, reason)
                continue
            raise ZeroShotTrainingDataError(
                f'{source} is the training set of a {model_type} model but '
                f'{reason}: it would train on images with unseen classes. '
                'Fix: use ZeroShotCocoPanopticDataset / ZeroShotCocoDataset '
                '/ ZeroShotCOCOStuffDataset with zero_shot_split and '
                f'{MODE_FIX}; to train on unseen classes on purpose, set '
                f'{OPT_OUT} = True at the top of the config (or '
                f'--cfg-options {OPT_OUT}=True).')
        allowed = dataset_cfg.get(OPT_OUT, False)
        mode = dataset_cfg.get('zero_shot_mode', 'all')
        if dataset_cfg.get('zero_shot_split') is None:
            reason = 'no zero_shot_split'
            problem = (
                f'{source} is the training set of a {model_type} model but '
                'has no zero_shot_split, so nothing keeps unseen classes '
                'out. Fix: set zero_shot_split (a registered name such as '
                f"'zsp_coco' or a split file) and {MODE_FIX}")
        elif mode not in TRAINING_MODES:
            reason = f'zero_shot_mode={mode!r}'
            problem = (
                f'{source} is the training set of a {model_type} model with '
                f'zero_shot_mode={mode!r}, which keeps the images with '
                f'unseen classes. Fix: set {MODE_FIX}')
        else:
            continue
        if allowed:
            # Built in a training role, the data set logs this itself.
            if dataset_cfg.get('test_mode', False):
                warn_unseen_in_training(source, reason)
            continue
        raise ZeroShotTrainingDataError(
            f'{problem}; or set {where}.{OPT_OUT}=True to train on unseen '
            'classes on purpose.')
