"""Seen / unseen class splits of the zero-shot protocols, matched by name.

A split never refers to a class by index: data sets order their classes
differently (COCO instance vs panoptic vs COCO-Stuff), so every lookup goes
through the class names of the data set at hand (:meth:`ZeroShotSplit.
seen_ids`, :meth:`ZeroShotSplit.unseen_ids`), after
:meth:`ZeroShotSplit.check_against` made sure that every name of the split is
one of the data set's classes.

Registered splits (see ``docs/data_preparation.md``):

- ``'zsp_coco'``: zero-shot panoptic, COCO panoptic 2017, 119 seen /
  14 unseen of the 133 classes of mmdet's ``CocoPanopticDataset``.
- ``'zsi_48_17'``, ``'zsi_65_15'``: zero-shot instance segmentation / detection
  on COCO 2014 instances (mmdet's ``CocoDataset`` names). Seen and unseen are
  listed in the column order of the word2vec files of the ZSI literature, so
  ``split.classes`` is the order of those files' columns 1..K. The 48/17 split
  covers 65 of the 80 COCO classes; the other 15 are neither seen nor unseen.
- ``'zss_cocostuff'``: zero-shot semantic segmentation, COCO-Stuff 164k,
  156 seen / 15 unseen of the 171 classes of mmseg's ``COCOStuffDataset``.
- ``'toy'``: the default classes of the bundled toy data set
  (:data:`TOY_THING_CLASSES`, :data:`TOY_STUFF_CLASSES`; written by
  :mod:`mmpading.datasets.toy_generator`).
"""
from __future__ import annotations

import difflib
import json
import os.path as osp
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

SPLIT_FILE_FORMAT = 'mmpading.zero_shot_split/v1'
SPLIT_FILE_FIX = ('write it with mmpading.datasets.save_split (the toy '
                  "set's: tools/dataset_converters/make_toy_dataset.py)")

# Spellings of COCO classes found in word-embedding files and older code
# bases, mapped to the names of mmdet's CocoDataset (the official COCO
# names). The class lists of the ZSI word2vec files
# (``word_w2v_withbg_{48_17,65_15}.txt``) already use the official names
# ('motorcycle', 'airplane', 'tv', 'couch', 'hair drier', ...), so for them
# the table is the identity; it lets other embedding sources be matched.
COCO_NAME_ALIASES: dict[str, str] = {
    'motorbike': 'motorcycle',
    'aeroplane': 'airplane',
    'tvmonitor': 'tv',
    'tv monitor': 'tv',
    'television': 'tv',
    'hair dryer': 'hair drier',
    'hairdrier': 'hair drier',
    'hairdryer': 'hair drier',
    'sofa': 'couch',
    'diningtable': 'dining table',
    'pottedplant': 'potted plant',
    'cellphone': 'cell phone',
    'mobile phone': 'cell phone',
    'trafficlight': 'traffic light',
    'firehydrant': 'fire hydrant',
    'stopsign': 'stop sign',
    'parkingmeter': 'parking meter',
    'sportsball': 'sports ball',
    'baseballbat': 'baseball bat',
    'baseballglove': 'baseball glove',
    'tennisracket': 'tennis racket',
    'wineglass': 'wine glass',
    'hotdog': 'hot dog',
    'teddybear': 'teddy bear',
    'doughnut': 'donut',
    'laptop computer': 'laptop',
}


def canonical_coco_name(name: str) -> str:
    """Map a COCO class spelling to the official COCO / mmdet name.

    Underscores count as spaces and case is ignored; then
    :data:`COCO_NAME_ALIASES` applies.

    Args:
        name (str): A class name, e.g. ``'hair_drier'`` or ``'motorbike'``.

    Returns:
        str: The official name, e.g. ``'hair drier'``, ``'motorcycle'``;
        names that are not aliases come back normalised but unchanged.
    """
    normalised = ' '.join(name.replace('_', ' ').lower().split())
    return COCO_NAME_ALIASES.get(normalised, normalised)


def closest_names(name: str, candidates: Iterable[str],
                  count: int = 3) -> list[str]:
    """The candidates that look most like ``name`` (difflib ratio >= 0.5)."""
    return difflib.get_close_matches(name, list(candidates), n=count,
                                     cutoff=0.5)


def describe_unknown(names: Iterable[str], candidates: Sequence[str]) -> str:
    """One line per unknown name with its closest real names."""
    lines = []
    for name in names:
        matches = closest_names(name, candidates)
        hint = (f'closest: {", ".join(repr(m) for m in matches)}'
                if matches else 'no similar name')
        lines.append(f'  {name!r} ({hint})')
    return '\n'.join(lines)


