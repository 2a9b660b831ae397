"""Class lists for the embedding builders (``--classes``)."""
import json

import pytest

from mmpading.datasets.embedding_builders import (
    class_list_names,
    read_class_names_file,
    resolve_class_names,
    resolve_column_names,
)
from mmpading.datasets.splits import get_split


def test_data_set_and_split_names():
    from mmdet.datasets import CocoDataset, CocoPanopticDataset
    from mmseg.datasets import COCOStuffDataset
    panoptic = list(CocoPanopticDataset.METAINFO['classes'])
    stuff = list(COCOStuffDataset.METAINFO['classes'])
    assert resolve_class_names('zsp_coco')[0] == panoptic
    assert resolve_class_names('coco_panoptic')[0] == panoptic
    assert len(panoptic) == 133
    assert resolve_class_names('zss_cocostuff')[0] == stuff
    assert resolve_class_names('coco_stuff')[0] == stuff
    assert len(stuff) == 171
    assert resolve_class_names('coco')[0] == list(
        CocoDataset.METAINFO['classes'])
    for name, count in (('zsi_48_17', 65), ('zsi_65_15', 80)):
        names, description = resolve_class_names(name)
        assert names == list(get_split(name).classes)
        assert len(names) == count and 'seen + unseen' in description
    assert {'coco_panoptic', 'zsp_coco', 'zsi_48_17'} <= set(
        class_list_names())


def test_text_and_split_files(tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('# my classes\ncat\n\n  tv, monitor  \ndog\n')
    names, description = resolve_class_names(str(path))
    assert names == ['cat', 'tv, monitor', 'dog']
    assert 'classes.txt' in description
    split_file = tmp_path / 'split.json'
    split_file.write_text(json.dumps({
        'format': 'mmpading.zero_shot_split/v1', 'name': 'mine',
        'seen': ['cat', 'dog'], 'unseen': ['cow']}))
    assert resolve_class_names(str(split_file))[0] == ['cat', 'dog', 'cow']


def test_bad_class_lists(tmp_path):
    with pytest.raises(KeyError, match="Did you mean 'zsi_48_17'"):
        resolve_class_names('zsi_48_71')
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        resolve_class_names(str(tmp_path / 'missing.txt'))
    path = tmp_path / 'dup.txt'
    path.write_text('cat\ndog\ncat\n')
    with pytest.raises(ValueError, match=r"\['cat'\] more than once"):
        read_class_names_file(str(path))
    path.write_text('# nothing\n\n')
    with pytest.raises(ValueError, match='lists no class'):
        read_class_names_file(str(path))


def test_word2vec_columns_need_a_split_order():
    assert resolve_column_names('zsi_65_15')[0] == list(
        get_split('zsi_65_15').classes)
    for name in ('coco', 'zsp_coco'):
        with pytest.raises(ValueError, match='column order'):
            resolve_column_names(name)


def test_panoptic_names_are_the_references_prompt_names():
    """PADing prompts CLIP with detectron2's raw COCO panoptic names.

    Its 14 unseen ZSP classes, as spelled in heshuting555/PADing
    PADing/data/datasets/register_coco_panoptic_zsp.py:9-24 (the names its
    get_embeddings receives, suffixes kept), are names of the
    ``coco_panoptic`` list as they are: nothing is renamed or stripped.
    """
    reference_unseen = [
        'cow', 'giraffe', 'suitcase', 'frisbee', 'skateboard', 'carrot',
        'scissors', 'cardboard', 'playingfield', 'river', 'road',
        'tree-merged', 'sky-other-merged', 'grass-merged'
    ]
    names = resolve_class_names('coco_panoptic')[0]
    assert set(reference_unseen) <= set(names)
    assert {'door-stuff', 'mirror-stuff', 'wall-other-merged'} <= set(names)
