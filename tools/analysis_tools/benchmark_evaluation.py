"""Time the GZSL evaluation with the reference tools and with hotcoco.

Generates a synthetic COCO-like prediction set (ground-truth panoptic PNGs +
JSON, the instance JSON derived from them, semantic maps; predicted panoptic
PNGs, a fixed number of instances per image as RLE masks, predicted
semantic maps) into a work folder, then evaluates it with
``GZSLPanopticMetric``, ``GZSLInstanceMetric`` (``segm`` and ``bbox``) and
``GZSLSemSegMetric``, each once with ``eval_backend='reference'``
(panopticapi / pycocotools / mmseg) and once with ``eval_backend='hotcoco'``,
in the same run. Both backends see the same batches in turn (loading is not
timed); what is timed is what a test loop spends in the metrics: building
them (annotation files), ``process`` of every batch and ``evaluate``.

Every returned key (``classwise=True``, so per-class scores too) must agree
to ``--tolerance`` (1e-6, in the metrics' percent units) between the
backends; the script prints the largest difference, ``equal: yes`` / ``no``,
and exits with 1 when they differ.

The data set has COCO panoptic's 133 classes (80 things, 53 stuff), seen /
unseen as in the ``zsp_coco`` split, ``--height`` x ``--width`` images
(default 480 x 640, COCO's most common size). It is written once per
setting into ``work_dirs/benchmark_evaluation/<setting>/`` and reused;
a folder that exists without this script's ``manifest.json`` is never
written into.

Example::

    python tools/analysis_tools/benchmark_evaluation.py  # 5,000 images
    python tools/analysis_tools/benchmark_evaluation.py --num-images 50
    RAYON_NUM_THREADS=1 python tools/analysis_tools/benchmark_evaluation.py \\
        --backends hotcoco     # hotcoco on one thread, no reference run
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import os.path as osp
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from mmengine.utils import ProgressBar
from pycocotools import mask as mask_utils

INSTANCE_OFFSET = 1000  # mmdet's label + instance * INSTANCE_OFFSET
VOID_LABEL = 255  # semantic maps
MANIFEST = 'manifest.json'
FORMAT_VERSION = 1
BACKENDS = ('reference', 'hotcoco')
METRIC_NAMES = ('panoptic', 'instance', 'semantic')


# --------------------------------------------------------------- the data
@dataclass(frozen=True)
class ClassSet:
    """Classes of the synthetic data set, things first (mmdet's order).

    Args:
        things (tuple[str, ...]): Thing class names.
        stuff (tuple[str, ...]): Stuff class names.
        unseen (tuple[str, ...]): The unseen classes among them.
        absent (tuple[str, ...]): Classes never in the ground truth, only
            predicted (left out of the means and listed by the metrics).
    """

    things: tuple[str, ...]
    stuff: tuple[str, ...]
    unseen: tuple[str, ...]
    absent: tuple[str, ...] = ()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.things + self.stuff

    def category_id(self, label: int) -> int:
        # Not contiguous, as in COCO: labels must go through the file.
        return 2 * label + 1


def coco_class_set() -> ClassSet:
    """COCO panoptic's 133 classes with the ``zsp_coco`` unseen classes."""
    from mmdet.datasets import CocoPanopticDataset

    from mmpading.datasets.splits import resolve_split
    meta = CocoPanopticDataset.METAINFO
    split = resolve_split('zsp_coco')
    return ClassSet(things=tuple(meta['thing_classes']),
                    stuff=tuple(meta['stuff_classes']),
                    unseen=tuple(c for c in split.unseen
                                 if c in meta['classes']))


@dataclass(frozen=True)
class SynthSpec:
    """What :func:`generate` writes.

    Args:
        num_images (int): Number of images.
        height (int): Image height.
        width (int): Image width.
        instances_per_image (int): Predicted instances per image.
        seed (int): Seed; image ``i`` draws from ``(seed, i)``.
        crowd_prob (float): Chance that a ground-truth thing is a crowd
            region.
        empty_prob (float): Chance that an image has no prediction at all
            (all-VOID panoptic map, no instance, no semantic label).
        classes (ClassSet): The classes.
    """

    num_images: int
    height: int = 480
    width: int = 640
    instances_per_image: int = 100
    seed: int = 0
    crowd_prob: float = 0.03
    empty_prob: float = 0.0
    classes: ClassSet = field(default_factory=coco_class_set)


@dataclass(frozen=True)
class SynthData:
    """Paths of a generated data set."""

    root: str
    spec: SynthSpec

    @property
    def panoptic_json(self) -> str:
        return osp.join(self.root, 'panoptic.json')

    @property
    def panoptic_dir(self) -> str:
        return osp.join(self.root, 'panoptic')

    @property
    def instance_json(self) -> str:
        return osp.join(self.root, 'instances.json')

    def path(self, kind: str, image_id: int, ext: str = 'png') -> str:
        return osp.join(self.root, kind, f'{image_id:012d}.{ext}')


# A shape: (kind, label, cx, cy, half width, half height); kind 'rect',
# 'ellipse' or 'band' (stuff: rows cy - hh to cy + hh, full width).
Shape = tuple[str, int, float, float, float, float]


def _polygon(shape: Shape, height: int, width: int) -> np.ndarray:
    """The outline of a shape as an (N, 2) float polygon (x, y)."""
    kind, _, cx, cy, hw, hh = shape
    if kind == 'band':
        return np.array([[0, cy - hh], [width, cy - hh], [width, cy + hh],
                         [0, cy + hh]], dtype=np.float64)
    if kind == 'rect':
        return np.array([[cx - hw, cy - hh], [cx + hw, cy - hh],
                         [cx + hw, cy + hh], [cx - hw, cy + hh]],
                        dtype=np.float64)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return np.stack([cx + hw * np.cos(angles), cy + hh * np.sin(angles)], 1)


def _paint(shapes: Sequence[Shape], values: Sequence[int], background: int,
           height: int, width: int) -> np.ndarray:
    """An int32 map with ``values[i]`` painted over shape ``i``, in order."""
    canvas = np.full((height, width), background, dtype=np.int32)
    for shape, value in zip(shapes, values):
        points = np.round(_polygon(shape, height, width)).astype(np.int32)
        cv2.fillPoly(canvas, [points], int(value))
    return canvas


def _random_thing(rng: np.random.Generator, label: int, height: int,
                  width: int) -> Shape:
    # Areas from about 0.1% to 25% of the image, log-uniform (COCO has
    # many small objects).
    area = math.exp(rng.uniform(math.log(0.001), math.log(0.25)))
    aspect = math.exp(rng.uniform(-0.8, 0.8))
    hw = 0.5 * math.sqrt(area * height * width * aspect)
    hh = 0.5 * math.sqrt(area * height * width / aspect)
    return (str(rng.choice(['rect', 'ellipse'])), label,
            rng.uniform(0, width), rng.uniform(0, height), hw, hh)


def _jitter(rng: np.random.Generator, shape: Shape, amount: float) -> Shape:
    kind, label, cx, cy, hw, hh = shape
    if kind == 'band':
        return (kind, label, cx, cy + rng.normal(0, amount * hh),
                hw, hh * math.exp(rng.normal(0, amount)))
    return (kind, label, cx + rng.normal(0, amount * hw),
            cy + rng.normal(0, amount * hh),
            hw * math.exp(rng.normal(0, amount)),
            hh * math.exp(rng.normal(0, amount)))


def _relabel(rng: np.random.Generator, label: int, pool: Sequence[int],
             seen: Sequence[int], unseen_labels: set[int]) -> int:
    """A wrong label: an unseen class mostly becomes a seen one (the
    generalized zero-shot failure), anything else a random class."""
    if label in unseen_labels and seen and rng.random() < 0.7:
        return int(rng.choice(seen))
    return int(rng.choice(pool))


def _image_scene(spec: SynthSpec, image_id: int) -> dict:
    """Ground-truth and predicted shapes of one image (no pixels yet)."""
    rng = np.random.default_rng([spec.seed, image_id])
    cs, height, width = spec.classes, spec.height, spec.width
    num_things = len(cs.things)
    absent = {cs.classes.index(c) for c in cs.absent}
    unseen = {cs.classes.index(c) for c in cs.unseen}
    thing_pool = [i for i in range(num_things) if i not in absent]
    stuff_pool = [i for i in range(num_things, len(cs.classes))
                  if i not in absent]
    all_things = list(range(num_things))
    all_stuff = list(range(num_things, len(cs.classes)))

    # Ground truth: 1-4 horizontal stuff bands, then things painted over
    # them (later ones occlude), a crowd region now and then, and a VOID
    # blob in half of the images.
    num_bands = int(rng.integers(1, 5))
    cuts = np.sort(rng.uniform(0, height, num_bands - 1))
    edges = np.concatenate([[0.0], cuts, [float(height)]])
    gt_shapes: list[Shape] = []
    for top, bottom in zip(edges[:-1], edges[1:]):
        gt_shapes.append(('band', int(rng.choice(stuff_pool)), width / 2,
                          (top + bottom) / 2, width / 2,
                          (bottom - top) / 2 + 0.5))
    num_gt_things = int(min(rng.poisson(7), 20))
    crowd = [False] * num_bands
    for _ in range(num_gt_things):
        gt_shapes.append(_random_thing(rng, int(rng.choice(thing_pool)),
                                       height, width))
        crowd.append(bool(rng.random() < spec.crowd_prob))
    void_blob = (_random_thing(rng, -1, height, width)
                 if rng.random() < 0.5 else None)

    # Predictions: each ground-truth shape jittered, 10% dropped, 15%
    # mislabelled; plus a few false positives of any class (also classes
    # without ground truth).
    empty = bool(rng.random() < spec.empty_prob)
    seen_things = [i for i in all_things if i not in unseen]
    seen_stuff = [i for i in all_stuff if i not in unseen]
    pred_shapes: list[Shape] = []
    for shape in gt_shapes:
        is_band = shape[0] == 'band'
        if not is_band and rng.random() < 0.1:
            continue
        kind, label, *geometry = _jitter(rng, shape, 0.08)
        if rng.random() < 0.15:
            label = _relabel(rng, label, all_stuff if is_band else all_things,
                             seen_stuff if is_band else seen_things, unseen)
        pred_shapes.append((kind, label, *geometry))
    for _ in range(int(rng.integers(0, 4))):
        pred_shapes.append(_random_thing(
            rng, int(rng.choice(all_things + all_stuff)), height, width))
    pred_void = (_random_thing(rng, -1, height, width)
                 if rng.random() < 0.3 else None)

    # Instances: 1-4 detections per ground-truth thing (jittered, mostly the
    # right class), then random ones up to instances_per_image. Scores are
    # rounded to 3 decimals, so ties occur as with real detectors.
    detections: list[tuple[Shape, float]] = []
    for shape in gt_shapes[num_bands:]:
        for _ in range(int(rng.integers(1, 5))):
            kind, label, *geometry = _jitter(rng, shape, 0.12)
            right = rng.random() < 0.75
            if not right:
                label = _relabel(rng, label, all_things, seen_things, unseen)
            score = rng.uniform(0.4, 1.0) if right else rng.uniform(0.1, 0.8)
            detections.append(((kind, label, *geometry), score))
    while len(detections) < spec.instances_per_image:
        detections.append((_random_thing(rng, int(rng.choice(all_things)),
                                         height, width),
                           rng.uniform(0.0, 0.5)))
    detections = detections[:spec.instances_per_image]
    if empty:
        pred_shapes, detections, pred_void = [], [], None
    return dict(gt_shapes=gt_shapes, crowd=crowd, void=void_blob,
                pred_shapes=pred_shapes, pred_void=pred_void, empty=empty,
                detections=[(s, round(float(p), 3)) for s, p in detections])


def _encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode()
    return rle


def _write_png(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, image):
        raise OSError(f'cannot write {path}')


def _id_to_bgr(id_map: np.ndarray) -> np.ndarray:
    """panopticapi's colour of each id (R + 256 G + 256^2 B), as BGR."""
    rgb = id_map.astype('<u4').view(np.uint8).reshape(*id_map.shape, 4)
    return np.ascontiguousarray(rgb[..., 2::-1])


def _write_image(data: SynthData, image_id: int) -> tuple[dict, list[dict]]:
    """Write one image's files; return its panoptic annotation and its
    instance annotations (without ids)."""
    spec, cs = data.spec, data.spec.classes
    height, width = spec.height, spec.width
    num_things, num_classes = len(cs.things), len(cs.classes)
    scene = _image_scene(spec, image_id)
    rng = np.random.default_rng([spec.seed, image_id, 1])

    # Ground truth: segment ids are random 24-bit colours, VOID is 0.
    shapes = scene['gt_shapes']
    seg_ids = np.unique(rng.integers(1, 1 << 24, size=len(shapes) + 8))
    seg_ids = rng.permutation(seg_ids)[:len(shapes)]
    values = list(seg_ids)
    paint_shapes = list(shapes)
    if scene['void'] is not None:
        paint_shapes.append(scene['void'])
        values.append(0)
    id_map = _paint(paint_shapes, values, 0, height, width)
    ids, areas = np.unique(id_map, return_counts=True)
    area_of = dict(zip(ids.tolist(), areas.tolist()))
    segments_info, instances = [], []
    semantic = np.full((height, width), VOID_LABEL, dtype=np.uint8)
    for shape, seg_id, is_crowd in zip(shapes, seg_ids.tolist(),
                                       scene['crowd']):
        if seg_id not in area_of:
            continue  # fully occluded
        mask = id_map == seg_id
        rle = _encode(mask)
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        label = shape[1]
        semantic[mask] = label
        segments_info.append(dict(
            id=seg_id, category_id=cs.category_id(label),
            area=area_of[seg_id], bbox=bbox, iscrowd=int(is_crowd)))
        if label < num_things:
            instances.append(dict(
                image_id=image_id, category_id=cs.category_id(label),
                segmentation=rle, area=float(area_of[seg_id]), bbox=bbox,
                iscrowd=int(is_crowd)))
    _write_png(data.path('panoptic', image_id), _id_to_bgr(id_map))
    _write_png(data.path('semantic_gt', image_id), semantic)

    # Predicted panoptic map as a model gives it: label + instance *
    # INSTANCE_OFFSET for things, label for stuff, num_classes for VOID.
    pred_values = []
    for instance, shape in enumerate(scene['pred_shapes'], start=1):
        label = shape[1]
        pred_values.append(label + (instance * INSTANCE_OFFSET
                                    if label < num_things else 0))
    pred_shapes = list(scene['pred_shapes'])
    if scene['pred_void'] is not None:
        pred_shapes.append(scene['pred_void'])
        pred_values.append(num_classes)
    pan = _paint(pred_shapes, pred_values, num_classes, height, width)
    _write_png(data.path('pred_panoptic', image_id), _id_to_bgr(pan))
    labels = pan % INSTANCE_OFFSET
    _write_png(data.path('pred_semantic', image_id),
               np.where(labels == num_classes, VOID_LABEL,
                        labels).astype(np.uint8))

    # Predicted instances: RLE masks from polygons (pycocotools' C code).
    detections = scene['detections']
    masks = [
        mask_utils.merge(mask_utils.frPyObjects(
            [_polygon(shape, height, width).ravel().tolist()], height,
            width)) for shape, _ in detections
    ]
    boxes = (mask_utils.toBbox(masks).reshape(-1, 4) if masks else
             np.zeros((0, 4)))
    for rle in masks:
        rle['counts'] = rle['counts'].decode()
    with open(data.path('pred_instances', image_id, 'json'), 'w') as file:
        json.dump(dict(
            bboxes=np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]],
                                  axis=1).tolist(),
            scores=[score for _, score in detections],
            labels=[shape[1] for shape, _ in detections],
            masks=masks), file)
    annotation = dict(image_id=image_id, file_name=f'{image_id:012d}.png',
                      segments_info=segments_info)
    return annotation, instances


