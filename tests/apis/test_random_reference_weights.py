"""The seeded weight rule of the reference-parity fixture."""
import torch

from mmpading.apis.random_reference_weights import (
    BOTTLENECK_LAST_BN_GAIN,
    CLASSIFIER_SCALE,
    RESIDUAL_OUTPUT_SCALE,
    reference_init,
    reference_state_dict,
)

QUERY = 'sem_seg_head.predictor.query_feat.weight'
OUT_PROJ = ('sem_seg_head.predictor.transformer_cross_attention_layers.0.'
            'multihead_attn.out_proj.weight')
IN_PROJ = ('sem_seg_head.predictor.transformer_cross_attention_layers.0.'
           'multihead_attn.in_proj_weight')


def test_values_depend_on_key_shape_and_seed_only():
    shapes = {QUERY: [100, 256], OUT_PROJ: [256, 256], 'new_fc.bias': [134]}
    forward = reference_state_dict(shapes, seed=3)
    backward = reference_state_dict(dict(reversed(shapes.items())), seed=3)
    for key in shapes:
        assert torch.equal(forward[key], backward[key])
        assert forward[key].dtype == torch.float32
    other_seed = reference_state_dict(shapes, seed=4)
    assert not torch.equal(forward[QUERY], other_seed[QUERY])
    assert not torch.equal(reference_init(QUERY, [100, 256]),
                           reference_init(OUT_PROJ, [100, 256]))


def test_scales():
    std = {
        key: float(reference_init(key, shape).std())
        for key, shape in [(QUERY, [400, 256]), (OUT_PROJ, [256, 1024]),
                           (IN_PROJ, [768, 1024]),
                           ('new_fc.weight', [512, 1024])]
    }
    fan_in = 1024**-0.5
    assert abs(std[QUERY] - 1) < 0.02  # query tables: unit scale
    assert abs(std[IN_PROJ] / fan_in - 1) < 0.05
    assert abs(std[OUT_PROJ] / fan_in - RESIDUAL_OUTPUT_SCALE) < 0.01
    assert abs(std['new_fc.weight'] / fan_in / CLASSIFIER_SCALE - 1) < 0.05
    conv = reference_init('backbone.res2.0.conv1.weight', [64, 64, 3, 3])
    assert abs(float(conv.std()) * (64 * 9)**0.5 - 1) < 0.05


def test_norms_and_buffers():
    var = reference_init('backbone.res2.0.conv1.norm.running_var', [4096])
    assert (var > 0).all()
    scale = reference_init('backbone.res2.0.conv1.norm.weight', [4096])
    assert abs(float(scale.mean()) - 1) < 0.01
    last = reference_init('backbone.res2.0.conv3.norm.weight', [4096])
    assert abs(float(last.mean()) - BOTTLENECK_LAST_BN_GAIN) < 0.01
    empty = reference_init('criterion.empty_weight', [134])
    assert torch.equal(empty[:-1], torch.ones(133))
    assert float(empty[-1]) == torch.tensor(0.1).item()
