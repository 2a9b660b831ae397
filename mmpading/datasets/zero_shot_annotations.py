"""Seen-only COCO annotation files: find and remove unseen classes.

Works on the parsed JSON of a COCO **instances** file (``annotations`` with
``category_id`` per object) or a COCO **panoptic** file (``annotations`` with
``segments_info`` per image). Categories are matched to the split by name.
Used by ``tools/dataset_converters/prepare_zero_shot_coco.py`` and
``tools/misc/check_leakage.py``.
"""
from __future__ import annotations

import copy
from collections import Counter, defaultdict

from .splits import ZeroShotSplit


def annotation_kind(content: dict) -> str:
    """``'panoptic'`` or ``'instances'``, from the JSON structure.

    Raises:
        ValueError: If ``content`` is neither.
    """
    if not isinstance(content, dict) or 'categories' not in content or \
            'images' not in content or 'annotations' not in content:
        raise ValueError('Not a COCO annotation file: expected a JSON object '
                         'with "images", "annotations" and "categories".')
    annotations = content['annotations']
    if annotations and 'segments_info' in annotations[0]:
        return 'panoptic'
    if annotations and 'category_id' not in annotations[0]:
        raise ValueError('Annotations have neither "segments_info" (COCO '
                         'panoptic) nor "category_id" (COCO instances).')
    return 'instances'


def unseen_category_ids(content: dict, split: ZeroShotSplit) -> set[int]:
    """Category ids of the file whose names are unseen classes of ``split``.

    The categories must cover the split's classes (ZSI 48/17 names 65 of
    the 80 COCO categories; the other 15 belong to neither group) or be a
    part of them (an instances file holds the thing classes of a panoptic
    split): see :meth:`ZeroShotSplit.check_compatible`.

    Raises:
        ValueError: If names disagree otherwise (a misspelling), listing the
            split's names that are not categories, with the closest ones.
    """
    names = [category['name'] for category in content['categories']]
    split.check_compatible(names)
    unseen = set(split.unseen)
    return {
        category['id']
        for category in content['categories'] if category['name'] in unseen
    }


def _segments(content: dict, kind: str) -> list[tuple[int, dict]]:
    """(image id, annotation) for every object / segment of the file."""
    if kind == 'instances':
        return [(ann['image_id'], ann) for ann in content['annotations']]
    return [(ann['image_id'], segment) for ann in content['annotations']
            for segment in ann['segments_info']]


def find_unseen(content: dict,
                split: ZeroShotSplit) -> dict[int, list[str]]:
    """Images that show an unseen class, with the unseen classes they show.

    Crowd annotations count: their pixels belong to the class too.

    Returns:
        dict[int, list[str]]: Image id -> sorted unseen class names, for
        every image with at least one unseen annotation.
    """
    kind = annotation_kind(content)
    unseen_ids = unseen_category_ids(content, split)
    names = {c['id']: c['name'] for c in content['categories']}
    found: dict[int, set[str]] = defaultdict(set)
    for image_id, segment in _segments(content, kind):
        if segment['category_id'] in unseen_ids:
            found[image_id].add(names[segment['category_id']])
    return {image_id: sorted(found[image_id]) for image_id in sorted(found)}


def filter_unseen(content: dict, split: ZeroShotSplit,
                  mode: str = 'drop_unseen') -> tuple[dict, dict]:
    """A seen-only copy of a COCO annotation file.

    Args:
        content (dict): Parsed instances or panoptic JSON (not modified).
        split (ZeroShotSplit): The zero-shot split.
        mode (str): ``'drop_unseen'`` removes every image with an unseen
            annotation (the PADing / ZSI protocol); ``'ignore_unseen'`` keeps
            the images and removes the unseen annotations (for panoptic
            files their pixels then load as ignore, 255).

    Returns:
        tuple[dict, dict]: The filtered content and statistics: ``images``
        and ``annotations`` before / after, ``dropped_images``, and
        ``images_per_unseen_class`` (how many images show each unseen
        class).
    """
    if mode not in ('drop_unseen', 'ignore_unseen'):
        raise ValueError(f'mode must be "drop_unseen" or "ignore_unseen", '
                         f'not {mode!r}.')
    kind = annotation_kind(content)
    unseen_ids = unseen_category_ids(content, split)
    with_unseen = find_unseen(content, split)
    per_class = Counter(name for names in with_unseen.values()
                        for name in names)
    result = {key: value for key, value in content.items()
              if key not in ('images', 'annotations')}
    if mode == 'drop_unseen':
        result['images'] = [
            copy.deepcopy(image) for image in content['images']
            if image['id'] not in with_unseen
        ]
        result['annotations'] = [
            copy.deepcopy(ann) for ann in content['annotations']
            if ann['image_id'] not in with_unseen
        ]
    else:
        result['images'] = copy.deepcopy(content['images'])
        if kind == 'instances':
            result['annotations'] = [
                copy.deepcopy(ann) for ann in content['annotations']
                if ann['category_id'] not in unseen_ids
            ]
        else:
            result['annotations'] = []
            for ann in content['annotations']:
                ann = copy.deepcopy(ann)
                ann['segments_info'] = [
                    segment for segment in ann['segments_info']
                    if segment['category_id'] not in unseen_ids
                ]
                result['annotations'].append(ann)
    stats = {
        'kind': kind,
        'mode': mode,
        'images_before': len(content['images']),
        'images_after': len(result['images']),
        'dropped_images': len(content['images']) - len(result['images']),
        'images_with_unseen': len(with_unseen),
        'annotations_before': len(_segments(content, kind)),
        'annotations_after': len(_segments(result, kind)),
        'images_per_unseen_class': {
            name: per_class.get(name, 0) for name in split.unseen
        },
    }
    return result, stats
