"""What the benchmark tools of tools/analysis_tools build their runs from.

Configs that build offline (``Pretrained`` initialisations dropped, random
class embeddings where the file is missing, a small toy set generated when
``data/toy`` is absent), the upstream mmdet config of an mmpading one,
weight initialisation without log lines, and synthetic batches with
panoptic ground truth. The scripts import it by its name: a script's own
folder comes first on ``sys.path``.
"""
from __future__ import annotations

import copy
import inspect
import logging
import os.path as osp
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData, PixelData
from torch import nn

from mmpading.apis import config_path
from mmpading.apis.model_loading import config_dataset_meta
from mmpading.datasets.class_embeddings import (
    resolve_class_embeddings_path,
    save_class_embeddings,
)
from mmpading.utils.config_utils import (
    TOY_CONFIG_DIR,
    TOY_DATA_ROOT,
    toy_config,
)

DEFAULT_CONFIG = 'pading_toy_stage2'
# Dimension of the random class embeddings written when the config's file
# is missing (CLIP ViT-B/16 text embeddings are 512-d).
RANDOM_EMBEDDING_DIM = 512


# ------------------------------------------------------------------ config
def is_toy_config(path: str) -> bool:
    return osp.samefile(osp.dirname(osp.abspath(path)), TOY_CONFIG_DIR)


def default_toy_data_root(tmp_dir: str, num_train: int = 2,
                          image_size: int = 128) -> str:
    """``data/toy`` if it was generated, else a small generated set."""
    if osp.isfile(osp.join(TOY_DATA_ROOT, 'split.json')):
        return TOY_DATA_ROOT
    from mmpading.datasets.toy_generator import generate_toy_dataset
    root = osp.join(tmp_dir, 'toy')
    print(f'{TOY_DATA_ROOT} not found: generating a toy data set '
          f'({num_train} training images) in {root}')
    generate_toy_dataset(
        root, seed=0, num_train=num_train, num_val=1, image_size=image_size)
    return root


def strip_pretrained(cfg: Any) -> Any:
    """Drop ``init_cfg=dict(type='Pretrained', ...)``: nothing downloads."""
    if isinstance(cfg, dict):
        init_cfg = cfg.get('init_cfg')
        if isinstance(init_cfg, dict) and \
                init_cfg.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            strip_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            strip_pretrained(value)
    return cfg


def load_benchmark_config(config: str, data_root: str | None,
                          tmp_dir: str, num_train: int = 2) -> Config:
    """Load a stage-2 config ready to build offline.

    Args:
        config (str): Name in ``configs/toy`` or path.
        data_root (str, optional): Toy data set for a toy config.
        tmp_dir (str): Folder for generated files.
        num_train (int): Training images of a generated toy set.

    Returns:
        Config: With ``Pretrained`` initialisations dropped and, where the
        class-embedding file is missing, random embeddings in ``tmp_dir``.
    """
    path = config_path(config)
    if is_toy_config(path):
        if data_root is None:
            data_root = default_toy_data_root(tmp_dir, num_train)
        cfg = toy_config(osp.splitext(osp.basename(path))[0], data_root)
    else:
        if data_root is not None:
            raise ValueError('--data-root applies to configs/toy configs '
                             f'only, not {path}')
        cfg = Config.fromfile(path)
    if 'zero_shot' not in cfg.model:
        raise ValueError(f'{path} is not a stage-2 config (a PADing model '
                         'with a zero_shot learner)')
    strip_pretrained(cfg.model)
    zero_shot = cfg.model.zero_shot
    if not osp.isfile(
            resolve_class_embeddings_path(zero_shot.class_embeddings)):
        random_file = osp.join(tmp_dir, 'random_class_embeddings.json')
        names = list(config_dataset_meta(cfg)['classes'])
        vectors = np.random.default_rng(0).standard_normal(
            (len(names), RANDOM_EMBEDDING_DIM)).astype(np.float32)
        save_class_embeddings(random_file, names, vectors,
                              'random vectors for benchmarking')
        print(f'{zero_shot.class_embeddings} not found: random '
              f'{RANDOM_EMBEDDING_DIM}-d class embeddings instead')
        zero_shot.class_embeddings = random_file
    return cfg