@dataclass(frozen=True)
class ZeroShotSplit:
    """Seen and unseen classes of a zero-shot protocol, by name.

    Args:
        name (str): Name of the split, e.g. ``'zsp_coco'``.
        seen (tuple[str, ...]): Classes the model is trained on.
        unseen (tuple[str, ...]): Held-out classes, never a training target.
    """

    name: str
    seen: tuple[str, ...]
    unseen: tuple[str, ...]

    def __post_init__(self) -> None:
        # Accept lists, keep the dataclass hashable and immutable.
        object.__setattr__(self, 'seen', tuple(self.seen))
        object.__setattr__(self, 'unseen', tuple(self.unseen))
        both = set(self.seen) & set(self.unseen)
        if both:
            raise ValueError(
                f'Split {self.name!r} lists {sorted(both)} as both seen and '
                'unseen; every class must be in exactly one group.')
        for group, names in (('seen', self.seen), ('unseen', self.unseen)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f'Split {self.name!r} lists {duplicates} '
                                 f'more than once among its {group} classes.')
        # Both groups are needed: without seen classes there is nothing to
        # train on, without unseen ones nothing is zero-shot.
        for group, names in (('seen', self.seen), ('unseen', self.unseen)):
            if not names:
                raise ValueError(
                    f'Split {self.name!r} has no {group} class; a zero-shot '
                    'split needs at least one seen and one unseen class.')

    @property
    def classes(self) -> tuple[str, ...]:
        """Seen classes then unseen classes."""
        return self.seen + self.unseen

    def check_against(self, class_names: Sequence[str]) -> None:
        """Check that every class of the split is a class of the data set.

        Args:
            class_names (Sequence[str]): The data set's classes (its
                ``metainfo['classes']``).

        Raises:
            ValueError: Listing every name of the split that the data set
                does not have, with the closest real names.
        """
        known = set(class_names)
        unknown = [name for name in self.classes if name not in known]
        if unknown:
            raise ValueError(
                f'Split {self.name!r} names {len(unknown)} class(es) that '
                f'are not classes of the data set ({len(class_names)} '
                f'classes):\n{describe_unknown(unknown, class_names)}\n'
                'Fix the spelling in the split, or use the split that '
                'belongs to this data set.')

    def check_compatible(self, class_names: Sequence[str]) -> None:
        """Check that a class list and the split agree on class names.

        Passes when every class of the split is in ``class_names`` (the
        data set covers the split) or when every name of ``class_names`` is
        a class of the split (the data set covers a part of it, e.g. the
        thing classes of a panoptic split in an instances file). A misspelt
        name breaks both, so it is still caught.

        Raises:
            ValueError: As :meth:`check_against`.
        """
        covered = set(self.classes)
        if class_names and all(name in covered for name in class_names):
            return
        self.check_against(class_names)

    def seen_ids(self, class_names: Sequence[str]) -> list[int]:
        """Indices of the seen classes in ``class_names`` (ascending).

        ``class_names`` must cover the split or be a part of it (see
        :meth:`check_compatible`).
        """
        self.check_compatible(class_names)
        seen = set(self.seen)
        return [i for i, name in enumerate(class_names) if name in seen]

    def unseen_ids(self, class_names: Sequence[str]) -> list[int]:
        """Indices of the unseen classes in ``class_names`` (ascending).

        ``class_names`` must cover the split or be a part of it (see
        :meth:`check_compatible`).
        """
        self.check_compatible(class_names)
        unseen = set(self.unseen)
        return [i for i, name in enumerate(class_names) if name in unseen]

    def outside_classes(self, class_names: Sequence[str]) -> list[str]:
        """Classes of the data set that are neither seen nor unseen."""
        covered = set(self.classes)
        return [name for name in class_names if name not in covered]

    def ordered_like(self, class_names: Sequence[str]) -> tuple[str, ...]:
        """The split's classes in the order they have in ``class_names``.

        mmdet's ``CocoDataset`` numbers the classes of ``metainfo`` in the
        order of the annotation file's categories, so a subset of COCO
        classes (e.g. the 65 classes of ZSI 48/17) must be given in COCO
        order: ``metainfo=dict(classes=split.ordered_like(COCO_CLASSES))``.
        """
        self.check_against(class_names)
        covered = set(self.classes)
        return tuple(name for name in class_names if name in covered)

    def to_dict(self) -> dict:
        """The JSON content of a split file."""
        return dict(format=SPLIT_FILE_FORMAT, name=self.name,
                    seen=list(self.seen), unseen=list(self.unseen))


