"""The toy classes: attributes, class list, split, attribute vectors.

Every class is a combination of attributes: a thing is ``'<colour>
<shape>'`` (flat), stuff is ``'<colour> <texture>'``. Its attribute vector
(the semantic embedding of the toy set) concatenates one-hot blocks of kind,
shape, colour and texture.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..splits import (
    TOY_STUFF_CLASSES,
    TOY_THING_CLASSES,
    TOY_UNSEEN_CLASSES,
    ZeroShotSplit,
    describe_unknown,
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

# The classes of the registered split 'toy' (mmpading/datasets/splits.py):
# the 'grid' class set, every combination of these colours with the shapes
# (20 things) and textures (9 stuff); 26 seen, 3 unseen.
GRID_THING_COLOURS = ('red', 'green', 'blue', 'yellow', 'orange')
GRID_STUFF_COLOURS = ('grey', 'brown', 'purple')
DEFAULT_THING_CLASSES = GRID_THING_CLASSES = TOY_THING_CLASSES
DEFAULT_STUFF_CLASSES = GRID_STUFF_CLASSES = TOY_STUFF_CLASSES
DEFAULT_UNSEEN_CLASSES = TOY_UNSEEN_CLASSES

# The 'classic' class set, the toy default before the grid: a near-grid of
# 4 colours x 3 shapes (10 things) and 5 stuff classes, the same unseen
# classes. Each unseen thing's colour and shape come with only 2 and 2-3
# seen partners: the generator's blue circle lands on the real blue squares
# (docs/results/unseen_diagnosis_classic_dev.md): its unseen PQ is a lottery.
CLASSIC_THING_CLASSES = ('red circle', 'green circle', 'yellow circle',
                         'blue circle', 'red square', 'blue square',
                         'yellow square', 'green triangle', 'blue triangle',
                         'yellow triangle')
CLASSIC_STUFF_CLASSES = ('grey stripes', 'brown stripes', 'grey checker',
                         'purple checker', 'brown checker')

#: Named class sets (things, stuff, unseen) of the generator
#: (``make_toy_dataset.py --class-set``); ``'grid'`` is the default.
CLASS_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...],
                            tuple[str, ...]]] = {
    'grid': (GRID_THING_CLASSES, GRID_STUFF_CLASSES, DEFAULT_UNSEEN_CLASSES),
    'classic': (CLASSIC_THING_CLASSES, CLASSIC_STUFF_CLASSES,
                DEFAULT_UNSEEN_CLASSES),
}

THING_CATEGORY_START = 1
STUFF_CATEGORY_START = 101


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
    blocks are kind (2) + shape (4) + colour (8) + texture (4): D = 18.

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
