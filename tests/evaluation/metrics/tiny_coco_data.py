"""A three-image COCO-format data set drawn from rectangles, for the metrics.

Four thing classes and two stuff classes; 'cow' (thing) and 'sky' (stuff)
are unseen. Images are 32 x 48 (H x W). A scene is a list of
``(class name, (row0, row1, col0, col1))`` rectangles (half-open), painted in
order; ``None`` paints VOID (no class). Areas quoted in the tests are worked
out by hand from these rectangles.

Image 1: sky rows 0-11, grass rows 12-31, person 16 x 8, dog 8 x 16.
Image 2: sky rows 0-15, grass rows 16-31, cow 12 x 20, kite 6 x 8.
Image 3: grass everywhere, cow 16 x 16, person 20 x 10, VOID rows 30-31.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from panopticapi.utils import id2rgb
from PIL import Image
from pycocotools import mask as mask_utils

CLASSES = ('person', 'dog', 'cow', 'kite', 'grass', 'sky')
THING_CLASSES = ('person', 'dog', 'cow', 'kite')
STUFF_CLASSES = ('grass', 'sky')
# Not contiguous, as in COCO: labels must be mapped through the file.
CATEGORY_IDS = {'person': 1, 'dog': 18, 'cow': 21, 'kite': 38,
                'grass': 125, 'sky': 187}
UNSEEN = ('cow', 'sky')
HEIGHT, WIDTH = 32, 48
VOID_LABEL = 255

GT_SCENES = {
    1: [('sky', (0, 12, 0, 48)), ('grass', (12, 32, 0, 48)),
        ('person', (14, 30, 4, 12)), ('dog', (20, 28, 20, 36))],
    2: [('sky', (0, 16, 0, 48)), ('grass', (16, 32, 0, 48)),
        ('cow', (18, 30, 10, 30)), ('kite', (2, 8, 30, 38))],
    3: [('grass', (0, 32, 0, 48)), ('cow', (4, 20, 4, 20)),
        ('person', (8, 28, 30, 40)), (None, (30, 32, 0, 48))],
}

Scene = list[tuple[str | None, tuple[int, int, int, int]]]


@dataclass(frozen=True)
class Segment:
    """One painted segment of a scene."""

    name: str
    mask: np.ndarray


def paint(scene: Scene) -> tuple[list[Segment], np.ndarray]:
    """The segments of a scene and its VOID mask, after painting."""
    owner = np.full((HEIGHT, WIDTH), -1)
    for index, (_, (r0, r1, c0, c1)) in enumerate(scene):
        owner[r0:r1, c0:c1] = index
    segments = [
        Segment(name, owner == index)
        for index, (name, _) in enumerate(scene)
        if name is not None and (owner == index).any()
    ]
    void = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for index, (name, _) in enumerate(scene):
        if name is None:
            void |= owner == index
    return segments, void


def box_xyxy(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()),
            float(cols.max() + 1), float(rows.max() + 1)]


def encode_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode()
    return rle


@dataclass(frozen=True)
class TinyCoco:
    """Paths of the written data set."""

    root: Path
    panoptic_json: str
    panoptic_dir: str
    instance_json: str

    def img_path(self, image_id: int) -> str:
        return str(self.root / 'images' / f'img{image_id}.jpg')

    def seg_map_path(self, image_id: int) -> str:
        return str(Path(self.panoptic_dir) / f'img{image_id}.png')


def segment_id(image_id: int, index: int) -> int:
    # Large enough to use all three RGB channels of the PNG.
    return 70000 * image_id + 2731 * (index + 1)


def build_tiny_coco(root: Path) -> TinyCoco:
    """Write panoptic PNGs + JSON and an instance JSON (RLE masks)."""
    panoptic_dir = root / 'panoptic'
    panoptic_dir.mkdir(parents=True)
    images, panoptic_annotations, instance_annotations = [], [], []
    for image_id, scene in GT_SCENES.items():
        images.append(dict(id=image_id, file_name=f'img{image_id}.jpg',
                           height=HEIGHT, width=WIDTH))
        segments, _ = paint(scene)
        id_map = np.zeros((HEIGHT, WIDTH), dtype=np.int64)
        segments_info = []
        for index, segment in enumerate(segments):
            seg_id = segment_id(image_id, index)
            id_map[segment.mask] = seg_id
            x1, y1, x2, y2 = box_xyxy(segment.mask)
            bbox = [x1, y1, x2 - x1, y2 - y1]
            area = int(segment.mask.sum())
            segments_info.append(
                dict(id=seg_id, category_id=CATEGORY_IDS[segment.name],
                     area=area, bbox=bbox, iscrowd=0))
            if segment.name in THING_CLASSES:
                instance_annotations.append(
                    dict(id=len(instance_annotations) + 1, image_id=image_id,
                         category_id=CATEGORY_IDS[segment.name],
                         segmentation=encode_rle(segment.mask), area=area,
                         bbox=bbox, iscrowd=0))
        Image.fromarray(id2rgb(id_map)).save(panoptic_dir /
                                             f'img{image_id}.png')
        panoptic_annotations.append(
            dict(image_id=image_id, file_name=f'img{image_id}.png',
                 segments_info=segments_info))

    def categories(names: tuple[str, ...]) -> list[dict]:
        return [dict(id=CATEGORY_IDS[name], name=name,
                     isthing=int(name in THING_CLASSES), supercategory='x')
                for name in names]

    panoptic_json = root / 'panoptic.json'
    panoptic_json.write_text(json.dumps(
        dict(images=images, annotations=panoptic_annotations,
             categories=categories(CLASSES))))
    instance_json = root / 'instances.json'
    instance_json.write_text(json.dumps(
        dict(images=images, annotations=instance_annotations,
             categories=categories(THING_CLASSES))))
    return TinyCoco(root=root, panoptic_json=str(panoptic_json),
                    panoptic_dir=str(panoptic_dir),
                    instance_json=str(instance_json))


# --------------------------------------------------------------------------
# Data samples, in the layout mmdet / mmseg models and pipelines produce.


def panoptic_sample(data: TinyCoco, image_id: int,
                    predicted_scene: Scene) -> dict:
    """mmdet panoptic sample: prediction as label + instance * OFFSET."""
    segments, _ = paint(predicted_scene)
    pan = np.full((HEIGHT, WIDTH), len(CLASSES), dtype=np.int64)  # VOID
    for instance, segment in enumerate(segments, start=1):
        label = CLASSES.index(segment.name)
        is_thing = segment.name in THING_CLASSES
        pan[segment.mask] = label + (instance * INSTANCE_OFFSET
                                     if is_thing else 0)
    gt_segments, _ = paint(GT_SCENES[image_id])
    # Ground truth as mmdet's CocoPanopticDataset passes it (used without
    # ann_file).
    segments_info = [
        dict(id=segment_id(image_id, index),
             category=CLASSES.index(segment.name),
             is_thing=segment.name in THING_CLASSES)
        for index, segment in enumerate(gt_segments)
    ]
    return dict(img_id=image_id, img_path=data.img_path(image_id),
                ori_shape=(HEIGHT, WIDTH),
                seg_map_path=data.seg_map_path(image_id),
                segments_info=segments_info,
                pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan)[None]))


def instance_sample(image_id: int, predicted_scene: Scene,
                    scores: dict[str, float] | None = None) -> dict:
    """mmdet instance sample: one detection per painted thing segment.

    ``scores`` maps a class name to the score of its detections (0.9 for
    the others).
    """
    scores = scores or {}
    segments, _ = paint(predicted_scene)
    things = [s for s in segments if s.name in THING_CLASSES]
    gt_segments, _ = paint(GT_SCENES[image_id])
    instances = [
        dict(bbox=box_xyxy(s.mask), bbox_label=THING_CLASSES.index(s.name),
             ignore_flag=0, mask=encode_rle(s.mask))
        for s in gt_segments if s.name in THING_CLASSES
    ]
    masks = np.stack([s.mask for s in things]) if things else np.zeros(
        (0, HEIGHT, WIDTH), dtype=bool)
    pred_instances = dict(
        bboxes=torch.tensor([box_xyxy(s.mask) for s in things],
                            dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor([scores.get(s.name, 0.9) for s in things]),
        labels=torch.tensor([THING_CLASSES.index(s.name) for s in things],
                            dtype=torch.long),
        masks=torch.from_numpy(masks))
    return dict(img_id=image_id, ori_shape=(HEIGHT, WIDTH),
                instances=instances, pred_instances=pred_instances)


def semantic_map(scene: Scene) -> np.ndarray:
    """Label map of a scene; VOID -> 255."""
    segments, void = paint(scene)
    label_map = np.full((HEIGHT, WIDTH), VOID_LABEL, dtype=np.int64)
    for segment in segments:
        label_map[segment.mask] = CLASSES.index(segment.name)
    label_map[void] = VOID_LABEL
    return label_map
