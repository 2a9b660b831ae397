"""What the generalized zero-shot (GZSL) metrics share.

Every GZSL metric computes a per-class score with an upstream tool
(panopticapi, COCOeval, mmseg's IoU helpers) and then summarises it the same
way (``docs/metrics.md``):

- seen = unweighted mean over the seen classes, unseen = over the unseen
  classes, all = over every class of the data set;
- HM = 2 s u / (s + u), 0 when both are 0 (:func:`harmonic_mean`);
- a class with no ground truth in the evaluated images is left out of every
  mean it belongs to and listed (:func:`describe_classes_without_gt`); a group
  left with no class at all reports NaN.

The seen / unseen classes come from a :class:`SeenUnseenSpec` and are matched
by name against the data set's ``dataset_meta['classes']``. A metric given
no split reads it from ``dataset_meta['seen_classes']`` /
``['unseen_classes']``, which the zero-shot data sets put there.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from terminaltables import AsciiTable

from mmpading.datasets.file_checks import (
    COCO_KEYS,
    check_coco_content,
    check_file_exists,
    naming_coco_file,
)
from mmpading.datasets.splits import ZeroShotSplit, resolve_split

# Row names of a summary, in table order; the "group" rows are means over
# classes, 'hm' is derived from 'seen' and 'unseen'.
SEEN, UNSEEN, HM, ALL = 'seen', 'unseen', 'hm', 'all'
ROW_TITLES = {SEEN: 'seen', UNSEEN: 'unseen', HM: 'HM', ALL: 'all'}
# Suffix of each row in the flat metric keys: ``PQ_seen``, ``PQ_hm``, ``PQ``.
DEFAULT_KEY_SUFFIXES = {SEEN: '_seen', UNSEEN: '_unseen', HM: '_hm', ALL: ''}

# What computes the per-class counts: the upstream tool each metric extends
# (pycocotools / panopticapi / mmseg), or hotcoco, a Rust port of them.
REFERENCE_BACKEND, HOTCOCO_BACKEND = 'reference', 'hotcoco'
EVAL_BACKENDS = (REFERENCE_BACKEND, HOTCOCO_BACKEND)
# The version whose results were checked against the reference
# (tests/evaluation/metrics/test_eval_backends.py); requirements/optional.txt.
HOTCOCO_REQUIREMENT = 'hotcoco==1.3.0'


def check_eval_backend(owner: str, eval_backend: str,
                       backend_args: dict | None = None
                       ) -> ModuleType | None:
    """Check a metric's ``eval_backend`` when the metric is built.

    A missing hotcoco is reported here rather than after the whole
    inference, when the first batch is evaluated.

    Args:
        owner (str): The metric's class name, for messages.
        eval_backend (str): ``'reference'`` or ``'hotcoco'``.
        backend_args (dict, optional): The metric's file backend arguments;
            hotcoco reads local files only.

    Returns:
        ModuleType | None: The ``hotcoco`` module, or None for the reference.

    Raises:
        ValueError: For another value, or file backend arguments that are
            not the local disk's together with hotcoco.
        ImportError: If ``eval_backend='hotcoco'`` and hotcoco is not
            installed.
    """
    if eval_backend not in EVAL_BACKENDS:
        raise ValueError(
            f'{owner}: `eval_backend` is one of {EVAL_BACKENDS}, got '
            f'{eval_backend!r}.')
    if eval_backend == REFERENCE_BACKEND:
        return None
    if backend_args and backend_args.get('backend', 'local') != 'local':
        raise ValueError(
            f"{owner}: eval_backend='hotcoco' reads local files only, but "
            f'backend_args is {backend_args!r}; use '
            "eval_backend='reference' with this file backend.")
    try:
        return importlib.import_module('hotcoco')
    except ImportError as error:
        raise ImportError(
            f"{owner}(eval_backend='hotcoco') needs the hotcoco package, "
            f'which cannot be imported ({error}). Fix: pip install '
            f"{HOTCOCO_REQUIREMENT} (or `make install`, which installs "
            "requirements/optional.txt), or use eval_backend='reference'."
        ) from error


@contextmanager
def checked_metric_ann_file(owner: str, ann_file: str | None,
                            coco_api: Callable[[], Any],
                            format_only: bool = False,
                            backend_args: dict | None = None
                            ) -> Iterator[None]:
    """Run an upstream COCO metric's ``__init__`` (which loads
    ``ann_file``) with named errors for a bad file.

    Before the block: a missing ``ann_file`` is refused. Inside: an empty,
    truncated or wrong-kind JSON is named. After: a file without
    ``images`` / ``categories`` (or ``annotations``, unless
    ``format_only``) is refused, since pycocotools would evaluate on
    nothing.

    Args:
        owner (str): The metric's class name, for messages.
        ann_file (str, optional): The metric's ``ann_file``.
        coco_api (Callable): Returns the COCO API upstream built (or None).
        format_only (bool): Only results are written; no ground truth is
            needed.
        backend_args (dict, optional): mmengine file backend arguments.
    """
    if not ann_file:
        yield
        return
    what = f'{owner} annotation file'
    check_file_exists(
        ann_file, what, 'ann_file',
        'check ann_file (it is not joined with data_root: give the path '
        'from the working directory), or leave it out to evaluate on the '
        "data set's own annotations", backend_args)
    with naming_coco_file(ann_file, 'pycocotools', what):
        yield
    api = coco_api()
    if api is not None:
        required = tuple(key for key in COCO_KEYS
                         if not (format_only and key == 'annotations'))
        check_coco_content(api.dataset, ann_file, required, what)


def harmonic_mean(seen: float, unseen: float) -> float:
    """Harmonic mean of a seen and an unseen score, the GZSL headline.

    Args:
        seen (float): Score over the seen classes (any scale, >= 0).
        unseen (float): Score over the unseen classes, same scale.

    Returns:
        float: ``2 * seen * unseen / (seen + unseen)``; 0 when both are 0;
        NaN when either is NaN (a group without any class to score).
    """
    if seen < 0 or unseen < 0:
        raise ValueError('harmonic_mean expects non-negative scores, got '
                         f'seen={seen}, unseen={unseen}.')
    if math.isnan(seen) or math.isnan(unseen):
        return math.nan
    if seen + unseen == 0:
        return 0.0
    return 2 * seen * unseen / (seen + unseen)


@dataclass(frozen=True)
class ClassGroups:
    """Seen and unseen classes of one data set, as class indices.

    Args:
        split_name (str): Name of the split the groups come from.
        class_names (tuple[str, ...]): The data set's classes.
        seen (tuple[int, ...]): Indices of the seen classes.
        unseen (tuple[int, ...]): Indices of the unseen classes.
    """

    split_name: str
    class_names: tuple[str, ...]
    seen: tuple[int, ...]
    unseen: tuple[int, ...]

    @property
    def other(self) -> tuple[int, ...]:
        """Classes of the data set in neither group (they count in 'all')."""
        grouped = set(self.seen) | set(self.unseen)
        return tuple(i for i in range(len(self.class_names))
                     if i not in grouped)

    def group_of(self, index: int) -> str:
        """'seen', 'unseen' or 'other' for a class index."""
        if index in self.seen:
            return SEEN
        if index in self.unseen:
            return UNSEEN
        return 'other'


class SeenUnseenSpec:
    """The seen / unseen definition given to a GZSL metric.

    At most one of the two arguments is given; with neither, the split is
    the evaluated data set's (``dataset_meta['seen_classes']`` and
    ``['unseen_classes']``, set by the zero-shot data sets).

    Args:
        zero_shot_split (str | dict | ZeroShotSplit, optional): A registered
            split name (e.g. ``'zsp_coco'``, see
            :func:`mmpading.datasets.splits.list_splits`), the path of a split
            JSON file, a ``dict(seen=[...], unseen=[...])`` of class names,
            or a :class:`ZeroShotSplit`.
        unseen_classes (Sequence[str], optional): Names of the unseen
            classes; every other class of the data set is seen.
        owner (str): Name used in error messages (the metric's class name).
    """

    def __init__(self,
                 zero_shot_split: str | dict | ZeroShotSplit | None = None,
                 unseen_classes: Sequence[str] | None = None,
                 owner: str = 'GZSL metric') -> None:
        self.owner = owner
        if zero_shot_split is not None and unseen_classes is not None:
            raise ValueError(
                f'{owner} takes one of `zero_shot_split` (a split name such '
                "as 'zsp_coco', a split JSON file or dict(seen=[...], "
                'unseen=[...])) and `unseen_classes` (a list of class '
                'names), or neither (the split of the evaluated data set); '
                'got both.')
        self.split: ZeroShotSplit | None = None
        self.unseen_classes: tuple[str, ...] | None = None
        if unseen_classes is not None:
            if isinstance(unseen_classes, str):
                raise TypeError(
                    f'{owner}: `unseen_classes` is a list of class names, '
                    f'not the string {unseen_classes!r}; write '
                    f'unseen_classes=[{unseen_classes!r}].')
            self.unseen_classes = tuple(unseen_classes)
            if not self.unseen_classes:
                raise ValueError(f'{owner}: `unseen_classes` is empty; name '
                                 'at least one unseen class.')
        elif isinstance(zero_shot_split, Mapping):
            self.split = self._split_from_dict(zero_shot_split)
        elif zero_shot_split is not None:
            try:
                self.split = resolve_split(zero_shot_split)
            except KeyError as error:
                raise ValueError(f'{owner}: {error.args[0]}') from None
        self._cache: dict[tuple, ClassGroups] = {}

    @property
    def from_dataset_meta(self) -> bool:
        """Whether the split is the evaluated data set's."""
        return self.split is None and self.unseen_classes is None

    def _split_from_dataset_meta(self,
                                 dataset_meta: Mapping | None
                                 ) -> ZeroShotSplit:
        meta = dataset_meta or {}
        missing = [key for key in ('seen_classes', 'unseen_classes')
                   if key not in meta]
        if missing:
            raise ValueError(
                f'{self.owner} has no split: it was given no '
                '`zero_shot_split` / `unseen_classes`, and dataset_meta has '
                f'no {" / ".join(missing)}. Evaluate a zero-shot data set '
                'with a split (e.g. ZeroShotCocoPanopticDataset('
                "zero_shot_split='zsp_coco')), which puts seen_classes and "
                "unseen_classes into its metainfo, or give the metric "
                "zero_shot_split='...'.")
        return ZeroShotSplit(
            name=meta.get('zero_shot_split', 'dataset_meta'),
            seen=tuple(meta['seen_classes']),
            unseen=tuple(meta['unseen_classes']))

    def _split_from_dict(self, content: Mapping) -> ZeroShotSplit:
        unexpected = sorted(set(content) - {'name', 'seen', 'unseen'})
        missing = [key for key in ('seen', 'unseen') if key not in content]
        if unexpected or missing:
            raise ValueError(
                f'{self.owner}: `zero_shot_split` as a dict holds the keys '
                "'seen' and 'unseen' (lists of class names) and optionally "
                f"'name'; missing {missing}, unexpected {unexpected}.")
        for key in ('seen', 'unseen'):
            if isinstance(content[key], str):
                raise TypeError(f'{self.owner}: zero_shot_split[{key!r}] is '
                                'a list of class names, not a string.')
        try:
            return ZeroShotSplit(name=content.get('name', 'custom'),
                                 seen=tuple(content['seen']),
                                 unseen=tuple(content['unseen']))
        except ValueError as error:
            raise ValueError(f'{self.owner}: {error}') from None

    def resolve(self,
                class_names: Sequence[str],
                dataset_meta: Mapping | None = None) -> ClassGroups:
        """Match the split's class names against a data set's classes.

        Args:
            class_names (Sequence[str]): ``dataset_meta['classes']``.
            dataset_meta (Mapping, optional): The data set's metainfo; its
                ``seen_classes`` / ``unseen_classes`` are the split when the
                metric was given none.

        Returns:
            ClassGroups: The seen / unseen class indices.

        Raises:
            ValueError: If a name of the split is not a class of the data
                set (the message lists them with the closest real names) -
                a data set holding only a part of a registered split (e.g.
                its thing classes) is accepted, as by
                :meth:`ZeroShotSplit.check_compatible` - or if the data set
                has no seen or no unseen class.
        """
        key = tuple(class_names)
        meta = dataset_meta or {}
        cache_key = (key, tuple(meta.get('seen_classes', ())),
                     tuple(meta.get('unseen_classes', ()))) \
            if self.from_dataset_meta else key
        if cache_key in self._cache:
            return self._cache[cache_key]
        try:
            if self.from_dataset_meta:
                split = self._split_from_dataset_meta(dataset_meta)
            elif self.split is not None:
                split = self.split
            else:
                unseen = set(self.unseen_classes)
                split = ZeroShotSplit(
                    name='unseen_classes',
                    seen=tuple(c for c in key if c not in unseen),
                    unseen=self.unseen_classes)
                # Seen is the complement, so only the unseen names can be
                # wrong: all of them must be classes of the data set.
                split.check_against(key)
            # A data set may also hold only a part of a split (e.g. the
            # thing classes of a panoptic split); a misspelt name still fails.
            groups = ClassGroups(split_name=split.name,
                                 class_names=key,
                                 seen=tuple(split.seen_ids(key)),
                                 unseen=tuple(split.unseen_ids(key)))
        except ValueError as error:
            raise ValueError(f'{self.owner}: {error}') from None
        for group in (SEEN, UNSEEN):
            if not getattr(groups, group):
                raise ValueError(
                    f'{self.owner}: none of the {group} classes of split '
                    f'{split.name!r} is a class of the data set '
                    f'({len(key)} classes), so there is no {group} score '
                    'to report; use the split that belongs to this data set.')
        self._cache[cache_key] = groups
        return groups


def resolve_class_groups(spec: SeenUnseenSpec,
                         dataset_meta: dict | None) -> ClassGroups:
    """The seen / unseen groups of the data set a metric evaluates.

    Args:
        spec (SeenUnseenSpec): The metric's split definition.
        dataset_meta (dict, optional): The metric's ``dataset_meta``.
    """
    if not dataset_meta or 'classes' not in dataset_meta:
        raise ValueError(
            f'{spec.owner} needs dataset_meta["classes"] to match the seen '
            'and unseen class names. The evaluator sets it from the data set '
            '(`metainfo`); outside a Runner set '
            '`metric.dataset_meta = dict(classes=[...])`.')
    return spec.resolve(dataset_meta['classes'], dataset_meta)


def category_ids_in_class_order(coco_api: Any,
                                class_names: Sequence[str],
                                owner: str,
                                trailing_missing_ok: bool = False
                                ) -> list[int]:
    """Category ids of ``class_names`` in an annotation file (COCO API).

    mmdet numbers labels in the annotation file's category order
    (``get_cat_ids(cat_names=classes)``); label ``i`` is class
    ``class_names[i]`` only if both orders agree, which is checked here.

    Args:
        coco_api (COCO): The annotation file.
        class_names (Sequence[str]): ``dataset_meta['classes']``.
        owner (str): Name used in error messages.
        trailing_missing_ok (bool): Accept classes absent from the file if
            they all come after the present ones: the stuff classes of a
            panoptic data set (things first) evaluated against an instance
            file. Only the present classes' ids are returned.

    Raises:
        ValueError: If a class is not a category of the file, or the file
            lists the classes in another order.
    """
    cat_ids = coco_api.get_cat_ids(cat_names=list(class_names))
    file_names = [coco_api.cats[cat_id]['name'] for cat_id in cat_ids]
    missing = [name for name in class_names if name not in file_names]
    if missing and trailing_missing_ok and \
            list(class_names[:len(file_names)]) == file_names:
        return list(cat_ids)
    if missing:
        raise ValueError(
            f'{owner}: the classes {missing} of dataset_meta are not '
            'categories of ann_file; use the annotation file of the '
            'evaluated data set.')
    if file_names != list(class_names):
        raise ValueError(
            f'{owner}: dataset_meta["classes"] lists the classes in another '
            'order than the categories of ann_file, so the labels (numbered '
            'in the file order by mmdet) would not be these class names. '
            'List the classes in the file\'s order, e.g. with '
            '`ZeroShotSplit.ordered_like(all_classes)`.')
    return list(cat_ids)


def group_mean(per_class: np.ndarray, members: Sequence[int],
               has_gt: np.ndarray) -> tuple[float, int]:
    """Unweighted mean over the members that have ground truth.

    Args:
        per_class (np.ndarray): A score per class index.
        members (Sequence[int]): Class indices of the group.
        has_gt (np.ndarray): Boolean per class index: whether the evaluated
            images hold ground truth of that class.

    Returns:
        tuple[float, int]: The mean (NaN when no member has ground truth)
        and the number of classes it averages.
    """
    used = [i for i in members if has_gt[i]]
    if not used:
        return math.nan, 0
    return float(np.mean([per_class[i] for i in used])), len(used)


def summarize_groups(
    per_class: Mapping[str, np.ndarray],
    has_gt: np.ndarray,
    groups: ClassGroups,
    extra_groups: Mapping[str, Sequence[int]] | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[int, int]]]:
    """Seen / unseen / HM / all (and extra groups) means of per-class scores.

    Args:
        per_class (Mapping[str, np.ndarray]): Metric name (e.g. ``'PQ'``) ->
            score per class index, in percent.
        has_gt (np.ndarray): Boolean per class index.
        groups (ClassGroups): Seen and unseen classes.
        extra_groups (Mapping[str, Sequence[int]], optional): More rows, e.g.
            ``{'things': [...], 'stuff': [...]}``.

    Returns:
        tuple: ``summary[row][metric]`` with rows 'seen', 'unseen', 'hm',
        'all' and the extra rows; and ``counts[row] = (classes averaged,
        classes in the group)`` (no entry for 'hm').
    """
    members = {
        SEEN: groups.seen,
        UNSEEN: groups.unseen,
        ALL: tuple(range(len(groups.class_names))),
        **(extra_groups or {}),
    }
    summary: dict[str, dict[str, float]] = {
        row: {
            metric: group_mean(values, indices, has_gt)[0]
            for metric, values in per_class.items()
        }
        for row, indices in members.items()
    }
    summary[HM] = {
        metric: harmonic_mean(summary[SEEN][metric], summary[UNSEEN][metric])
        for metric in per_class
    }
    counts = {
        row: (sum(bool(has_gt[i]) for i in indices), len(indices))
        for row, indices in members.items()
    }
    return summary, counts


