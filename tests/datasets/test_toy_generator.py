import hashlib
import json

import numpy as np
import pytest
from panopticapi.utils import rgb2id
from PIL import Image
from pycocotools import mask as mask_utils

from mmpading.datasets.class_embeddings import load_class_embeddings
from mmpading.datasets.splits import get_split, load_split
from mmpading.datasets.toy_generator import (
    CLASSIC_STUFF_CLASSES,
    CLASSIC_THING_CLASSES,
    build_toy_classes,
    generate_toy_dataset,
)

SMALL = dict(num_train=4, num_val=2, image_size=48)


def _digest(root) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(
            path.read_bytes()).hexdigest()
        for path in sorted(root.rglob('*')) if path.is_file()
    }


def _content_digest(root) -> str:
    """One sha256 over every file: decoded pixels (mode, shape, bytes) for
    PNGs, so that another zlib's compression does not change it, the bytes
    of the other files."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob('*')):
        if not path.is_file():
            continue
        digest.update(str(path.relative_to(root)).encode())
        if path.suffix == '.png':
            with Image.open(path) as image:
                pixels = np.asarray(image)
                digest.update(f'{image.mode}{pixels.shape}'.encode())
                digest.update(pixels.tobytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


# Written by the generator as one 670-line module (commit 8f921a7), before
# it was split into the files of mmpading/datasets/toy_generator/: the
# split must not change a pixel or a byte of an annotation. The classes
# are the classic set, the default then.
RECORDED = dict(seed=5, num_train=3, num_val=2, image_size=(48, 64),
                noise_std=3.0, num_preview=1,
                thing_classes=CLASSIC_THING_CLASSES,
                stuff_classes=CLASSIC_STUFF_CLASSES)
RECORDED_FILES = 24
RECORDED_DIGEST = (
    '9f8f7c080f558873118a48ab22710c278891a4b808ae705f8fc430014bdb9250')


def test_output_is_the_recorded_one(tmp_path):
    generate_toy_dataset(str(tmp_path), **RECORDED)
    files = [path for path in tmp_path.rglob('*') if path.is_file()]
    assert len(files) == RECORDED_FILES
    assert _content_digest(tmp_path) == RECORDED_DIGEST


def test_public_names_keep_their_module_path():
    """What tools and users import from mmpading.datasets.toy_generator."""
    from mmpading.datasets import toy_generator
    names = ('COLOURS', 'SHAPES', 'TEXTURES', 'DEFAULT_THING_CLASSES',
             'DEFAULT_STUFF_CLASSES', 'DEFAULT_UNSEEN_CLASSES', 'ToyClass',
             'ToyScene', 'build_toy_classes', 'default_toy_split',
             'attribute_embeddings', 'draw_scene', 'generate_toy_dataset')
    assert [n for n in names if not hasattr(toy_generator, n)] == []
    assert set(names) <= set(toy_generator.__all__)
    assert toy_generator.default_toy_split() == get_split('toy')


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    generate_toy_dataset(str(tmp_path / 'a'), seed=7, **SMALL)
    generate_toy_dataset(str(tmp_path / 'b'), seed=7, **SMALL)
    generate_toy_dataset(str(tmp_path / 'c'), seed=8, **SMALL)
    first, second, other = (_digest(tmp_path / name) for name in 'abc')
    assert len(first) > 20
    assert first == second
    assert set(first) == set(other)
    changed = {name for name in first if first[name] != other[name]}
    # Every image and annotation changes; the class files do not.
    assert any(name.startswith('train/') for name in changed)
    assert 'annotations/panoptic_train.json' in changed
    assert 'metainfo.json' not in changed


def test_layout_and_metainfo(toy_root):
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    classes = metainfo['classes']
    assert classes == metainfo['thing_classes'] + metainfo['stuff_classes']
    assert len(metainfo['thing_classes']) >= 8
    assert len(metainfo['stuff_classes']) >= 4
    assert len(metainfo['palette']) == len(classes)
    assert len({tuple(c) for c in metainfo['palette']}) == len(classes)
    for split in ('train', 'val'):
        for folder in (split, f'annotations/panoptic_{split}',
                       f'annotations/semantic_{split}'):
            assert (toy_root / folder).is_dir()
    split = load_split(str(toy_root / 'split.json'))
    assert split == get_split('toy')
    things = set(metainfo['thing_classes'])
    assert len([c for c in split.unseen if c in things]) >= 2
    assert len([c for c in split.unseen if c not in things]) >= 1


def test_unseen_classes_are_new_combinations_of_seen_attributes(toy_root):
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    split = get_split('toy')
    embeddings, names = load_class_embeddings(
        str(toy_root / 'class_embeddings.json'), metainfo['classes'])
    assert names == metainfo['classes']
    assert set(np.unique(embeddings)) == {0.0, 1.0}
    assert len({row.tobytes() for row in embeddings}) == len(names)
    seen_rows = embeddings[split.seen_ids(names)]
    for row in embeddings[split.unseen_ids(names)]:
        # Every active attribute of an unseen class is shown by a seen one.
        for dim in np.flatnonzero(row):
            assert seen_rows[:, dim].any()


def test_annotations_agree_with_each_other(toy_root):
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    panoptic = json.loads(
        (toy_root / 'annotations/panoptic_train.json').read_text())
    instances = json.loads(
        (toy_root / 'annotations/instances_train.json').read_text())
    label_of = {c['id']: metainfo['classes'].index(c['name'])
                for c in panoptic['categories']}
    isthing = {c['id']: c['isthing'] for c in panoptic['categories']}
    masks_by_image = {}
    for ann in instances['annotations']:
        masks_by_image.setdefault(ann['image_id'], []).append(ann)
    for ann in panoptic['annotations']:
        ids = rgb2id(np.asarray(Image.open(
            toy_root / 'annotations/panoptic_train' / ann['file_name'])))
        semantic = np.asarray(Image.open(
            toy_root / 'annotations/semantic_train' / ann['file_name']))
        image = np.asarray(Image.open(toy_root / 'train' / ann['file_name']))
        assert image.shape == ids.shape + (3, ) == semantic.shape + (3, )
        things = 0
        for segment in ann['segments_info']:
            mask = ids == segment['id']
            assert mask.sum() == segment['area'] > 0
            assert (semantic[mask] == label_of[segment['category_id']]).all()
            things += isthing[segment['category_id']]
        # Every pixel belongs to a segment.
        assert np.isin(ids, [s['id'] for s in ann['segments_info']]).all()
        objects = masks_by_image.get(ann['image_id'], [])
        assert len(objects) == things >= 1
        for obj in objects:
            mask = mask_utils.decode(obj['segmentation']).astype(bool)
            assert mask.sum() == obj['area']
            assert (semantic[mask] == label_of[obj['category_id']]).all()


def test_bad_class_configuration_is_explained():
    with pytest.raises(ValueError, match='no seen class'):
        build_toy_classes(['red circle', 'blue square', 'green circle'],
                          ['grey stripes'], ['green circle'])
    with pytest.raises(ValueError, match='closest'):
        build_toy_classes(['red circle', 'blue square'], ['grey stripes'],
                          ['red circel'])
    with pytest.raises(ValueError, match='Colours'):
        build_toy_classes(['pink circle'], ['grey stripes'], [])