# ---------------------------------------------------------------------------
# Class lists. Built on first use: they come from mmdet / mmseg metainfo.


def _coco_panoptic_classes() -> tuple[str, ...]:
    from mmdet.datasets import CocoPanopticDataset
    return tuple(CocoPanopticDataset.METAINFO['classes'])


def _coco_instance_classes() -> tuple[str, ...]:
    from mmdet.datasets import CocoDataset
    return tuple(CocoDataset.METAINFO['classes'])


def _coco_stuff_classes() -> tuple[str, ...]:
    from mmseg.datasets import COCOStuffDataset
    return tuple(COCOStuffDataset.METAINFO['classes'])


def _complement(name: str, all_classes: Sequence[str],
                unseen: Sequence[str]) -> ZeroShotSplit:
    unseen_set = set(unseen)
    split = ZeroShotSplit(
        name=name,
        seen=tuple(c for c in all_classes if c not in unseen_set),
        unseen=tuple(unseen))
    split.check_against(all_classes)
    return split


ZSP_UNSEEN = ('cow', 'giraffe', 'suitcase', 'frisbee', 'skateboard', 'carrot',
              'scissors', 'cardboard', 'sky-other-merged', 'grass-merged',
              'playingfield', 'river', 'road', 'tree-merged')

ZSS_UNSEEN = ('cow', 'giraffe', 'suitcase', 'frisbee', 'skateboard', 'carrot',
              'scissors', 'cardboard', 'clouds', 'grass', 'playingfield',
              'river', 'road', 'tree', 'wall-concrete')

# In the column order of word_w2v_withbg_48_17.txt (column 0 = background).
ZSI_48_17_SEEN = (
    'person', 'bicycle', 'car', 'motorcycle', 'truck', 'boat', 'bench',
    'bird', 'horse', 'sheep', 'zebra', 'giraffe', 'backpack', 'handbag',
    'skis', 'kite', 'surfboard', 'bottle', 'spoon', 'bowl', 'banana', 'apple',
    'orange', 'broccoli', 'carrot', 'pizza', 'donut', 'chair', 'bed', 'tv',
    'laptop', 'remote', 'microwave', 'oven', 'refrigerator', 'book', 'clock',
    'vase', 'toothbrush', 'train', 'bear', 'suitcase', 'frisbee', 'fork',
    'sandwich', 'toilet', 'mouse', 'toaster')
ZSI_48_17_UNSEEN = (
    'bus', 'dog', 'cow', 'elephant', 'umbrella', 'tie', 'skateboard', 'cup',
    'knife', 'cake', 'couch', 'keyboard', 'sink', 'scissors', 'airplane',
    'cat', 'snowboard')

# In the column order of word_w2v_withbg_65_15.txt (column 0 = background).
ZSI_65_15_SEEN = (
    'person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'bench', 'bird', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'zebra', 'giraffe', 'backpack',
    'umbrella', 'handbag', 'tie', 'skis', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'knife', 'spoon', 'bowl',
    'banana', 'apple', 'orange', 'broccoli', 'carrot', 'pizza', 'donut',
    'cake', 'chair', 'couch', 'potted plant', 'bed', 'dining table', 'tv',
    'laptop', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'toothbrush')
ZSI_65_15_UNSEEN = (
    'airplane', 'train', 'parking meter', 'cat', 'bear', 'suitcase',
    'frisbee', 'snowboard', 'fork', 'sandwich', 'hot dog', 'toilet', 'mouse',
    'toaster', 'hair drier')


def _zsi(name: str, seen: Sequence[str],
         unseen: Sequence[str]) -> ZeroShotSplit:
    split = ZeroShotSplit(name=name,
                          seen=tuple(canonical_coco_name(c) for c in seen),
                          unseen=tuple(canonical_coco_name(c) for c in unseen))
    split.check_against(_coco_instance_classes())
    return split


# The default classes of the toy data set (metainfo order: things, then
# stuff); the toy generator draws these unless told otherwise. Every colour
# x shape thing and colour x texture stuff of these colours (the generator's
# 'grid' class set): each unseen class's colour and shape (or texture) come
# with 2 to 4 seen partners, which the generator composes them from
# (docs/results/README.md#why-the-grid-class-set).
TOY_THING_CLASSES = tuple(
    f'{colour} {shape}'
    for shape in ('circle', 'square', 'triangle', 'diamond')
    for colour in ('red', 'green', 'blue', 'yellow', 'orange'))
TOY_STUFF_CLASSES = tuple(f'{colour} {texture}'
                          for texture in ('stripes', 'checker', 'dots')
                          for colour in ('grey', 'brown', 'purple'))
