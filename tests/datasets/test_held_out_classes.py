"""A data root with classes held out of everything."""
import json
import os.path as osp

import pytest

from mmpading.datasets.class_embeddings import load_class_embeddings
from mmpading.datasets.held_out_classes import write_data_root_without
from mmpading.datasets.splits import load_split

HELD = ['yellow square', 'grey dots']


@pytest.fixture(scope='module')
def held_root(tiny_toy_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('held') / 'root')
    counts = write_data_root_without(tiny_toy_root, HELD, out)
    return out, counts


def read(path):
    with open(path) as f:
        return json.load(f)


def test_the_classes_are_nowhere(held_root, tiny_toy_root):
    root, counts = held_root
    full = read(osp.join(tiny_toy_root, 'metainfo.json'))
    meta = read(osp.join(root, 'metainfo.json'))
    assert meta['classes'] == [c for c in full['classes'] if c not in HELD]
    assert counts['classes'] == len(full['classes']) - 2
    assert 'yellow square' not in meta['thing_classes']
    assert 'grey dots' not in meta['stuff_classes']
    colour = dict(zip(full['classes'], full['palette']))
    assert meta['palette'] == [colour[c] for c in meta['classes']]
    split = load_split(osp.join(root, 'split.json'))
    assert not set(HELD) & (set(split.seen) | set(split.unseen))
    assert set(split.seen) | set(split.unseen) == set(meta['classes'])
    _, names = load_class_embeddings(osp.join(root, 'class_embeddings.json'))
    assert names == meta['classes']


def test_no_training_image_shows_them(held_root, tiny_toy_root):
    root, counts = held_root
    full = read(osp.join(tiny_toy_root, 'annotations/panoptic_train.json'))
    held_ids = {c['id'] for c in full['categories'] if c['name'] in HELD}
    showing = {a['image_id'] for a in full['annotations']
               if any(s['category_id'] in held_ids
                      for s in a['segments_info'])}
    assert showing, 'the tiny set should show a held-out class'
    kept = read(osp.join(root, 'annotations/panoptic_train.json'))
    assert {i['id'] for i in kept['images']} == \
        {i['id'] for i in full['images']} - showing
    assert counts['dropped_train_images'] == len(showing)
    assert not {c['name'] for c in kept['categories']} & set(HELD)
    instances = read(osp.join(root, 'annotations/instances_train.json'))
    assert not {a['category_id'] for a in instances['annotations']} & \
        {c['id'] for c in instances['categories'] if c['name'] in HELD}


def test_validation_files_and_images_are_the_full_roots(held_root,
                                                         tiny_toy_root):
    root, _ = held_root
    for entry in ('val', 'train', 'annotations/panoptic_val.json'):
        assert osp.realpath(osp.join(root, entry)) == \
            osp.realpath(osp.join(tiny_toy_root, entry))


def test_refusals(tiny_toy_root, tmp_path):
    with pytest.raises(ValueError, match="'pink hexagon'.* not classes"):
        write_data_root_without(tiny_toy_root, ['pink hexagon'],
                                str(tmp_path / 'a'))
    (tmp_path / 'exists').mkdir()
    with pytest.raises(FileExistsError, match='nothing is overwritten'):
        write_data_root_without(tiny_toy_root, HELD, str(tmp_path / 'exists'))
