"""The head names of earlier mmpading configs: upstream heads plus
``query_class_cost``, buildable from any OpenMMLab config."""
import pytest
from mmdet import registry as mmdet_registry
from mmdet.models.dense_heads import Mask2FormerHead
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg import registry as mmseg_registry
from mmseg.models.decode_heads import Mask2FormerHead as SegMask2FormerHead

import mmpading  # noqa: F401

from _helpers.mask2former_head import head_cfg


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_heads_build_from_an_outside_config(tmp_path, scope):
    """A user's config that only knows mmpading through custom_imports."""
    heads = dict(
        det_head=dict(
            head_cfg('ZeroShotMask2FormerHead', num_things_classes=3,
                     num_stuff_classes=1, query_class_cost=5.0)),
        seg_head=dict(
            head_cfg('ZeroShotMask2FormerSegHead', num_classes=4,
                     align_corners=False, query_class_cost=5.0)))
    path = tmp_path / f'my_{scope}_config.py'
    path.write_text(
        "custom_imports = dict(imports=['mmpading'], "
        "allow_failed_imports=False)\n"
        f"default_scope = '{scope}'\n" + Config(heads).pretty_text)
    cfg = Config.fromfile(str(path))
    upstream = {'mmdet': mmdet_registry, 'mmseg': mmseg_registry}[scope]
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        for key, name in (('det_head', 'ZeroShotMask2FormerHead'),
                          ('seg_head', 'ZeroShotMask2FormerSegHead')):
            head = upstream.MODELS.build(cfg[key])
            assert type(head).__name__ == name
            assert isinstance(head, (Mask2FormerHead, SegMask2FormerHead))
            assert head.query_class_cost == 5.0
