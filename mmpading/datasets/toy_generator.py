"""Procedural toy data set in COCO formats, for zero-shot segmentation.

"Thing" classes are flat-coloured shapes (``'red circle'``), "stuff" classes
are textured background regions (``'grey stripes'``). Every class is a
combination of attributes (kind, shape, colour, texture); the unseen classes
are new combinations of attributes that seen classes show, so a model that
learns the attributes from seen classes can recognise the unseen ones from
their attribute vectors. Several things per image, later ones occluding
earlier ones.

Output layout under ``out_dir`` (``{split}`` is ``train`` and ``val``)::

    {split}/000000000001.png              RGB images
    annotations/panoptic_{split}.json     COCO panoptic
    annotations/panoptic_{split}/*.png    COCO panoptic PNGs (RGB-coded ids)
    annotations/instances_{split}.json    COCO instances (things, RLE masks)
    annotations/semantic_{split}/*.png    labels 0..K-1 (metainfo order), 255
    class_embeddings.json                 attribute vectors (one-hot blocks)
    split.json                            seen / unseen class names
    metainfo.json                         classes, thing_classes, ...

Category ids: things ``1..T``, stuff ``101..`` (not contiguous, like COCO).
Image ids: ``1..N`` for train, ``10_000_001..`` for val.

The output is a pure function of the arguments: the same seed writes the same
bytes (each image draws from its own random stream seeded by
``(seed, split, index)``, PNG has no timestamps).
"""
from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .class_embeddings import save_class_embeddings
from .splits import (
    TOY_STUFF_CLASSES,
    TOY_THING_CLASSES,
    TOY_UNSEEN_CLASSES,
    ZeroShotSplit,
    describe_unknown,
    save_split,
)

# Flat, well separated colours (RGB). Things and stuff may use any of them.
COLOURS: dict[str, tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 80, 225),
    'yellow': (240, 205, 30),
    'orange': (245, 130, 20),
    'cyan': (40, 200, 210),
    'magenta': (215, 50, 190),
    'grey': (125, 125, 125),
    'brown': (135, 85, 45),
    'purple': (115, 55, 150),
    'olive': (120, 125, 40),
}
SHAPES = ('circle', 'square', 'triangle', 'diamond')
TEXTURES = ('stripes', 'checker', 'dots')
# Things have no texture: they are flat, which is an attribute too.
FLAT = 'flat'

# The classes of the registered split 'toy' (mmpading/datasets/splits.py).
DEFAULT_THING_CLASSES = TOY_THING_CLASSES
DEFAULT_STUFF_CLASSES = TOY_STUFF_CLASSES
DEFAULT_UNSEEN_CLASSES = TOY_UNSEEN_CLASSES

THING_CATEGORY_START = 1
STUFF_CATEGORY_START = 101
SPLIT_IMAGE_ID_START = {'train': 1, 'val': 10_000_001}
IGNORE_LABEL = 255


@dataclass(frozen=True)
class ToyClass:
    """One toy class: a thing (colour + shape) or stuff (colour + texture).

    Args:
        name (str): ``'<colour> <shape>'`` or ``'<colour> <texture>'``.
        isthing (bool): Thing (countable shape) or stuff (background region).
        colour (str): Key of :data:`COLOURS`.
        form (str): Shape of a thing (:data:`SHAPES`) or texture of stuff
            (:data:`TEXTURES`).
        category_id (int): COCO category id.
    """

    name: str
    isthing: bool
    colour: str
    form: str
    category_id: int

    @property
    def shape(self) -> str | None:
        return self.form if self.isthing else None

    @property
    def texture(self) -> str:
        return FLAT if self.isthing else self.form


def parse_class_name(name: str, isthing: bool) -> tuple[str, str]:
    """Split ``'<colour> <shape or texture>'`` into its two attributes."""
    forms = SHAPES if isthing else TEXTURES
    kind = 'thing' if isthing else 'stuff'
    words = name.split()
    if len(words) != 2 or words[0] not in COLOURS or words[1] not in forms:
        raise ValueError(
            f'Toy {kind} class {name!r} is not "<colour> '
            f'<{"shape" if isthing else "texture"}>". Colours: '
            f'{", ".join(COLOURS)}; {"shapes" if isthing else "textures"}: '
            f'{", ".join(forms)}.')
    return words[0], words[1]