def _upstream_base(cls: type) -> type:
    """First class in ``cls``'s MRO that upstream mmdet registers."""
    for base in cls.__mro__:
        if base.__module__.startswith('mmdet.') and \
                MODELS.get(base.__name__) is base:
            return base
    raise TypeError(f'{cls.__name__} has no upstream mmdet base class')


def _own_keyword_args(cls: type, upstream: type) -> set[str]:
    """Named ``__init__`` arguments that classes above ``upstream`` add."""
    upstream_names = set(inspect.signature(upstream.__init__).parameters)
    names = set()
    for klass in cls.__mro__[:cls.__mro__.index(upstream)]:
        if '__init__' in vars(klass):
            for name, param in inspect.signature(
                    klass.__init__).parameters.items():
                if param.kind in (param.POSITIONAL_OR_KEYWORD,
                                  param.KEYWORD_ONLY):
                    names.add(name)
    return names - upstream_names - {'self'}


def to_upstream_config(model_cfg: dict) -> ConfigDict:
    """The upstream mmdet model config closest to an mmpading one.

    Every ``type`` that names an mmpading class (``PADing``,
    ``ZeroShotMask2FormerHead``, ``UniversalFusionHead``, ...) is replaced
    by the first upstream mmdet class among its bases (``Mask2Former``,
    ``Mask2FormerHead``, ``MaskFormerFusionHead``), and the constructor
    arguments our subclasses add (``zero_shot``, ``query_class_cost``,
    ``seen_class_ids``, ``calibration_gamma``, ...) are dropped, found from
    the subclasses' signatures rather than listed by hand. Our classes only
    add to upstream's, so every remaining key means the same upstream.
    ``test_cfg.semantic_on`` is switched off: upstream's fusion head
    refuses it.

    Args:
        model_cfg (dict): ``cfg.model`` of an mmpading config.

    Returns:
        ConfigDict: A config that builds upstream classes only.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(convert(item) for item in value)
        if not isinstance(value, dict):
            return value
        value = dict(value)
        cls = MODELS.get(value['type']) if isinstance(
            value.get('type'), str) else None
        if inspect.isclass(cls) and cls.__module__.startswith('mmpading'):
            upstream = _upstream_base(cls)
            for name in _own_keyword_args(cls, upstream):
                value.pop(name, None)
            value['type'] = upstream.__name__
        return {key: convert(item) for key, item in value.items()}

    upstream_cfg = ConfigDict(convert(copy.deepcopy(dict(model_cfg))))
    if upstream_cfg.get('test_cfg') is not None:
        upstream_cfg.test_cfg.semantic_on = False
    return upstream_cfg


# ------------------------------------------------------------------ models
def quiet_init_weights(model: nn.Module) -> None:
    """``init_weights`` without its per-parameter log lines."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


# ----------------------------------------------------------------- batches
def fixed_pad_size(cfg: Config) -> tuple[int, int] | None:
    for augment in cfg.model.data_preprocessor.get('batch_augments') or []:
        if augment.get('type') == 'BatchFixedSizePad':
            return tuple(augment['size'])
    return None


def set_fixed_pad_size(cfg: Config, size: list[int]) -> None:
    """Make ``BatchFixedSizePad`` pad to ``size`` (height [width]).

    An explicit ``--image-size`` is the size trained at: without this, the
    data preprocessor would pad a small image up to the config's size.
    """
    height, width = (list(size) * 2)[:2]
    for augment in cfg.model.data_preprocessor.get('batch_augments') or []:
        if augment.get('type') == 'BatchFixedSizePad':
            augment['size'] = (height, width)


