"""The toy data set generator: scenes to images and COCO annotation files.
"""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence

import numpy as np

from ..class_embeddings import save_class_embeddings
from ..splits import save_split
from .classes import (
    DEFAULT_STUFF_CLASSES,
    DEFAULT_THING_CLASSES,
    DEFAULT_UNSEEN_CLASSES,
    attribute_embeddings,
    build_toy_classes,
    palette_of,
)
from .coco_files import (
    encode_rle,
    ids_to_rgb,
    mask_bbox,
    save_png,
    write_json,
)
from .drawing import draw_scene, preview_overlay

SPLIT_IMAGE_ID_START = {'train': 1, 'val': 10_000_001}


def generate_toy_dataset(out_dir: str,
                         seed: int = 0,
                         num_train: int = 400,
                         num_val: int = 200,
                         image_size: int | tuple[int, int] = 128,
                         thing_classes: Sequence[str] = DEFAULT_THING_CLASSES,
                         stuff_classes: Sequence[str] = DEFAULT_STUFF_CLASSES,
                         unseen_classes: Sequence[
                             str] = DEFAULT_UNSEEN_CLASSES,
                         min_things: int = 3,
                         max_things: int = 5,
                         train_unseen_fraction: float = 0.3,
                         val_unseen_fraction: float = 0.5,
                         noise_std: float = 0.0,
                         num_preview: int = 0,
                         progress: bool = False) -> dict:
    """Write the toy data set (layout in the package docstring).

    Args:
        out_dir (str): Output folder (created; existing files overwritten).
        seed (int): Random seed; the same seed writes the same bytes.
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        image_size (int | tuple[int, int]): Side, or (height, width).
        thing_classes (Sequence[str]): ``'<colour> <shape>'`` names.
        stuff_classes (Sequence[str]): ``'<colour> <texture>'`` names.
        unseen_classes (Sequence[str]): Held-out classes.
        min_things (int): Fewest things attempted per image.
        max_things (int): Most things attempted per image.
        train_unseen_fraction (float): Share of training images drawn with
            unseen classes (the rest show seen classes only).
        val_unseen_fraction (float): The same for validation images.
        noise_std (float): Gaussian pixel noise (0 = flat colours).
        num_preview (int): Colour overlays written to ``preview/`` per split.
        progress (bool): Show a progress bar.

    Returns:
        dict: Summary: image and segment counts per split, class lists.
    """
    height, width = ((image_size, image_size) if isinstance(image_size, int)
                     else tuple(image_size))
    if min(height, width) < 32:
        raise ValueError(f'Image size {height}x{width} is too small for '
                         'visible shapes; use at least 32 px.')
    if not 1 <= min_things <= max_things:
        raise ValueError(f'Need 1 <= min_things <= max_things, got '
                         f'{min_things} and {max_things}.')
    for name, value in (('train_unseen_fraction', train_unseen_fraction),
                        ('val_unseen_fraction', val_unseen_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f'{name} must lie in [0, 1], got {value}.')
    if num_train < 0 or num_val < 0:
        raise ValueError('Image counts must not be negative.')
    classes, split = build_toy_classes(thing_classes, stuff_classes,
                                       unseen_classes)
    palette = palette_of(classes)
    annotation_dir = osp.join(out_dir, 'annotations')
    os.makedirs(annotation_dir, exist_ok=True)

    metainfo = {
        'classes': [c.name for c in classes],
        'thing_classes': [c.name for c in classes if c.isthing],
        'stuff_classes': [c.name for c in classes if not c.isthing],
        'palette': palette,
    }
    write_json(metainfo, osp.join(out_dir, 'metainfo.json'))
    save_split(split, osp.join(out_dir, 'split.json'))
    embeddings, source = attribute_embeddings(classes)
    save_class_embeddings(osp.join(out_dir, 'class_embeddings.json'),
                          metainfo['classes'], embeddings, source)

    categories = [{
        'id': c.category_id,
        'name': c.name,
        'supercategory': 'thing' if c.isthing else 'stuff',
        'isthing': int(c.isthing),
        'color': palette[i],
    } for i, c in enumerate(classes)]
    info = {'description': 'mmpading toy data set', 'version': '1.0',
            'seed': seed, 'height': height, 'width': width}

    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(num_train + num_val)
    summary = {'classes': metainfo['classes'], 'seen': list(split.seen),
               'unseen': list(split.unseen), 'splits': {}}
    for split_index, (split_name, count, unseen_fraction) in enumerate(
        (('train', num_train, train_unseen_fraction),
         ('val', num_val, val_unseen_fraction))):
        image_dir = osp.join(out_dir, split_name)
        panoptic_dir = osp.join(annotation_dir, f'panoptic_{split_name}')
        semantic_dir = osp.join(annotation_dir, f'semantic_{split_name}')
        for folder in (image_dir, panoptic_dir, semantic_dir):
            os.makedirs(folder, exist_ok=True)
        if num_preview:
            os.makedirs(osp.join(out_dir, 'preview'), exist_ok=True)

        images, panoptic_anns, instance_anns = [], [], []
        images_with_unseen = 0
        for index in range(count):
            rng = np.random.default_rng([seed, split_index, index])
            allow_unseen = bool(rng.random() < unseen_fraction)
            scene = draw_scene(rng, classes, split, height, width,
                               allow_unseen, min_things, max_things,
                               noise_std)
            image_id = SPLIT_IMAGE_ID_START[split_name] + index
            file_name = f'{image_id:012d}.png'
            save_png(scene.image, osp.join(image_dir, file_name))
            save_png(ids_to_rgb(scene.panoptic_ids),
                      osp.join(panoptic_dir, file_name))
            save_png(scene.semantic, osp.join(semantic_dir, file_name))
            if index < num_preview:
                save_png(preview_overlay(scene, palette),
                          osp.join(out_dir, 'preview',
                                   f'{split_name}_{file_name}'))
            images.append({'id': image_id, 'file_name': file_name,
                           'height': height, 'width': width})
            segments_info = []
            for segment in scene.segments:
                toy_class = classes[segment['class_index']]
                bbox = mask_bbox(segment['mask'])
                area = int(segment['mask'].sum())
                segments_info.append({
                    'id': segment['id'],
                    'category_id': toy_class.category_id,
                    'iscrowd': 0,
                    'bbox': bbox,
                    'area': area,
                })
                if toy_class.isthing:
                    instance_anns.append({
                        'id': len(instance_anns) + 1,
                        'image_id': image_id,
                        'category_id': toy_class.category_id,
                        'segmentation': encode_rle(segment['mask']),
                        'area': area,
                        'bbox': bbox,
                        'iscrowd': 0,
                    })
            panoptic_anns.append({'image_id': image_id,
                                  'file_name': file_name,
                                  'segments_info': segments_info})
            present = {classes[s['class_index']].name for s in scene.segments}
            images_with_unseen += bool(present & set(split.unseen))
            if bar is not None:
                bar.update()

        write_json({'info': info, 'licenses': [], 'images': images,
                     'annotations': panoptic_anns, 'categories': categories},
                    osp.join(annotation_dir, f'panoptic_{split_name}.json'))
        thing_categories = [{key: c[key] for key in
                             ('id', 'name', 'supercategory')}
                            for c in categories if c['isthing']]
        write_json({'info': info, 'licenses': [], 'images': images,
                     'annotations': instance_anns,
                     'categories': thing_categories},
                    osp.join(annotation_dir, f'instances_{split_name}.json'))
        summary['splits'][split_name] = {
            'images': count,
            'images_with_unseen': images_with_unseen,
            'segments': sum(len(a['segments_info']) for a in panoptic_anns),
            'instances': len(instance_anns),
        }
    if bar is not None:
        bar.file.write('\n')
    return summary
