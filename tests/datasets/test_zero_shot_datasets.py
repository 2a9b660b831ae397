import json

import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmseg.datasets import COCOStuffDataset
from panopticapi.utils import rgb2id
from PIL import Image

from mmpading.datasets import (
    ZeroShotCocoDataset,
    ZeroShotCocoPanopticDataset,
    ZeroShotCOCOStuffDataset,
)
from mmpading.datasets.splits import ZeroShotSplit, get_split, save_split
from mmpading.registry import DATASETS


@pytest.fixture
def mmdet_scope():
    """Pipelines name mmdet transforms, as in a config with that scope."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture
def mmseg_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield

PANOPTIC_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True),
    dict(type='PackDetInputs'),
]


def _panoptic(root, **kwargs):
    return ZeroShotCocoPanopticDataset(
        data_root=str(root), ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        metainfo='metainfo.json', **kwargs)


def _json(root, name):
    return json.loads((root / 'annotations' / name).read_text())


def _unseen_category_ids(content):
    unseen = set(get_split('toy').unseen)
    return {c['id'] for c in content['categories'] if c['name'] in unseen}


def test_registered_in_both_scopes():
    for name in ('ZeroShotCocoPanopticDataset', 'ZeroShotCocoDataset',
                 'ZeroShotCOCOStuffDataset'):
        assert name in DATASETS
        for registry in DATASETS.registries.values():
            assert registry.get(name) is not None


def test_panoptic_loads_through_mmdet_pipeline(toy_root, mmdet_scope):
    dataset = _panoptic(toy_root, zero_shot_split='toy', zero_shot_mode='all',
                        test_mode=True, pipeline=PANOPTIC_PIPELINE)
    content = _json(toy_root, 'panoptic_train.json')
    assert len(dataset) == len(content['images'])
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    assert dataset.metainfo['classes'] == metainfo['classes']
    assert dataset.metainfo['unseen_classes'] == get_split('toy').unseen
    sample = dataset[0]
    gt = sample['data_samples']
    assert sample['inputs'].shape == (3, 64, 64)
    seg = gt.gt_sem_seg.sem_seg.numpy()[0]
    assert seg.max() < len(metainfo['classes'])  # every pixel labelled
    isthing = {c['id']: c['isthing'] for c in content['categories']}
    ann = next(a for a in content['annotations']
               if a['image_id'] == gt.img_id)
    num_things = sum(isthing[s['category_id']] for s in ann['segments_info'])
    assert len(gt.gt_instances) == num_things > 0
    assert (gt.gt_instances.labels < len(metainfo['thing_classes'])).all()
    assert gt.gt_instances.masks.masks.shape == (num_things, 64, 64)


def test_drop_unseen_counts_match_the_json(toy_root):
    content = _json(toy_root, 'panoptic_train.json')
    unseen_ids = _unseen_category_ids(content)
    with_unseen = {ann['image_id'] for ann in content['annotations']
                   if any(s['category_id'] in unseen_ids
                          for s in ann['segments_info'])}
    expected = sorted(img['id'] for img in content['images']
                      if img['id'] not in with_unseen)
    assert 0 < len(expected) < len(content['images'])
    dataset = _panoptic(toy_root, zero_shot_split='toy',
                        zero_shot_mode='drop_unseen')
    kept = sorted(dataset.get_data_info(i)['img_id']
                  for i in range(len(dataset)))
    assert kept == expected
    unseen_labels = dataset.unseen_labels
    for i in range(len(dataset)):
        labels = {s['category'] for s in
                  dataset.get_data_info(i)['segments_info']}
        assert labels.isdisjoint(unseen_labels)


def test_ignore_unseen_keeps_images_and_ignores_unseen_pixels(
        toy_root, mmdet_scope):
    dataset = _panoptic(toy_root, zero_shot_split='toy',
                        zero_shot_mode='ignore_unseen',
                        pipeline=PANOPTIC_PIPELINE)
    content = _json(toy_root, 'panoptic_train.json')
    unseen_ids = _unseen_category_ids(content)
    assert len(dataset) == len(content['images'])
    ignored_images = 0
    for index, ann in enumerate(content['annotations']):
        assert dataset.get_data_info(index)['img_id'] == ann['image_id']
        ids = rgb2id(np.asarray(Image.open(
            toy_root / 'annotations/panoptic_train' / ann['file_name'])))
        unseen_pixels = np.isin(ids, [s['id'] for s in ann['segments_info']
                                      if s['category_id'] in unseen_ids])
        gt = dataset[index]['data_samples']
        seg = gt.gt_sem_seg.sem_seg.numpy()[0]
        assert (seg[unseen_pixels] == 255).all()
        assert (seg[~unseen_pixels] != 255).all()
        labels = set(gt.gt_instances.labels.tolist())
        assert labels.isdisjoint(dataset.unseen_labels)
        ignored_images += bool(unseen_pixels.any())
    assert ignored_images > 0


def test_instances_drop_unseen_counts_match_the_json(toy_root):
    content = _json(toy_root, 'instances_train.json')
    unseen_ids = _unseen_category_ids(content)
    with_unseen = {a['image_id'] for a in content['annotations']
                   if a['category_id'] in unseen_ids}
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    # Thing classes only: a part of the toy split, as in an instances file.
    things = dict(classes=metainfo['thing_classes'])
    split = 'toy'
    dataset = ZeroShotCocoDataset(
        data_root=str(toy_root), ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), metainfo=things,
        zero_shot_split=split, zero_shot_mode='drop_unseen')
    assert len(dataset) == len(content['images']) - len(with_unseen)
    ignoring = ZeroShotCocoDataset(
        data_root=str(toy_root), ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), metainfo=things,
        zero_shot_split=split, zero_shot_mode='ignore_unseen')
    assert len(ignoring) == len(content['images'])
    kept_objects = sum(len(ignoring.get_data_info(i)['instances'])
                       for i in range(len(ignoring)))
    assert kept_objects == sum(a['category_id'] not in unseen_ids
                               for a in content['annotations'])


def _instances(root, **kwargs):
    metainfo = json.loads((root / 'metainfo.json').read_text())
    return ZeroShotCocoDataset(
        data_root=str(root), ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=metainfo['thing_classes']), **kwargs)


@pytest.mark.parametrize('kind', ['panoptic', 'instance', 'stuff'])
def test_metainfo_holds_the_split_the_metrics_read(toy_root, kind):
    """seen_classes / unseen_classes (names, in the data set's order) reach
    the evaluator as dataset_meta; a metric without a split reads them."""
    from mmpading.evaluation import GZSLSemSegMetric
    build = dict(panoptic=_panoptic, instance=_instances,
                 stuff=lambda root, **kw: _stuff(root, **kw))[kind]
    dataset = build(toy_root, zero_shot_split='toy', zero_shot_mode='all',
                    test_mode=True)
    meta = dataset.metainfo
    split = get_split('toy')
    classes = tuple(meta['classes'])
    assert meta['zero_shot_split'] == 'toy'
    assert isinstance(meta['seen_classes'], tuple)
    assert isinstance(meta['unseen_classes'], tuple)
    assert meta['seen_classes'] == tuple(
        c for c in classes if c in split.seen)
    assert meta['unseen_classes'] == tuple(
        c for c in classes if c in split.unseen)
    metric = GZSLSemSegMetric()
    metric.dataset_meta = meta
    groups = metric.class_groups()
    assert groups.seen == tuple(split.seen_ids(classes))
    assert groups.unseen == tuple(split.unseen_ids(classes))


def test_metainfo_without_a_split_holds_none(toy_root):
    meta = _panoptic(toy_root, test_mode=True).metainfo
    assert not {'zero_shot_split', 'seen_classes', 'unseen_classes'} & set(
        meta)


def _stuff(root, **kwargs):
    return ZeroShotCOCOStuffDataset(
        data_root=str(root), metainfo='metainfo.json', img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='train', seg_map_path='annotations/'
                         'semantic_train'), **kwargs)


def test_cocostuff_filters_by_label_maps(toy_root, mmseg_scope):
    split = get_split('toy')
    classes = json.loads((toy_root / 'metainfo.json').read_text())['classes']
    unseen = split.unseen_ids(classes)
    maps = sorted((toy_root / 'annotations/semantic_train').glob('*.png'))
    clean = [p.name for p in maps
             if not np.isin(np.asarray(Image.open(p)), unseen).any()]
    dataset = _stuff(toy_root, zero_shot_split='toy',
                     zero_shot_mode='drop_unseen')
    kept = [dataset.get_data_info(i)['seg_map_path'].rsplit('/', 1)[-1]
            for i in range(len(dataset))]
    assert kept == clean and 0 < len(clean) < len(maps)

    pipeline = [dict(type='LoadAnnotations')]
    ignoring = _stuff(toy_root, zero_shot_split='toy',
                      zero_shot_mode='ignore_unseen', pipeline=pipeline)
    plain = _stuff(toy_root, zero_shot_split='toy', zero_shot_mode='all',
                   test_mode=True, pipeline=pipeline)
    assert len(ignoring) == len(plain) == len(maps)
    for index in range(len(maps)):
        original = plain[index]['gt_seg_map']
        hidden = ignoring[index]['gt_seg_map']
        is_unseen = np.isin(original, unseen)
        assert (hidden[is_unseen] == 255).all()
        assert (hidden[~is_unseen] == original[~is_unseen]).all()


def test_empty_after_filtering_says_why(toy_root, tmp_path):
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    # Every image has a stuff background: all stuff unseen drops them all.
    split_file = tmp_path / 'all_stuff_unseen.json'
    save_split(ZeroShotSplit('all_stuff_unseen',
                             seen=metainfo['thing_classes'],
                             unseen=metainfo['stuff_classes']),
               str(split_file))
    num_images = len(_json(toy_root, 'panoptic_train.json')['images'])
    with pytest.raises(ValueError) as error:
        _panoptic(toy_root, zero_shot_split=str(split_file),
                  zero_shot_mode='drop_unseen')
    message = str(error.value)
    assert f'all {num_images} images' in message
    assert 'all_stuff_unseen' in message and 'ignore_unseen' in message


def test_bad_arguments_are_explained(toy_root):
    with pytest.raises(ValueError, match='zero_shot_mode must be one of'):
        _panoptic(toy_root, zero_shot_split='toy', zero_shot_mode='drop')
    with pytest.raises(ValueError, match='needs a zero_shot_split'):
        _panoptic(toy_root, zero_shot_mode='drop_unseen')
    # A COCO split on the toy classes: unknown names, closest ones listed.
    with pytest.raises(ValueError, match='not classes of the data set'):
        _panoptic(toy_root, zero_shot_split='zsp_coco', test_mode=True)


def test_coco_panoptic_names_with_zsp_split(tmp_path):
    """The ZSP split on COCO panoptic category names (JSON only)."""
    from mmdet.datasets import CocoPanopticDataset
    classes = CocoPanopticDataset.METAINFO['classes']
    things = set(CocoPanopticDataset.METAINFO['thing_classes'])
    categories = [dict(id=i + 1, name=name, isthing=int(name in things))
                  for i, name in enumerate(classes)]
    id_of = {c['name']: c['id'] for c in categories}
    shown = {1: ['person', 'grass-merged'], 2: ['person', 'sky-other-merged'],
             3: ['dog', 'wall-other-merged'], 4: ['cow']}
    content = dict(images=[], annotations=[], categories=categories)
    for image_id, names in shown.items():
        content['images'].append(dict(id=image_id, height=8, width=8,
                                      file_name=f'{image_id}.jpg'))
        content['annotations'].append(dict(
            image_id=image_id, file_name=f'{image_id}.png',
            segments_info=[dict(id=k + 1, category_id=id_of[name],
                                iscrowd=0, bbox=[0, 0, 4, 4], area=16)
                           for k, name in enumerate(names)]))
    (tmp_path / 'pan.json').write_text(json.dumps(content))
    dataset = ZeroShotCocoPanopticDataset(
        ann_file=str(tmp_path / 'pan.json'),
        data_prefix=dict(img='', seg=''), zero_shot_split='zsp_coco',
        zero_shot_mode='drop_unseen')
    assert [dataset.get_data_info(i)['img_id']
            for i in range(len(dataset))] == [3]
    assert len(dataset.metainfo['unseen_classes']) == 14


def test_cocostuff_label_maps_with_cocostuff_classes(tmp_path, mmseg_scope):
    """COCO-Stuff 171 labels, default metainfo and a class subset."""
    classes = COCOStuffDataset.METAINFO['classes']
    cow, grass, person, wall = (classes.index(n) for n in
                                ('cow', 'grass', 'person', 'wall-other'))
    maps = {'a': [person, wall], 'b': [person, grass], 'c': [cow, 255]}
    for folder in ('img', 'ann'):
        (tmp_path / folder).mkdir()
    for stem, labels in maps.items():
        (tmp_path / 'img' / f'{stem}.jpg').write_bytes(b'')
        array = np.array([labels * 4] * 8, dtype=np.uint8)
        Image.fromarray(array).save(tmp_path / 'ann' /
                                    f'{stem}_labelTrainIds.png')
    common = dict(data_root=str(tmp_path),
                  data_prefix=dict(img_path='img', seg_map_path='ann'),
                  zero_shot_split='zss_cocostuff')
    dropped = ZeroShotCOCOStuffDataset(zero_shot_mode='drop_unseen',
                                       **common)
    kept = [dropped.get_data_info(i)['seg_map_path']
            for i in range(len(dropped))]
    assert [path.rsplit('/', 1)[-1] for path in kept] == [
        'a_labelTrainIds.png']

    subset = ('person', 'cow', 'grass', 'tree')  # mmseg builds a label map
    ignoring = ZeroShotCOCOStuffDataset(
        zero_shot_mode='ignore_unseen', metainfo=dict(classes=subset),
        pipeline=[dict(type='LoadAnnotations')], **common)
    loaded = ignoring[1]['gt_seg_map']  # 'b': person and grass
    assert set(np.unique(loaded).tolist()) == {subset.index('person'), 255}
    assert ignoring.unseen_labels == {1, 2, 3}
