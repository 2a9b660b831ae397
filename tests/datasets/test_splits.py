import json
import re

import pytest
from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmseg.datasets import COCOStuffDataset

from mmpading.datasets.splits import (
    SPLIT_FILE_FORMAT,
    ZeroShotSplit,
    canonical_coco_name,
    get_split,
    list_splits,
    load_split,
    resolve_split,
    save_split,
)


@pytest.mark.parametrize('name, classes, num_seen, num_unseen', [
    ('zsp_coco', CocoPanopticDataset.METAINFO['classes'], 119, 14),
    ('zss_cocostuff', COCOStuffDataset.METAINFO['classes'], 156, 15),
    ('zsi_48_17', CocoDataset.METAINFO['classes'], 48, 17),
    ('zsi_65_15', CocoDataset.METAINFO['classes'], 65, 15),
])
def test_registered_coco_splits(name, classes, num_seen, num_unseen):
    split = get_split(name)
    assert (len(split.seen), len(split.unseen)) == (num_seen, num_unseen)
    assert not set(split.seen) & set(split.unseen)
    split.check_against(classes)
    unseen_ids = split.unseen_ids(classes)
    assert [classes[i] for i in unseen_ids] == [
        c for c in classes if c in split.unseen]
    assert set(unseen_ids).isdisjoint(split.seen_ids(classes))


def test_zsp_and_zss_cover_all_classes():
    for name, classes in (('zsp_coco',
                           CocoPanopticDataset.METAINFO['classes']),
                          ('zss_cocostuff',
                           COCOStuffDataset.METAINFO['classes'])):
        split = get_split(name)
        assert sorted(split.classes) == sorted(classes)
        assert split.outside_classes(classes) == []


def _readme_names(text: str, header: str) -> list[str]:
    block = text.split(header, 1)[1].split(':', 1)[1]
    block = re.split(r'\n(?:Unseen|\n)', block, maxsplit=1)[0]
    return [name.strip() for name in block.replace('\n', ' ').split(',')
            if name.strip()]


@pytest.mark.parametrize('name, seen_header, unseen_header', [
    ('zsi_48_17', 'Seen (48)', 'Unseen (17)'),
    ('zsi_65_15', 'Seen (65)', 'Unseen (15)'),
])
def test_zsi_splits_follow_word2vec_column_order(word2vec_dir, name,
                                                 seen_header, unseen_header):
    """split.classes is the column order 1..K of the word2vec files (as the
    README shipped beside them lists it)."""
    readme = (word2vec_dir.parent / 'README.md').read_text()
    seen = [canonical_coco_name(n) for n in _readme_names(readme, seen_header)]
    unseen = [
        canonical_coco_name(n) for n in _readme_names(readme, unseen_header)
    ]
    split = get_split(name)
    assert list(split.seen) == seen
    assert list(split.unseen) == unseen
    # ZSI 48/17 leaves 15 COCO classes out of both groups.
    classes = CocoDataset.METAINFO['classes']
    outside = split.outside_classes(classes)
    assert len(outside) == len(classes) - len(seen) - len(unseen)
    ordered = split.ordered_like(classes)
    assert sorted(ordered) == sorted(split.classes)
    assert [classes.index(c) for c in ordered] == sorted(
        classes.index(c) for c in ordered)


def test_alias_table_maps_to_coco_names():
    names = set(CocoDataset.METAINFO['classes'])
    for spelling in ('motorbike', 'aeroplane', 'tvmonitor', 'hair_drier',
                     'Hair Dryer', 'sofa', 'diningtable'):
        assert canonical_coco_name(spelling) in names
    assert canonical_coco_name('traffic_light') == 'traffic light'


def test_misspelt_class_suggests_the_real_name():
    split = ZeroShotSplit('typo', seen=('person', 'bicycle'),
                          unseen=('giraf', ))
    with pytest.raises(ValueError) as error:
        split.check_against(CocoDataset.METAINFO['classes'])
    message = str(error.value)
    assert "'giraf'" in message and "'giraffe'" in message
    with pytest.raises(ValueError, match='giraffe'):
        split.unseen_ids(CocoDataset.METAINFO['classes'])


def test_wrong_data_set_for_split_fails_naming_classes():
    with pytest.raises(ValueError) as error:
        get_split('zss_cocostuff').check_against(
            CocoPanopticDataset.METAINFO['classes'])
    message = str(error.value)
    # COCO-Stuff 'grass' is 'grass-merged' in COCO panoptic.
    assert "'grass'" in message and "'grass-merged'" in message


def test_unknown_split_name_suggests_registered_one():
    with pytest.raises(KeyError, match='zsp_coco'):
        get_split('zsp_cocoo')
    assert set(list_splits()) >= {
        'zsp_coco', 'zsi_48_17', 'zsi_65_15', 'zss_cocostuff', 'toy'}


def test_invalid_splits_are_rejected():
    with pytest.raises(ValueError, match='both seen and unseen'):
        ZeroShotSplit('bad', seen=('a', 'b'), unseen=('b', ))
    with pytest.raises(ValueError, match='no unseen'):
        ZeroShotSplit('bad', seen=('a', ), unseen=())


def test_split_file_round_trip_and_resolve(tmp_path):
    split = ZeroShotSplit('mine', seen=('a', 'b'), unseen=('c', ))
    path = tmp_path / 'mine.json'
    save_split(split, str(path))
    assert load_split(str(path)) == split
    assert resolve_split(str(path)) == split
    assert resolve_split('mine.json', data_root=str(tmp_path)) == split
    assert resolve_split('toy') == get_split('toy')
    assert resolve_split(split) is split
    path.write_text('{"seen": ["a"], "unseen": ["b"]}')
    with pytest.raises(ValueError, match='format'):
        load_split(str(path))


@pytest.mark.parametrize('seen, unseen, group', [
    ((), ('a', ), 'seen'),
    (('a', ), (), 'unseen'),
])
def test_a_split_needs_both_groups(tmp_path, seen, unseen, group):
    """Registered-style construction and a split file alike."""
    with pytest.raises(ValueError) as error:
        ZeroShotSplit('lopsided', seen=seen, unseen=unseen)
    assert f"Split 'lopsided' has no {group} class" in str(error.value)
    path = tmp_path / 'lopsided.json'
    path.write_text(json.dumps(dict(format=SPLIT_FILE_FORMAT,
                                    name='lopsided', seen=list(seen),
                                    unseen=list(unseen))))
    with pytest.raises(ValueError) as error:
        load_split(str(path))
    message = str(error.value)
    assert repr(str(path)) in message
    assert f"Split 'lopsided' has no {group} class" in message
    with pytest.raises(ValueError, match=f'no {group} class'):
        resolve_split(str(path))


@pytest.mark.parametrize('content, expected', [
    ('', 'is empty'),
    ('{"format": "mmpading.zero_shot_split/v1", "seen": ["a"', 'is not '
     'valid JSON'),
    ('{"format": "mmpading.zero_shot_split/v1", "seen": "ab", '
     '"unseen": ["c"]}', '"seen" must be a list of class names'),
])
def test_bad_split_file_is_named(tmp_path, content, expected):
    path = tmp_path / 'split.json'
    path.write_text(content)
    with pytest.raises(ValueError) as error:
        load_split(str(path))
    message = str(error.value)
    assert repr(str(path)) in message and expected in message
    assert 'save_split' in message  # the fix


def test_missing_split_file_names_registered_splits(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        resolve_split(str(tmp_path / 'nowhere.json'))
    assert 'nowhere.json' in str(error.value)
    assert 'zsp_coco' in str(error.value)
