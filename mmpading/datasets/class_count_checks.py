"""Refuse a model head whose class count differs from its data set's.

mmdet's Mask2Former takes ``num_things_classes`` / ``num_stuff_classes``
from the config, the data set numbers its classes from its metainfo; when
they differ nothing fails: thing labels past the head's things are trained
as its stuff classes, stuff labels past its classes are skipped by the
panoptic target builder (``preprocess_panoptic_gt``), and the model trains
to silently wrong numbers. Stage 2 refuses such data (the learner checks
the data set's classes); :func:`check_head_class_counts` refuses it for
either stage before the Runner is built, from the data sets' metainfo
alone (``lazy_init``: no annotation file is read).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmengine.config import Config

from .training_checks import describe_dataset, zero_shot_leaf_datasets

# Per kind of count: the data set's metainfo key and the head's option.
COUNT_KINDS = dict(
    things=('thing_classes', 'num_things_classes'),
    stuff=('stuff_classes', 'num_stuff_classes'),
    classes=('classes', 'num_classes'))


class ClassCountError(ValueError):
    """A head sized for other classes than its data set's: named, with the
    fix."""


def head_class_counts(model_cfg: Mapping) -> tuple[str, dict[str, int]]:
    """Where the head's class counts are set, and the counts by kind.

    Returns:
        tuple[str, dict[str, int]]: Config path of the head and
        ``{'things': ..., 'stuff': ...}`` (a panoptic head) or
        ``{'classes': ...}`` (a semantic decode head); ``('', {})`` for
        other models.
    """
    head = model_cfg.get('panoptic_head')
    if isinstance(head, Mapping) and 'num_things_classes' in head \
            and 'num_stuff_classes' in head:
        return 'model.panoptic_head', dict(
            things=head['num_things_classes'],
            stuff=head['num_stuff_classes'])
    head = model_cfg.get('decode_head')
    if isinstance(head, Mapping) and 'num_classes' in head:
        return 'model.decode_head', dict(classes=head['num_classes'])
    return '', {}


def _dataset_class_counts(metainfo: Mapping,
                          kinds: Sequence[str]) -> dict[str, int]:
    """The data set's class counts for the head's kinds (things, stuff or
    all classes); only the kinds its metainfo lists."""
    return {
        kind: len(metainfo[COUNT_KINDS[kind][0]])
        for kind in kinds if metainfo.get(COUNT_KINDS[kind][0]) is not None
    }


def check_head_class_counts(cfg: Config, dataloaders: Sequence[str]) -> None:
    """Refuse a config whose head has other class counts than its data.

    For each zero-shot data set (``ZeroShotCocoPanopticDataset``,
    ``ZeroShotCocoDataset``, ``ZeroShotCOCOStuffDataset``; wrappers
    unwrapped) of the given loaders, the data set is built with
    ``lazy_init=True`` and its metainfo's ``thing_classes`` /
    ``stuff_classes`` (a panoptic head's ``num_things_classes`` /
    ``num_stuff_classes``) or ``classes`` (a decode head's
    ``num_classes``) are counted.

    Args:
        cfg (Config): The full config.
        dataloaders (Sequence[str]): The loaders the run builds, e.g.
            ``('train_dataloader', 'val_dataloader')``; absent ones are
            skipped.

    Raises:
        ClassCountError: Naming the head option, the data set, both counts
            and the fix.
    """
    head_path, head_counts = head_class_counts(cfg.get('model') or {})
    if not head_counts:
        return
    from mmpading.registry import DATASETS
    for where, dataset_cfg in zero_shot_leaf_datasets(cfg, dataloaders):
        dataset = DATASETS.build(dict(dataset_cfg, lazy_init=True))
        data_counts = _dataset_class_counts(dataset.metainfo,
                                            list(head_counts))
        differing = {
            kind: (head_counts[kind], count)
            for kind, count in data_counts.items()
            if count != head_counts[kind]
        }
        if not differing:
            continue
        stated = ', '.join(
            f'{head_path}.{COUNT_KINDS[kind][1]}={head} but the data set '
            f'has {data} {kind}' for kind, (head, data) in differing.items())
        raise ClassCountError(
            f'{describe_dataset(where, dataset_cfg)}: {stated}. The head '
            'would train and score other labels than the data set\'s. Fix: '
            'set the head\'s class counts to the data set\'s (its '
            'metainfo) in the config, every head and fusion head that '
            'states them (the loss\'s class_weight too: one entry per '
            'class, then the no-object weight), or point the config at '
            'the data set it was written for')