def _manifest(spec: SynthSpec) -> dict:
    # Through JSON, so that it compares equal to the file (tuples: lists).
    return json.loads(json.dumps(dict(format=FORMAT_VERSION,
                                      spec=asdict(spec))))


def setting_name(spec: SynthSpec) -> str:
    """The folder name of a setting."""
    return (f'{spec.num_images}img_{spec.height}x{spec.width}_'
            f'{spec.instances_per_image}inst_seed{spec.seed}')


def generate(spec: SynthSpec, root: str, progress: bool = True) -> SynthData:
    """Write the data set of ``spec`` into ``root``, or reuse it.

    Args:
        spec (SynthSpec): What to write.
        root (str): The folder; it must not exist, or hold the data set of
            the same ``spec`` (its ``manifest.json``).
        progress (bool): Show a progress bar.

    Returns:
        SynthData: The paths.

    Raises:
        FileExistsError: If ``root`` exists and is not this script's data
            set of ``spec`` (nothing is overwritten).
    """
    data = SynthData(root=root, spec=spec)
    manifest_path = osp.join(root, MANIFEST)
    if osp.exists(root):
        manifest = None
        if osp.isfile(manifest_path):
            with open(manifest_path) as file:
                manifest = json.load(file)
        if manifest == _manifest(spec):
            return data
        raise FileExistsError(
            f'{root} exists and is not the data set of this setting (its '
            f'{MANIFEST} is missing or different); give another --work-dir '
            'or remove the folder yourself.')
    for kind in ('panoptic', 'semantic_gt', 'pred_panoptic', 'pred_semantic',
                 'pred_instances'):
        os.makedirs(osp.join(root, kind))
    cs = spec.classes
    images, annotations, instances = [], [], []
    bar = ProgressBar(spec.num_images, file=sys.stderr) if progress else None
    for image_id in range(1, spec.num_images + 1):
        images.append(dict(id=image_id, file_name=f'{image_id:012d}.jpg',
                           height=spec.height, width=spec.width))
        annotation, image_instances = _write_image(data, image_id)
        annotations.append(annotation)
        instances.extend(image_instances)
        if bar is not None:
            bar.update()
    for index, instance in enumerate(instances, start=1):
        instance['id'] = index
    categories = [
        dict(id=cs.category_id(label), name=name,
             isthing=int(label < len(cs.things)), supercategory='none')
        for label, name in enumerate(cs.classes)
    ]
    with open(data.panoptic_json, 'w') as file:
        json.dump(dict(images=images, annotations=annotations,
                       categories=categories), file)
    with open(data.instance_json, 'w') as file:
        json.dump(dict(images=images, annotations=instances,
                       categories=categories[:len(cs.things)]), file)
    # Written last: a folder without it is an interrupted generation.
    with open(manifest_path, 'w') as file:
        json.dump(_manifest(spec), file)
    return data


