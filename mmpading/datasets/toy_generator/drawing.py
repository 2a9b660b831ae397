"""Drawing one toy scene: textured stuff bands, then flat shapes on top.

A scene is drawn from the image's own random stream, so every image depends
only on the seed and its place in the data set.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..splits import ZeroShotSplit
from .classes import COLOURS, ToyClass

IGNORE_LABEL = 255


def _shape_mask(shape: str, centre_x: float, centre_y: float, size: float,
                height: int, width: int) -> np.ndarray:
    """Binary mask (H, W) of one shape, ``size`` = side of its box."""
    canvas = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    half = size / 2
    left, top = centre_x - half, centre_y - half
    right, bottom = centre_x + half, centre_y + half
    if shape == 'circle':
        draw.ellipse([left, top, right, bottom], fill=1)
    elif shape == 'square':
        draw.rectangle([left, top, right, bottom], fill=1)
    elif shape == 'triangle':
        draw.polygon([(centre_x, top), (right, bottom), (left, bottom)],
                     fill=1)
    elif shape == 'diamond':
        draw.polygon([(centre_x, top), (right, centre_y), (centre_x, bottom),
                      (left, centre_y)],
                     fill=1)
    else:  # pragma: no cover - names are checked on parsing
        raise ValueError(f'unknown shape {shape!r}')
    return np.asarray(canvas, dtype=bool)


def _texture(texture: str, colour: str, height: int, width: int,
             phase: int) -> np.ndarray:
    """RGB texture (H, W, 3): the colour and a lighter tint of it."""
    base = np.array(COLOURS[colour], dtype=np.float32)
    tint = base + 0.45 * (255.0 - base)
    ys, xs = np.mgrid[0:height, 0:width]
    if texture == 'stripes':
        pattern = ((xs + ys + phase) // 4) % 2 == 0
    elif texture == 'checker':
        pattern = ((xs + phase) // 6 + (ys + phase) // 6) % 2 == 0
    elif texture == 'dots':
        pattern = ((xs + phase) % 8 - 3.5)**2 + ((ys + phase) % 8 -
                                                   3.5)**2 > 5.0
    else:  # pragma: no cover - names are checked on parsing
        raise ValueError(f'unknown texture {texture!r}')
    return np.where(pattern[..., None], base, tint).astype(np.uint8)


def _stuff_layout(rng: np.random.Generator, num_regions: int, height: int,
                  width: int) -> np.ndarray:
    """Region index (H, W) of 1-3 parallel, slightly tilted bands."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    horizontal = rng.random() < 0.5
    along, across = (ys, xs) if horizontal else (xs, ys)
    extent = height if horizontal else width
    other = width if horizontal else height
    slope = rng.uniform(-0.3, 0.3)
    region = np.zeros((height, width), dtype=np.int64)
    # Jittered around even spacing, so every band keeps a visible width.
    jitter = 0.3 / num_regions
    cuts = [(index / num_regions + rng.uniform(-jitter, jitter)) * extent
            for index in range(1, num_regions)]
    for cut in cuts:
        region += (along > cut + slope * (across - other / 2)).astype(
            np.int64)
    return region


@dataclass
class ToyScene:
    """One drawn image and its annotations.

    Attributes:
        image (np.ndarray): RGB uint8 (H, W, 3).
        semantic (np.ndarray): uint8 (H, W), class index, 255 = unlabelled.
        panoptic_ids (np.ndarray): int64 (H, W) segment id, 0 = void.
        segments (list[dict]): Per segment ``id``, ``class_index``, ``mask``
            (bool (H, W)), thing segments first in drawing order.
    """

    image: np.ndarray
    semantic: np.ndarray
    panoptic_ids: np.ndarray
    segments: list[dict]


