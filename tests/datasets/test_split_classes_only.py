"""split_classes_only: a data set loads only its split's classes."""
import pytest
from mmdet.datasets import CocoDataset

from mmpading.datasets import ZeroShotCocoDataset
from mmpading.datasets.splits import get_split


@pytest.mark.parametrize('split, count', [('zsi_48_17', 65),
                                          ('zsi_65_15', 80)])
def test_the_split_classes_in_coco_order(split, count):
    dataset = ZeroShotCocoDataset(
        ann_file='missing.json', zero_shot_split=split, test_mode=True,
        split_classes_only=True, lazy_init=True)
    classes = dataset.metainfo['classes']
    expected = get_split(split).ordered_like(CocoDataset.METAINFO['classes'])
    assert tuple(classes) == expected and len(classes) == count
    # COCO order, which mmdet's label numbering of a subset needs.
    order = [CocoDataset.METAINFO['classes'].index(name) for name in classes]
    assert order == sorted(order)
    assert len(dataset.metainfo['seen_classes']) + len(
        dataset.metainfo['unseen_classes']) == count


def test_given_classes_are_narrowed_to_the_split():
    coco = CocoDataset.METAINFO['classes']
    dataset = ZeroShotCocoDataset(
        ann_file='missing.json', zero_shot_split='zsi_48_17',
        test_mode=True, split_classes_only=True, lazy_init=True,
        metainfo=dict(classes=coco[::-1]))
    # The given order is kept; classes outside the split are left out.
    assert tuple(dataset.metainfo['classes']) == get_split(
        'zsi_48_17').ordered_like(coco[::-1])


def test_without_a_split_it_is_refused():
    with pytest.raises(ValueError, match='split_classes_only=True needs a '
                       'zero_shot_split'):
        ZeroShotCocoDataset(ann_file='missing.json', test_mode=True,
                            split_classes_only=True, lazy_init=True)