# ------------------------------------------------------------ the samples
def load_batch(data: SynthData, image_ids: Sequence[int]) -> dict:
    """The data samples of a batch for each metric, as a model and mmdet's
    / mmseg's pipelines produce them."""
    spec = data.spec
    height, width = spec.height, spec.width
    panoptic, instance, semantic = [], [], []
    for image_id in image_ids:
        img_path = osp.join(data.root, 'images', f'{image_id:012d}.jpg')
        bgr = cv2.imread(data.path('pred_panoptic', image_id),
                         cv2.IMREAD_COLOR)
        bgr = bgr.astype(np.int64)
        pan = bgr[..., 2] + 256 * bgr[..., 1] + 65536 * bgr[..., 0]
        panoptic.append(dict(
            img_id=image_id, img_path=img_path, ori_shape=(height, width),
            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan)[None])))
        with open(data.path('pred_instances', image_id, 'json')) as file:
            pred = json.load(file)
        instance.append(dict(
            img_id=image_id, ori_shape=(height, width),
            pred_instances=dict(
                bboxes=torch.tensor(pred['bboxes'],
                                    dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor(pred['scores'], dtype=torch.float32),
                labels=torch.tensor(pred['labels'], dtype=torch.int64),
                masks=pred['masks'])))
        gt = cv2.imread(data.path('semantic_gt', image_id),
                        cv2.IMREAD_UNCHANGED)
        pred_sem = cv2.imread(data.path('pred_semantic', image_id),
                              cv2.IMREAD_UNCHANGED)
        semantic.append(dict(
            img_path=img_path,
            pred_sem_seg=dict(data=torch.from_numpy(
                pred_sem.astype(np.int64))[None]),
            gt_sem_seg=dict(data=torch.from_numpy(gt.astype(np.int64))[None])))
    return dict(panoptic=panoptic, instance=instance, semantic=semantic)


def build_metric(data: SynthData, backend: str, name: str) -> Any:
    """One GZSL metric (``name`` of :data:`METRIC_NAMES`) of a backend,
    with ``dataset_meta`` set."""
    from mmpading.evaluation import (
        GZSLInstanceMetric,
        GZSLPanopticMetric,
        GZSLSemSegMetric,
    )
    cs = data.spec.classes
    unseen = list(cs.unseen)
    if name == 'panoptic':
        metric = GZSLPanopticMetric(
            unseen_classes=unseen, ann_file=data.panoptic_json,
            seg_prefix=data.panoptic_dir, classwise=True,
            eval_backend=backend)
        metric.dataset_meta = dict(classes=cs.classes,
                                   thing_classes=cs.things,
                                   stuff_classes=cs.stuff)
    elif name == 'instance':
        metric = GZSLInstanceMetric(
            unseen_classes=[c for c in unseen if c in cs.things],
            ann_file=data.instance_json, classwise=True,
            eval_backend=backend)
        metric.dataset_meta = dict(classes=cs.things)
    else:
        metric = GZSLSemSegMetric(unseen_classes=unseen, classwise=True,
                                  eval_backend=backend)
        metric.dataset_meta = dict(classes=cs.classes)
    return metric


def batches(num_images: int, batch_size: int) -> Iterator[list[int]]:
    ids = list(range(1, num_images + 1))
    for start in range(0, num_images, batch_size):
        yield ids[start:start + batch_size]


def evaluate_backends(data: SynthData, backends: Sequence[str],
                      batch_size: int = 1, progress: bool = True) -> dict:
    """Evaluate ``data`` with each backend's metrics, batch by batch.

    Each batch is loaded once; every backend gets its own copy of it
    (mmdet's panoptic metric writes VOID into the predicted map it is
    given).

    Returns:
        dict: ``results[backend][metric]`` (the metric's keys) and
        ``seconds[backend][metric]`` (set-up + process + evaluate).
    """
    from mmengine.logging import MMLogger

    # The metrics log their tables to the current logger: this one, at
    # ERROR level, keeps them out of the report.
    MMLogger.get_instance('benchmark_evaluation', log_level='ERROR')
    seconds = {b: dict.fromkeys(METRIC_NAMES, 0.0) for b in backends}
    metrics = {}
    for backend in backends:
        for name in METRIC_NAMES:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                # pycocotools prints while it loads the annotation file.
                one = build_metric(data, backend, name)
            seconds[backend][name] += time.perf_counter() - start
            metrics.setdefault(backend, {})[name] = one
    num_images = data.spec.num_images
    bar = ProgressBar(num_images, file=sys.stderr) if progress else None
    for image_ids in batches(num_images, batch_size):
        batch = load_batch(data, image_ids)
        for backend in backends:
            for name in METRIC_NAMES:
                samples = copy.deepcopy(batch[name])
                start = time.perf_counter()
                metrics[backend][name].process({}, samples)
                seconds[backend][name] += time.perf_counter() - start
        if bar is not None:
            for _ in image_ids:
                bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    results = {}
    for backend in backends:
        for name in METRIC_NAMES:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                values = metrics[backend][name].evaluate(num_images)
            seconds[backend][name] += time.perf_counter() - start
            results.setdefault(backend, {})[name] = values
    return dict(results=results, seconds=seconds)


def compare(results: dict, tolerance: float) -> dict:
    """Largest difference per metric between the two backends' keys.

    Returns:
        dict: Per metric ``keys`` (number compared), ``max_abs_diff``,
        ``worst_key``, ``mismatched`` (keys over ``tolerance`` or present
        in one backend only); ``equal`` overall.
    """
    report = {}
    for name in METRIC_NAMES:
        ref, hot = results['reference'][name], results['hotcoco'][name]
        mismatched = sorted(set(ref) ^ set(hot))
        worst, worst_key = 0.0, None
        for key in sorted(set(ref) & set(hot)):
            a, b = ref[key], hot[key]
            if math.isnan(a) or math.isnan(b):
                diff = 0.0 if math.isnan(a) and math.isnan(b) else math.inf
            else:
                diff = abs(a - b)
            if diff > worst or worst_key is None:
                worst, worst_key = diff, key
            if diff > tolerance:
                mismatched.append(key)
        report[name] = dict(keys=len(set(ref) | set(hot)),
                            max_abs_diff=worst, worst_key=worst_key,
                            mismatched=mismatched)
    report['equal'] = all(not report[n]['mismatched'] for n in METRIC_NAMES)
    return report


def print_report(seconds: dict, equality: dict | None,
                 tolerance: float) -> None:
    backends = list(seconds)
    header = ['metric', *[f'{b} s' for b in backends]]
    if len(backends) == 2:
        header.append('ratio')
    rows = []
    for name in (*METRIC_NAMES, 'total'):
        times = [sum(seconds[b].values()) if name == 'total' else
                 seconds[b][name] for b in backends]
        row = [name, *[f'{t:.2f}' for t in times]]
        if len(backends) == 2:
            row.append(f'{times[0] / times[1]:.1f}x' if times[1] else '-')
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows])
              for i in range(len(header))]
    print('\nGZSL evaluation time (set-up + process + evaluate)')
    print('  '.join(h.rjust(w) for h, w in zip(header, widths)))
    print('-' * (sum(widths) + 2 * (len(widths) - 1)))
    for row in rows:
        print('  '.join(c.rjust(w) for c, w in zip(row, widths)))
    if equality is None:
        return
    print(f'\nEquality of every key, reference vs hotcoco (tolerance '
          f'{tolerance:g}):')
    for name in METRIC_NAMES:
        item = equality[name]
        print(f'  {name}: {item["keys"]} keys, max |diff| '
              f'{item["max_abs_diff"]:.3g} ({item["worst_key"]}), '
              f'mismatched: {len(item["mismatched"])}'
              + (f' {item["mismatched"][:5]}' if item['mismatched'] else ''))
    print(f'equal: {"yes" if equality["equal"] else "no"}')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time the GZSL metrics with the reference tools and '
        'with hotcoco on a synthetic COCO-sized prediction set, and check '
        'that both give the same keys.')
    parser.add_argument('--num-images', type=int, default=5000,
                        help='images (COCO val: 5,000)')
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--instances', type=int, default=100,
                        help='predicted instances per image')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per process() call (mmdet tests with '
                        '1)')
    parser.add_argument('--backends', nargs='+', choices=BACKENDS,
                        default=list(BACKENDS),
                        help='both (default) for the ratio and the '
                        'equality check')
    parser.add_argument('--tolerance', type=float, default=1e-6,
                        help='largest |difference| allowed per key')
    parser.add_argument('--work-dir', default=None,
                        help='data set folder (default: work_dirs/'
                        'benchmark_evaluation/<setting>)')
    parser.add_argument('--out', default=None,
                        help='JSON with times and results (default: '
                        '<work-dir>/benchmark_<backends>.json)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (mmseg\'s histograms); '
                        'hotcoco takes RAYON_NUM_THREADS (default: all '
                        'cores)')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.batch_size < 1 or args.instances < 0:
        parser.error('--num-images and --batch-size must be >= 1, '
                     '--instances >= 0')
    if args.height < 16 or args.width < 16:
        parser.error('--height and --width must be >= 16')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = SynthSpec(num_images=args.num_images, height=args.height,
                     width=args.width, instances_per_image=args.instances,
                     seed=args.seed)
    root = args.work_dir or osp.join('work_dirs', 'benchmark_evaluation',
                                     setting_name(spec))
    print(f'data set: {root} ({spec.num_images} images, {spec.height} x '
          f'{spec.width}, {spec.instances_per_image} instances per image, '
          f'{len(spec.classes.classes)} classes)', flush=True)
    start = time.perf_counter()
    try:
        data = generate(spec, root, progress=not args.no_progress)
    except FileExistsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'data set ready in {time.perf_counter() - start:.1f} s',
          flush=True)
    if 'hotcoco' in args.backends:
        from mmpading.evaluation.metrics.gzsl_utils import check_eval_backend
        try:
            check_eval_backend('benchmark_evaluation', 'hotcoco')
        except ImportError as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
    run = evaluate_backends(data, args.backends, args.batch_size,
                            progress=not args.no_progress)
    equality = (compare(run['results'], args.tolerance)
                if len(args.backends) == 2 else None)
    print_report(run['seconds'], equality, args.tolerance)
    out = args.out or osp.join(
        root, f'benchmark_{"_".join(args.backends)}.json')
    with open(out, 'w') as file:
        json.dump(dict(spec=asdict(spec), batch_size=args.batch_size,
                       threads=args.threads,
                       rayon_num_threads=os.environ.get('RAYON_NUM_THREADS'),
                       seconds=run['seconds'], equality=equality,
                       results=run['results']), file, indent=1)
    print(f'written: {out}')
    return 0 if equality is None or equality['equal'] else 1


if __name__ == '__main__':
    sys.exit(main())
