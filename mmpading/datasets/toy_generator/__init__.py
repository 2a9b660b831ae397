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

Files: :mod:`.classes` (attributes, class list, split, attribute vectors),
:mod:`.drawing` (one scene), :mod:`.coco_files` (PNG / RLE / JSON
encodings), :mod:`.generator` (:func:`generate_toy_dataset`).

The output is a pure function of the arguments: the same seed writes the same
bytes (each image draws from its own random stream seeded by
``(seed, split, index)``, PNG has no timestamps).
"""
from .classes import (
    CLASS_SETS,
    CLASSIC_STUFF_CLASSES,
    CLASSIC_THING_CLASSES,
    COLOURS,
    DEFAULT_STUFF_CLASSES,
    DEFAULT_THING_CLASSES,
    DEFAULT_UNSEEN_CLASSES,
    FLAT,
    GRID_STUFF_CLASSES,
    GRID_THING_CLASSES,
    SHAPES,
    STUFF_CATEGORY_START,
    TEXTURES,
    THING_CATEGORY_START,
    ToyClass,
    attribute_embeddings,
    attribute_vocabulary,
    build_toy_classes,
    default_toy_split,
    palette_of,
    parse_class_name,
)
from .drawing import IGNORE_LABEL, ToyScene, draw_scene
from .generator import SPLIT_IMAGE_ID_START, generate_toy_dataset

__all__ = [
    'CLASS_SETS', 'CLASSIC_STUFF_CLASSES', 'CLASSIC_THING_CLASSES',
    'COLOURS', 'DEFAULT_STUFF_CLASSES', 'DEFAULT_THING_CLASSES',
    'DEFAULT_UNSEEN_CLASSES', 'FLAT', 'GRID_STUFF_CLASSES',
    'GRID_THING_CLASSES', 'IGNORE_LABEL', 'SHAPES',
    'SPLIT_IMAGE_ID_START', 'STUFF_CATEGORY_START', 'TEXTURES',
    'THING_CATEGORY_START', 'ToyClass', 'ToyScene', 'attribute_embeddings',
    'attribute_vocabulary', 'build_toy_classes', 'default_toy_split',
    'draw_scene', 'generate_toy_dataset', 'palette_of', 'parse_class_name'
]