def flatten_summary(
        summary: Mapping[str, Mapping[str, float]],
        key_suffixes: Mapping[str, str] | None = None) -> dict[str, float]:
    """Flat metric keys: ``{metric}{suffix}``, e.g. ``PQ_seen``, ``PQ``.

    Args:
        summary (Mapping): ``summary[row][metric]`` from
            :func:`summarize_groups`.
        key_suffixes (Mapping[str, str], optional): Suffix per row; rows
            without one are left out. Defaults to
            :data:`DEFAULT_KEY_SUFFIXES`.
    """
    key_suffixes = key_suffixes or DEFAULT_KEY_SUFFIXES
    flat = {}
    for row, suffix in key_suffixes.items():
        for metric, value in summary[row].items():
            flat[f'{metric}{suffix}'] = float(value)
    return flat


def format_summary_table(summary: Mapping[str, Mapping[str, float]],
                         counts: Mapping[str, tuple[int, int]],
                         metric_names: Sequence[str],
                         row_titles: Mapping[str, str] | None = None) -> str:
    """A readable table: one row per group, one column per metric.

    Args:
        summary (Mapping): ``summary[row][metric]`` (percent).
        counts (Mapping): ``counts[row] = (averaged, in group)``.
        metric_names (Sequence[str]): Columns, in order.
        row_titles (Mapping[str, str], optional): Rows to show (in order)
            and their titles. Defaults to seen, unseen, HM, all.
    """
    row_titles = row_titles or ROW_TITLES
    data = [['', *metric_names, 'classes']]
    for row, title in row_titles.items():
        values = [f'{summary[row][name]:.2f}' for name in metric_names]
        if row in counts:
            used, total = counts[row]
            classes = f'{used}/{total}'
        else:
            classes = ''
        data.append([title, *values, classes])
    return AsciiTable(data).table


