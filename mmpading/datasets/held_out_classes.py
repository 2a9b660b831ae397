"""A toy-layout data root with some classes held out of everything.

To show that a class can be added to a trained model afterwards
(:mod:`mmpading.apis.class_extension`), the model must never have met it:
not in its class list, not in the split, not among the class embeddings,
and not in any training image (the segmenter would learn its pixels as
background). :func:`write_data_root_without` writes such a data root next
to a full one: the images, panoptic PNGs and validation files are links to
the full root's; the class list, split, embedding file and training
annotations are rewritten without the held-out classes, and every training
image that shows one of them is dropped, as stage 1 drops images of unseen
classes.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Sequence

from .class_embeddings import load_class_embeddings, save_class_embeddings
from .splits import ZeroShotSplit, load_split, save_split

# Files of a toy data root (tools/dataset_converters/make_toy_dataset.py)
# that the held-out root rewrites; everything else is linked.
METAINFO_FILE = 'metainfo.json'
SPLIT_FILE = 'split.json'
EMBEDDINGS_FILE = 'class_embeddings.json'
TRAIN_ANNOTATIONS = ('annotations/panoptic_train.json',
                     'annotations/instances_train.json')


def _without(names: Sequence[str], held_out: set[str]) -> list[str]:
    return [name for name in names if name not in held_out]


def _training_annotations_without(content: dict,
                                  held_out: set[str]) -> tuple[dict, int]:
    """A COCO (panoptic or instance) training file without the classes
    and without any image that shows one of them.

    Returns:
        tuple[dict, int]: The new content and the number of images dropped.
    """
    held_ids = {
        category['id']
        for category in content['categories']
        if category['name'] in held_out
    }
    if 'segments_info' in (content['annotations'] or [{}])[0]:
        shown = {
            annotation['image_id']
            for annotation in content['annotations']
            if any(segment['category_id'] in held_ids
                   for segment in annotation['segments_info'])
        }
    else:
        shown = {
            annotation['image_id']
            for annotation in content['annotations']
            if annotation['category_id'] in held_ids
        }
    kept = dict(content)
    kept['images'] = [
        image for image in content['images'] if image['id'] not in shown
    ]
    kept['annotations'] = [
        annotation for annotation in content['annotations']
        if annotation['image_id'] not in shown
    ]
    kept['categories'] = [
        category for category in content['categories']
        if category['id'] not in held_ids
    ]
    return kept, len(shown)


def write_data_root_without(data_root: str, held_out: Sequence[str],
                            out_root: str) -> dict[str, int]:
    """Write ``out_root``: ``data_root`` as if ``held_out`` never existed.

    Args:
        data_root (str): A toy-layout data root (``metainfo.json``,
            ``split.json``, ``class_embeddings.json``, ``annotations/``,
            ``train/``, ``val/``).
        held_out (Sequence[str]): Class names of ``data_root`` to hold out.
        out_root (str): A new folder (refused if it exists: nothing is
            overwritten).

    Returns:
        dict[str, int]: ``classes`` (left), ``dropped_train_images`` (of
        the panoptic training file) and ``train_images`` (kept).

    Raises:
        FileExistsError: ``out_root`` exists.
        ValueError: A held-out name is not a class of ``data_root``, or
            every class would be held out.
    """
    if osp.exists(out_root):
        raise FileExistsError(f'{out_root!r} exists; choose a new folder '
                              '(nothing is overwritten)')
    with open(osp.join(data_root, METAINFO_FILE)) as f:
        metainfo = json.load(f)
    classes = list(metainfo['classes'])
    held = set(held_out)
    unknown = sorted(held - set(classes))
    if unknown:
        raise ValueError(f'{unknown} are not classes of {data_root!r} '
                         f'({osp.join(data_root, METAINFO_FILE)})')
    if held >= set(classes):
        raise ValueError('every class would be held out')
    os.makedirs(osp.join(out_root, 'annotations'))
    # Metainfo: the class lists, and the palette entries of the classes left.
    kept_meta = dict(metainfo)
    for key in ('classes', 'thing_classes', 'stuff_classes'):
        if key in metainfo:
            kept_meta[key] = _without(metainfo[key], held)
    if 'palette' in metainfo:
        kept_meta['palette'] = [
            colour for name, colour in zip(classes, metainfo['palette'])
            if name not in held
        ]
    with open(osp.join(out_root, METAINFO_FILE), 'w') as f:
        json.dump(kept_meta, f)
    split = load_split(osp.join(data_root, SPLIT_FILE))
    save_split(
        ZeroShotSplit(
            name=f'{split.name}_without_' + '_'.join(
                sorted(name.replace(' ', '-') for name in held)),
            seen=_without(split.seen, held),
            unseen=_without(split.unseen, held)),
        osp.join(out_root, SPLIT_FILE))
    embeddings_file = osp.join(data_root, EMBEDDINGS_FILE)
    with open(embeddings_file) as f:
        source = json.load(f).get('source', '')
    kept_classes = _without(classes, held)
    embeddings, file_names = load_class_embeddings(embeddings_file)
    rows = [file_names.index(name) for name in kept_classes]
    save_class_embeddings(
        osp.join(out_root, EMBEDDINGS_FILE), kept_classes, embeddings[rows],
        source=f'{source} (without {", ".join(sorted(held))})')
    counts = dict(classes=len(kept_classes))
    for name in TRAIN_ANNOTATIONS:
        path = osp.join(data_root, name)
        if not osp.isfile(path):
            continue
        with open(path) as f:
            content, dropped = _training_annotations_without(
                json.load(f), held)
        with open(osp.join(out_root, name), 'w') as f:
            json.dump(content, f)
        if name.startswith('annotations/panoptic'):
            counts.update(dropped_train_images=dropped,
                          train_images=len(content['images']))
    # Everything else (images, PNGs, validation files) is the full root's.
    for entry in sorted(os.listdir(data_root)):
        if entry in (METAINFO_FILE, SPLIT_FILE, EMBEDDINGS_FILE,
                     'annotations'):
            continue
        os.symlink(osp.abspath(osp.join(data_root, entry)),
                   osp.join(out_root, entry))
    annotations = osp.join(data_root, 'annotations')
    for entry in sorted(os.listdir(annotations)):
        if f'annotations/{entry}' in TRAIN_ANNOTATIONS:
            continue
        os.symlink(osp.abspath(osp.join(annotations, entry)),
                   osp.join(out_root, 'annotations', entry))
    return counts
