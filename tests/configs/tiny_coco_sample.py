"""A tiny COCO-format sample at the paths the configs of configs/pading read.

Images are 96 x 72 px noise with rectangular segments; the panoptic files
list all 133 COCO panoptic categories and the instance files the 80 COCO
categories, with ids in mmdet's label order (things 1..80, stuff 81..133),
so both kinds of file agree on the thing ids as COCO's do. Every training
set holds two seen-only images plus one with an unseen class, which the
configs' ``zero_shot_mode='drop_unseen'`` must drop; every validation set
holds one seen-only image and one with unseen classes.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Sequence

import numpy as np
from mmdet.datasets import CocoDataset, CocoPanopticDataset
from panopticapi.utils import id2rgb
from PIL import Image
from pycocotools import mask as mask_utils

from mmpading.datasets.class_embeddings import save_class_embeddings

PANOPTIC_CLASSES = tuple(CocoPanopticDataset.METAINFO['classes'])
THING_CLASSES = tuple(CocoPanopticDataset.METAINFO['thing_classes'])
INSTANCE_CLASSES = tuple(CocoDataset.METAINFO['classes'])
assert THING_CLASSES == INSTANCE_CLASSES
HEIGHT, WIDTH = 72, 96

# (class name, (x0, y0, x1, y1)), painted in order: later ones cover
# earlier ones. Stuff first, things last and apart from each other.
ZSP_TRAIN = [
    [('wall-other-merged', (0, 0, 96, 40)),
     ('floor-other-merged', (0, 40, 96, 72)),
     ('person', (8, 10, 36, 66)), ('chair', (50, 30, 88, 68))],
    [('building-other-merged', (0, 0, 96, 36)),
     ('pavement-merged', (0, 36, 96, 72)),
     ('car', (4, 28, 44, 60)), ('bicycle', (52, 34, 92, 66))],
    # Unseen 'grass-merged' and 'cow': dropped by drop_unseen.
    [('grass-merged', (0, 0, 96, 72)), ('cow', (20, 20, 70, 60))],
]
ZSP_VAL = [
    [('wall-other-merged', (0, 0, 96, 40)),
     ('floor-other-merged', (0, 40, 96, 72)),
     ('person', (6, 8, 34, 66)), ('tv', (54, 12, 90, 40))],
    [('sky-other-merged', (0, 0, 96, 30)), ('grass-merged', (0, 30, 96, 72)),
     ('giraffe', (10, 6, 46, 70)), ('person', (60, 24, 84, 70))],
]
# Seen in both ZSI splits, except 'traffic light' (neither seen nor unseen
# in 48/17, seen in 65/15) and 'cat' (unseen in both).
ZSI_TRAIN = [
    [('person', (6, 8, 30, 68)), ('car', (36, 30, 70, 62)),
     ('traffic light', (78, 4, 92, 30))],
    [('horse', (4, 16, 52, 68)), ('person', (60, 6, 88, 66))],
    [('cat', (10, 20, 60, 66)), ('person', (66, 8, 90, 68))],
]
ZSI_VAL = [
    [('person', (8, 6, 34, 68)), ('car', (44, 28, 90, 64))],
    [('cat', (6, 24, 50, 68)), ('person', (60, 8, 86, 66))],
]


def category_id(name: str) -> int:
    """COCO-style id of a class: its position in mmdet's panoptic order."""
    return PANOPTIC_CLASSES.index(name) + 1


def paint(segments: Sequence) -> np.ndarray:
    """Segment index map (1-based, 0 = void) of one image."""
    seg_map = np.zeros((HEIGHT, WIDTH), dtype=np.int64)
    for index, (_, (x0, y0, x1, y1)) in enumerate(segments, start=1):
        seg_map[y0:y1, x0:x1] = index
    return seg_map


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1)
    ]


def _images(specs: Sequence, first_id: int, prefix: str) -> list[dict]:
    return [
        dict(
            id=first_id + index,
            file_name=f'{prefix}{first_id + index:012d}.jpg',
            height=HEIGHT,
            width=WIDTH) for index in range(len(specs))
    ]