def build_toy_classes(
    thing_classes: Sequence[str] = DEFAULT_THING_CLASSES,
    stuff_classes: Sequence[str] = DEFAULT_STUFF_CLASSES,
    unseen_classes: Sequence[str] = DEFAULT_UNSEEN_CLASSES
) -> tuple[list[ToyClass], ZeroShotSplit]:
    """Parse and check a toy class list and its unseen classes.

    Args:
        thing_classes (Sequence[str]): ``'<colour> <shape>'`` names.
        stuff_classes (Sequence[str]): ``'<colour> <texture>'`` names.
        unseen_classes (Sequence[str]): Names among the two lists above.

    Returns:
        tuple[list[ToyClass], ZeroShotSplit]: Classes in metainfo order
        (things, then stuff) and the split (named ``'toy'``).

    Raises:
        ValueError: On a malformed or duplicate name, an unseen name that is
            not a class, or an unseen class whose attributes no seen class of
            its kind shows (it could not be recognised zero-shot).
    """
    if not thing_classes or not stuff_classes:
        raise ValueError('The toy data set needs at least one thing class '
                         'and one stuff class.')
    names = list(thing_classes) + list(stuff_classes)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f'Toy classes {duplicates} are listed twice.')
    classes = []
    for index, name in enumerate(thing_classes):
        colour, shape = parse_class_name(name, isthing=True)
        classes.append(
            ToyClass(name, True, colour, shape, THING_CATEGORY_START + index))
    stuff_start = max(STUFF_CATEGORY_START, len(thing_classes) + 1)
    for index, name in enumerate(stuff_classes):
        colour, texture = parse_class_name(name, isthing=False)
        classes.append(
            ToyClass(name, False, colour, texture, stuff_start + index))

    unknown = [name for name in unseen_classes if name not in names]
    if unknown:
        raise ValueError('Unseen toy classes that are not toy classes:\n' +
                         describe_unknown(unknown, names))
    unseen = set(unseen_classes)
    seen_classes = [c for c in classes if c.name not in unseen]
    for toy_class in classes:
        if toy_class.name not in unseen:
            continue
        same_kind = [c for c in seen_classes if c.isthing == toy_class.isthing]
        if not same_kind:
            raise ValueError(
                f'Every {"thing" if toy_class.isthing else "stuff"} class is '
                'unseen; keep at least one seen class of each kind.')
        for attribute in ('colour', 'form'):
            value = getattr(toy_class, attribute)
            if value not in {getattr(c, attribute) for c in same_kind}:
                raise ValueError(
                    f'Unseen toy class {toy_class.name!r} has the '
                    f'{"shape/texture" if attribute == "form" else attribute}'
                    f' {value!r} that no seen class of its kind shows; an '
                    'unseen class must combine attributes seen classes show.')
    split = ZeroShotSplit(
        name='toy',
        seen=tuple(c.name for c in classes if c.name not in unseen),
        unseen=tuple(c.name for c in classes if c.name in unseen))
    return classes, split


def default_toy_split() -> ZeroShotSplit:
    """The split of the toy data set written with default arguments."""
    return build_toy_classes()[1]


def attribute_vocabulary(classes: Sequence[ToyClass]) -> dict[str, list[str]]:
    """The attribute blocks used by ``classes``, in a fixed order.

    Returns:
        dict[str, list[str]]: ``kind`` (thing, stuff), ``shape``, ``colour``,
        ``texture`` (``flat`` for things); only values some class uses.
    """
    used_shapes = {c.shape for c in classes if c.isthing}
    used_colours = {c.colour for c in classes}
    used_textures = {c.texture for c in classes}
    return {
        'kind': ['thing', 'stuff'],
        'shape': [s for s in SHAPES if s in used_shapes],
        'colour': [c for c in COLOURS if c in used_colours],
        'texture': [t for t in (FLAT, ) + TEXTURES if t in used_textures],
    }


