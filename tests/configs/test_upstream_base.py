"""An outside config inherits mmdet's Mask2Former and imports mmpading."""
import textwrap

import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope

UPSTREAM = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'


def test_custom_imports_with_mmdet_base_builds_on_cpu(tmp_path):
    config_file = tmp_path / 'my_mask2former.py'
    config_file.write_text(textwrap.dedent(f"""
        _base_ = '{UPSTREAM}'
        custom_imports = dict(imports=['mmpading'],
                              allow_failed_imports=False)
        # No download: random initialisation instead of torchvision weights.
        model = dict(backbone=dict(init_cfg=None))
        """))
    cfg = Config.fromfile(str(config_file))
    assert cfg.custom_imports.imports == ['mmpading']
    assert cfg.model.type == 'Mask2Former'
    assert cfg.model.panoptic_head.num_things_classes == 80

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    model.eval()
    num_params = sum(p.numel() for p in model.parameters())
    assert num_params > 40_000_000  # R-50 + pixel decoder + 9-layer decoder

    image = torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
    sample = DetDataSample(metainfo=dict(
        img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64),
        batch_input_shape=(64, 64), scale_factor=(1.0, 1.0)))
    model.data_preprocessor.batch_augments = None
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[image], data_samples=[sample]), False)
        results = model.predict(data['inputs'], data['data_samples'])
    panoptic = results[0].pred_panoptic_seg.sem_seg
    assert panoptic.shape == (1, 64, 64)