def write_images(img_dir: str, images: list[dict], seed: int) -> None:
    """Noise images (JPEG) under ``img_dir``."""
    os.makedirs(img_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    for image in images:
        pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(osp.join(img_dir, image['file_name']))


def write_panoptic(ann_file: str, seg_dir: str, images: list[dict],
                   specs: Sequence) -> None:
    """COCO panoptic JSON (133 categories) and PNGs."""
    os.makedirs(seg_dir, exist_ok=True)
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    annotations = []
    for image, segments in zip(images, specs):
        seg_map = paint(segments)
        segments_info = []
        for index, (name, _) in enumerate(segments, start=1):
            mask = seg_map == index
            segments_info.append(
                dict(
                    id=index,
                    category_id=category_id(name),
                    iscrowd=0,
                    bbox=_bbox(mask),
                    area=int(mask.sum())))
        png_name = osp.splitext(image['file_name'])[0] + '.png'
        Image.fromarray(id2rgb(seg_map)).save(osp.join(seg_dir, png_name))
        annotations.append(
            dict(
                image_id=image['id'],
                file_name=png_name,
                segments_info=segments_info))
    categories = [
        dict(
            id=category_id(name),
            name=name,
            isthing=int(name in THING_CLASSES),
            supercategory='sample') for name in PANOPTIC_CLASSES
    ]
    with open(ann_file, 'w') as file:
        json.dump(
            dict(
                images=images,
                annotations=annotations,
                categories=categories), file)


def write_instances(ann_file: str, images: list[dict],
                    specs: Sequence) -> None:
    """COCO instance JSON (80 categories, RLE masks) of the thing segments."""
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    annotations = []
    for image, segments in zip(images, specs):
        seg_map = paint(segments)
        for index, (name, _) in enumerate(segments, start=1):
            if name not in INSTANCE_CLASSES:
                continue
            mask = seg_map == index
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image['id'],
                    category_id=category_id(name),
                    segmentation=rle,
                    area=int(mask.sum()),
                    bbox=_bbox(mask),
                    iscrowd=0))
    categories = [
        dict(id=category_id(name), name=name, supercategory='sample')
        for name in INSTANCE_CLASSES
    ]
    with open(ann_file, 'w') as file:
        json.dump(
            dict(
                images=images,
                annotations=annotations,
                categories=categories), file)


def write_embeddings(path: str, class_names: Sequence[str], dim: int,
                     seed: int) -> None:
    """Random class embeddings of dimension ``dim``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    vectors = np.random.default_rng(seed).standard_normal(
        (len(class_names), dim))
    save_class_embeddings(path, class_names, vectors,
                          source=f'random {dim}-d test vectors')


def write_coco_sample(root: str) -> None:
    """Everything the configs of configs/pading read, under ``root``.

    ``root`` stands for ``data/coco/``; the file names are those of
    ``docs/data_preparation.md`` and ``configs/pading/README.md``.
    """
    from mmpading.datasets.splits import get_split

    # ZSP (COCO panoptic 2017).
    train = _images(ZSP_TRAIN, 1, '')
    val = _images(ZSP_VAL, 101, '')
    write_images(osp.join(root, 'train2017'), train, seed=0)
    write_images(osp.join(root, 'val2017'), val, seed=1)
    write_panoptic(
        osp.join(root, 'annotations/panoptic_train2017_seen_zsp_coco.json'),
        osp.join(root, 'annotations/panoptic_train2017'), train, ZSP_TRAIN)
    write_panoptic(
        osp.join(root, 'annotations/panoptic_val2017.json'),
        osp.join(root, 'annotations/panoptic_val2017'), val, ZSP_VAL)
    write_instances(
        osp.join(root, 'annotations/instances_val2017.json'), val, ZSP_VAL)
    write_embeddings(
        osp.join(root, 'embeddings/clip_vit-b16_coco_panoptic.json'),
        PANOPTIC_CLASSES, 512, seed=2)

    # ZSI (COCO 2014 instances), the same images for both splits.
    train = _images(ZSI_TRAIN, 201, 'COCO_train2014_')
    val = _images(ZSI_VAL, 301, 'COCO_val2014_')
    write_images(osp.join(root, 'train2014'), train, seed=3)
    write_images(osp.join(root, 'val2014'), val, seed=4)
    for seed, name in enumerate(('48_17', '65_15'), start=5):
        write_instances(
            osp.join(root,
                     f'annotations/instances_train2014_seen_zsi_{name}.json'),
            train, ZSI_TRAIN)
        write_instances(
            osp.join(root, f'annotations/instances_val2014_gzsi_{name}.json'),
            val, ZSI_VAL)
        write_embeddings(
            osp.join(root, f'embeddings/word2vec_zsi_{name}.json'),
            get_split(f'zsi_{name}').classes, 300, seed=seed)