def attribute_embeddings(
        classes: Sequence[ToyClass]) -> tuple[np.ndarray, str]:
    """Attribute vectors: concatenated one-hot blocks, one row per class.

    Stuff classes have an all-zero shape block. With the default classes the
    blocks are kind (2) + shape (3) + colour (7) + texture (3): D = 15.

    Returns:
        tuple[np.ndarray, str]: float32 array (K, D) and a description of the
        layout (the ``source`` of the embedding file).
    """
    vocabulary = attribute_vocabulary(classes)
    dim = sum(len(values) for values in vocabulary.values())
    embeddings = np.zeros((len(classes), dim), dtype=np.float32)
    for row, toy_class in enumerate(classes):
        values = {
            'kind': 'thing' if toy_class.isthing else 'stuff',
            'shape': toy_class.shape,
            'colour': toy_class.colour,
            'texture': toy_class.texture,
        }
        offset = 0
        for block, options in vocabulary.items():
            if values[block] is not None:
                embeddings[row, offset + options.index(values[block])] = 1.0
            offset += len(options)
    layout = ' + '.join(f'{block}[{",".join(options)}]'
                        for block, options in vocabulary.items())
    source = (f'toy attribute vectors, one-hot blocks {layout}, D={dim}')
    return embeddings, source


def palette_of(classes: Sequence[ToyClass]) -> list[list[int]]:
    """Distinct display colours: the class colour, darker when repeated."""
    palette, used = [], {}
    for toy_class in classes:
        repeat = used.get(toy_class.colour, 0)
        used[toy_class.colour] = repeat + 1
        scale = 0.72**repeat
        palette.append(
            [int(round(v * scale)) for v in COLOURS[toy_class.colour]])
    return palette


# ---------------------------------------------------------------------------
# Drawing.


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


def _mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO box ``[x, y, w, h]`` of a non-empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1)
    ]


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


# ---------------------------------------------------------------------------
# Writing.


def _save_png(array: np.ndarray, path: str) -> None:
    Image.fromarray(array).save(path, format='PNG', compress_level=6)


def _ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """COCO panoptic encoding: id = R + 256 G + 256^2 B."""
    rgb = np.zeros(ids.shape + (3, ), dtype=np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = ids // 256 % 256
    rgb[..., 2] = ids // 256**2 % 256
    return rgb


def _encode_rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(v) for v in rle['size']],
            'counts': rle['counts'].decode('ascii')}


def _write_json(content: dict, path: str) -> None:
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(content, file, separators=(',', ':'))
        file.write('\n')


def _overlay(scene: ToyScene, palette: Sequence[Sequence[int]]) -> np.ndarray:
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


def generate_toy_dataset(out_dir: str,
                         seed: int = 0,
                         num_train: int = 400,
                         num_val: int = 100,
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
    """Write the toy data set (layout in the module docstring).

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
    _write_json(metainfo, osp.join(out_dir, 'metainfo.json'))
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
            _save_png(scene.image, osp.join(image_dir, file_name))
            _save_png(_ids_to_rgb(scene.panoptic_ids),
                      osp.join(panoptic_dir, file_name))
            _save_png(scene.semantic, osp.join(semantic_dir, file_name))
            if index < num_preview:
                _save_png(_overlay(scene, palette),
                          osp.join(out_dir, 'preview',
                                   f'{split_name}_{file_name}'))
            images.append({'id': image_id, 'file_name': file_name,
                           'height': height, 'width': width})
            segments_info = []
            for segment in scene.segments:
                toy_class = classes[segment['class_index']]
                bbox = _mask_bbox(segment['mask'])
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
                        'segmentation': _encode_rle(segment['mask']),
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

        _write_json({'info': info, 'licenses': [], 'images': images,
                     'annotations': panoptic_anns, 'categories': categories},
                    osp.join(annotation_dir, f'panoptic_{split_name}.json'))
        thing_categories = [{key: c[key] for key in
                             ('id', 'name', 'supercategory')}
                            for c in categories if c['isthing']]
        _write_json({'info': info, 'licenses': [], 'images': images,
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