TOY_UNSEEN_CLASSES = ('blue circle', 'yellow square', 'brown checker')


SPLIT_BUILDERS: dict[str, Callable[[], ZeroShotSplit]] = {
    'zsp_coco':
    lambda: _complement('zsp_coco', _coco_panoptic_classes(), ZSP_UNSEEN),
    'zsi_48_17':
    lambda: _zsi('zsi_48_17', ZSI_48_17_SEEN, ZSI_48_17_UNSEEN),
    'zsi_65_15':
    lambda: _zsi('zsi_65_15', ZSI_65_15_SEEN, ZSI_65_15_UNSEEN),
    'zss_cocostuff':
    lambda: _complement('zss_cocostuff', _coco_stuff_classes(), ZSS_UNSEEN),
    'toy':
    lambda: _complement('toy', TOY_THING_CLASSES + TOY_STUFF_CLASSES,
                        TOY_UNSEEN_CLASSES),
}


def list_splits() -> list[str]:
    """Names of the registered splits."""
    return list(SPLIT_BUILDERS)


def get_split(name: str) -> ZeroShotSplit:
    """A registered split by name.

    Args:
        name (str): One of :func:`list_splits`.

    Raises:
        KeyError: For an unknown name, with the closest registered names.
    """
    if name not in SPLIT_BUILDERS:
        matches = closest_names(name, SPLIT_BUILDERS)
        hint = f' Did you mean {matches[0]!r}?' if matches else ''
        raise KeyError(f'Unknown zero-shot split {name!r}.{hint} Registered '
                       f'splits: {", ".join(SPLIT_BUILDERS)}; or give the '
                       'path of a split JSON file.')
    return SPLIT_BUILDERS[name]()


def load_split(path: str) -> ZeroShotSplit:
    """Read a split file (JSON, as written by :func:`save_split`).

    The file holds ``{"format": "mmpading.zero_shot_split/v1", "name": ...,
    "seen": [...], "unseen": [...]}``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Split file {path!r} does not exist. Fix: check the path (a '
            'relative one is looked up under data_root first) or use a '
            f'registered split: {", ".join(SPLIT_BUILDERS)}.')
    from .file_checks import json_error_reason
    with open(path, encoding='utf-8') as file:
        try:
            content = json.load(file)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(
                f'Split file {path!r} {json_error_reason(error)}. Fix: '
                f'{SPLIT_FILE_FIX}.') from None
    if not isinstance(content, dict) or \
            content.get('format') != SPLIT_FILE_FORMAT:
        raise ValueError(
            f'{path!r} is not a split file: expected a JSON object with '
            f'"format": "{SPLIT_FILE_FORMAT}". Fix: {SPLIT_FILE_FIX}.')
    missing = [key for key in ('seen', 'unseen') if key not in content]
    if missing:
        raise ValueError(f'Split file {path!r} lacks {missing}. Fix: '
                         f'{SPLIT_FILE_FIX}.')
    for key in ('seen', 'unseen'):
        names = content[key]
        if not isinstance(names, list) or not all(
                isinstance(name, str) for name in names):
            raise ValueError(f'Split file {path!r}: "{key}" must be a list '
                             f'of class names (strings). Fix: '
                             f'{SPLIT_FILE_FIX}.')
    name = content.get('name') or osp.splitext(osp.basename(path))[0]
    try:
        return ZeroShotSplit(name=name, seen=tuple(content['seen']),
                             unseen=tuple(content['unseen']))
    except ValueError as error:
        raise ValueError(f'Split file {path!r}: {error}') from None


def save_split(split: ZeroShotSplit, path: str) -> None:
    """Write ``split`` as a JSON split file."""
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(split.to_dict(), file, indent=2)
        file.write('\n')


def resolve_split(split: str | ZeroShotSplit,
                  data_root: str | None = None) -> ZeroShotSplit:
    """A split from a registered name, a split file path or a split.

    A string is read as a file when it ends with ``.json`` or names an
    existing file, as a registered name otherwise.

    Args:
        split (str | ZeroShotSplit): Name, file path or split.
        data_root (str, optional): A relative file path is looked up under
            this folder first (as data sets do with ``ann_file``).
    """
    if isinstance(split, ZeroShotSplit):
        return split
    if not isinstance(split, str):
        raise TypeError('A zero-shot split is a registered name, a split '
                        f'file path or a ZeroShotSplit, not {type(split)}.')
    if data_root and not osp.isabs(split) and osp.isfile(
            osp.join(data_root, split)):
        return load_split(osp.join(data_root, split))
    if split.endswith('.json') or osp.isfile(split):
        return load_split(split)
    return get_split(split)