def draw_scene(rng: np.random.Generator,
               classes: Sequence[ToyClass],
               split: ZeroShotSplit,
               height: int,
               width: int,
               allow_unseen: bool,
               min_things: int = 3,
               max_things: int = 5,
               noise_std: float = 0.0) -> ToyScene:
    """Draw one scene.

    Args:
        rng (np.random.Generator): The image's own random stream.
        classes (Sequence[ToyClass]): All classes, metainfo order.
        split (ZeroShotSplit): Which classes are unseen.
        height (int): Image height.
        width (int): Image width.
        allow_unseen (bool): If False only seen classes appear; if True any
            class may appear and at least one unseen class does.
        min_things (int): Fewest things attempted per image.
        max_things (int): Most things attempted per image.
        noise_std (float): Std of Gaussian pixel noise (0 = flat colours).
    """
    unseen = set(split.unseen)
    pool = [i for i, c in enumerate(classes) if allow_unseen or
            c.name not in unseen]
    thing_pool = [i for i in pool if classes[i].isthing]
    stuff_pool = [i for i in pool if not classes[i].isthing]

    num_regions = min(int(rng.choice([1, 2, 3], p=[0.2, 0.5, 0.3])),
                      len(stuff_pool))
    stuff_ids = [int(i) for i in rng.choice(stuff_pool, size=num_regions,
                                            replace=False)]
    num_things = int(rng.integers(min_things, max_things + 1))
    thing_ids = [int(rng.choice(thing_pool)) for _ in range(num_things)]
    if allow_unseen and not unseen & {classes[i].name
                                      for i in stuff_ids + thing_ids}:
        forced = int(rng.choice(
            [i for i in pool if classes[i].name in unseen]))
        if classes[forced].isthing:
            thing_ids[int(rng.integers(len(thing_ids)))] = forced
        else:
            stuff_ids[int(rng.integers(len(stuff_ids)))] = forced

    # Background: textured stuff bands.
    region = _stuff_layout(rng, len(stuff_ids), height, width)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    semantic = np.full((height, width), IGNORE_LABEL, dtype=np.uint8)
    for index, class_index in enumerate(stuff_ids):
        inside = region == index
        texture = _texture(classes[class_index].texture,
                           classes[class_index].colour, height, width,
                           int(rng.integers(0, 12)))
        image[inside] = texture[inside]
        semantic[inside] = class_index

    # Things: each new shape may occlude earlier ones, but every earlier one
    # keeps at least half of its area visible, and shapes of the same colour
    # never touch (their boundary would be invisible).
    side = min(height, width)
    placed: list[tuple[int, np.ndarray, int]] = []  # class, visible, area
    for class_index in thing_ids:
        shape = classes[class_index].shape
        colour = classes[class_index].colour
        for _ in range(20):
            size = rng.uniform(0.22, 0.4) * side
            centre_x = rng.uniform(size / 2, width - size / 2)
            centre_y = rng.uniform(size / 2, height - size / 2)
            mask = _shape_mask(shape, centre_x, centre_y, size, height, width)
            area = int(mask.sum())
            if area < 16:
                continue
            halo = _shape_mask(shape, centre_x, centre_y, size + 6, height,
                               width)
            if any(classes[c].colour == colour and (visible & halo).any()
                   for c, visible, _ in placed):
                continue
            if all((visible & ~mask).sum() >= 0.5 * full
                   for _, visible, full in placed):
                placed = [(c, visible & ~mask, full)
                          for c, visible, full in placed]
                placed.append((class_index, mask, area))
                break

    panoptic_ids = np.zeros((height, width), dtype=np.int64)
    segments = []
    for class_index, visible, _ in placed:
        colour = np.array(COLOURS[classes[class_index].colour], np.uint8)
        image[visible] = colour
        semantic[visible] = class_index
    for number, (class_index, visible, _) in enumerate(placed):
        # R channel = category id, G channel = running number: unique ids.
        segment_id = classes[class_index].category_id + 256 * (number + 1)
        panoptic_ids[visible] = segment_id
        segments.append(dict(id=segment_id, class_index=class_index,
                             mask=visible))
    for class_index in sorted(set(stuff_ids)):
        mask = semantic == class_index
        if not mask.any():
            continue
        segment_id = classes[class_index].category_id
        panoptic_ids[mask] = segment_id
        segments.append(dict(id=segment_id, class_index=class_index,
                             mask=mask))

    if noise_std > 0:
        noisy = image + rng.normal(0.0, noise_std, image.shape)
        image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    return ToyScene(image, semantic, panoptic_ids, segments)


def preview_overlay(scene: ToyScene,
                    palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Image beside its semantic colours with segment outlines (H, 2W, 3)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    colours[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    labelled = colours[scene.semantic]
    blend = (0.45 * scene.image + 0.55 * labelled).astype(np.uint8)
    ids = scene.panoptic_ids
    edge = np.zeros(ids.shape, dtype=bool)
    edge[:-1] |= ids[:-1] != ids[1:]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    blend[edge] = 255
    return np.concatenate([scene.image, blend], axis=1)
