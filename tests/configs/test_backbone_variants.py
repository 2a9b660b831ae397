"""An mmpretrain backbone swapped in through a config."""
from pathlib import Path

import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmpading.registry import MODELS

CONFIG = (Path(__file__).resolve().parents[2] / 'configs' / 'pading' /
          'backbones' / 'zsp_convnext-t_pretrain.py')


def test_convnext_backbone_builds_and_predicts():
    cfg = Config.fromfile(str(CONFIG))
    assert cfg.model.backbone.type == 'mmpretrain.ConvNeXt'
    # Everything else is inherited from the R-50 stage-1 config.
    assert cfg.model.type == 'Mask2Former' and 'stage' not in cfg.model
    assert cfg.model.panoptic_head.num_queries == 100
    cfg.model.backbone.init_cfg = None  # no pretrained file here
    cfg.model.data_preprocessor.batch_augments = None
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    assert type(model.backbone).__module__.startswith('mmpretrain.')

    image = torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
    sample = DetDataSample(metainfo=dict(
        img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64),
        batch_input_shape=(64, 64), scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[image], data_samples=[sample]), False)
        features = model.extract_feat(data['inputs'])
        result = model.predict(data['inputs'], data['data_samples'])[0]
    # ConvNeXt-T's four stages feed the pixel decoder.
    assert [f.shape[1] for f in features] == [96, 192, 384, 768]
    assert result.pred_panoptic_seg.sem_seg.shape == (1, 64, 64)
    assert result.pred_instances.masks.shape[1:] == (64, 64)