def synthetic_sample(seen_things: list[int], seen_stuff: list[int],
                     height: int, width: int, rng: np.random.Generator,
                     index: int) -> tuple[torch.Tensor, DetDataSample]:
    """One random image with panoptic ground truth of the given classes.

    Stuff classes fill vertical bands; 3 to 6 rectangles of thing classes
    lie on top (later ones occlude earlier ones), as ``PackDetInputs``
    would pack them.

    Args:
        seen_things (list[int]): Thing labels to draw from.
        seen_stuff (list[int]): Stuff labels to draw from.
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): Source of randomness.
        index (int): ``img_id`` of the sample.

    Returns:
        tuple[Tensor, DetDataSample]: The image, uint8 (3, H, W), and its
        ground truth (``gt_instances``, ``gt_sem_seg`` of (1, H, W)).
    """
    sem_seg = np.full((height, width), 255, dtype=np.int32)
    if seen_stuff:
        edges = np.linspace(0, width, rng.integers(2, 4) + 1).astype(int)
        for left, right in zip(edges[:-1], edges[1:]):
            sem_seg[:, left:right] = rng.choice(seen_stuff)
    instance_map = np.full((height, width), -1, dtype=np.int64)
    labels = []
    for instance in range(rng.integers(3, 7) if seen_things else 0):
        box_h = rng.integers(height // 8, height // 2 + 1)
        box_w = rng.integers(width // 8, width // 2 + 1)
        top = rng.integers(0, height - box_h + 1)
        left = rng.integers(0, width - box_w + 1)
        instance_map[top:top + box_h, left:left + box_w] = instance
        labels.append(int(rng.choice(seen_things)))
    masks, kept = [], []
    for instance, label in enumerate(labels):
        mask = instance_map == instance
        if mask.any():  # not entirely occluded
            masks.append(mask.astype(np.uint8))
            kept.append(label)
            sem_seg[mask] = label
    boxes = []
    for mask in masks:
        rows, cols = np.nonzero(mask)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    image = torch.from_numpy(
        rng.integers(0, 256, (3, height, width), dtype=np.uint8))
    sample = DetDataSample(
        metainfo=dict(
            img_id=index,
            img_shape=(height, width),
            ori_shape=(height, width),
            scale_factor=(1.0, 1.0),
            flip=False,
            flip_direction=None))
    sample.gt_instances = InstanceData(
        bboxes=HorizontalBoxes(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
        labels=torch.tensor(kept, dtype=torch.long),
        masks=BitmapMasks(
            np.stack(masks) if masks else np.zeros((0, height, width),
                                                   np.uint8), height, width))
    sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem_seg)[None])
    return image, sample


def synthetic_batches(model: nn.Module,
                      batch_size: int,
                      height: int,
                      width: int,
                      seed: int,
                      seen_only: bool = True) -> Iterator:
    """Endless batches of :func:`synthetic_sample` images.

    Args:
        model (nn.Module): The model; its panoptic head's thing and stuff
            counts give the labels, restricted to its learner's seen
            classes if ``seen_only`` (stage 2).
        batch_size (int): Images per batch.
        height (int): Image height.
        width (int): Image width.
        seed (int): Seed of the images and segments.
        seen_only (bool): Seen classes only (needs ``model.learner``).

    Yields:
        dict: ``inputs`` (list of uint8 (3, H, W)) and ``data_samples``.
    """
    head = model.panoptic_head
    num_things = head.num_things_classes
    labels = (model.learner.seen_ids.tolist() if seen_only else list(
        range(num_things + head.num_stuff_classes)))
    things = [label for label in labels if label < num_things]
    stuff = [label for label in labels if label >= num_things]
    rng = np.random.default_rng(seed)
    index = 0
    while True:
        images, samples = [], []
        for _ in range(batch_size):
            image, sample = synthetic_sample(things, stuff, height, width,
                                             rng, index)
            images.append(image)
            samples.append(sample)
            index += 1
        yield dict(inputs=images, data_samples=samples)