def format_classwise_table(per_class: Mapping[str, np.ndarray],
                           has_gt: np.ndarray, groups: ClassGroups) -> str:
    """Per-class scores with each class's group; '-' without ground truth."""
    metric_names = list(per_class)
    data = [['class', 'group', *metric_names]]
    for index, name in enumerate(groups.class_names):
        values = [
            f'{per_class[metric][index]:.2f}' if has_gt[index] else '-'
            for metric in metric_names
        ]
        data.append([name, groups.group_of(index), *values])
    return AsciiTable(data).table


def classes_without_gt(has_gt: np.ndarray,
                       groups: ClassGroups) -> dict[str, list[str]]:
    """Names of the classes without ground truth, per group.

    Returns:
        dict[str, list[str]]: Keys 'seen', 'unseen' and 'other' (classes in
        neither group), each a list of class names in data set order.
    """
    return {
        group: [groups.class_names[i] for i in indices if not has_gt[i]]
        for group, indices in ((SEEN, groups.seen), (UNSEEN, groups.unseen),
                               ('other', groups.other))
    }


def describe_classes_without_gt(missing: Mapping[str, Sequence[str]],
                                notes: Mapping[str, str] | None = None) -> str:
    """A log line listing the classes left out of the means.

    Args:
        missing (Mapping[str, Sequence[str]]): From
            :func:`classes_without_gt`.
        notes (Mapping[str, str], optional): Class name -> remark, e.g.
            ``'2 false positives'``.
    """
    notes = notes or {}
    if not any(missing.values()):
        return 'Every class has ground truth in the evaluated images.'
    parts = []
    for group, names in missing.items():
        if not names:
            continue
        described = [
            f'{name} ({notes[name]})' if notes.get(name) else name
            for name in names
        ]
        parts.append(f'{group}: {", ".join(described)}')
    return ('Classes without ground truth in the evaluated images, left out '
            'of the means: ' + '; '.join(parts))
