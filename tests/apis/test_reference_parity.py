"""Output parity of converted reference models with the reference itself.

``tests/data/reference_parity/`` holds what the reference PADing models
(heshuting555/PADing on detectron2 0.6, run on the CPU by
``tools/model_converters/make_reference_parity_fixture.py``) computed on a
synthetic 128 x 168 image (``input.npz``; results resized back to
96 x 126) with the seeded weights of :func:`mmpading.apis.
random_reference_weights.reference_state_dict`: ZSP (all of it), ZSI 48/17
and ZSS (without the mask and ``class_embed`` logits).
Here each reference-layout state dict is rebuilt from its key / shape list
(``reference_keys/``) and the rule, converted with
:func:`convert_state_dict`, loaded into the stage-2 model of
``configs/pading`` and run on the same image through the model's own data
preprocessor (BGR input, as mmcv loads images).

Maps are compared pixel for pixel. Only pixels where the reference's own
outputs are within float noise of a decision (two masks' scores, a mask
probability and 0.5, two semantic scores closer than ``AMBIGUITY``) may
differ; with equal arithmetic (this torch on the CPU) there are none.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmseg.structures import SegDataSample

from mmpading.apis.checkpoint_conversion import (
    build_target_model,
    class_row_order,
    convert_state_dict,
    reference_layout,
)
from mmpading.apis.random_reference_weights import (
    RULE_VERSION,
    reference_state_dict,
)
from mmpading.models.utils.query_features import record_class_embeddings

DATA_DIR = Path(__file__).parents[1] / 'data' / 'reference_parity'
KEYS_DIR = Path(__file__).parent / 'reference_keys'
#: Converter layout -> (fixture name, key / shape list).
LAYOUTS = {
    'zsp': ('zsp_pading', 'zsp_pading.json'),
    'zsi_48_17': ('zsi_48_17_pading', 'zsi_pading.json'),
    'zss': ('zss_pading', 'zss_pading.json'),
}
#: Max abs difference allowed on embeddings, logits and scores.
TOLERANCE = 1e-4
#: Decision margins below this may flip under float noise.
AMBIGUITY = 1e-4


def load_reference(layout: str) -> dict:
    """The recorded reference outputs, input image and metadata."""
    name = LAYOUTS[layout][0]
    meta = json.loads((DATA_DIR / f'{name}_meta.json').read_text())
    assert meta['rule_version'] == RULE_VERSION, (
        'the fixture was made with another version of reference_init: '
        'rerun tools/model_converters/make_reference_parity_fixture.py')
    with np.load(DATA_DIR / f'{name}_outputs.npz') as outputs, np.load(
            DATA_DIR / 'input.npz') as inputs:
        reference = {'meta': meta, **outputs, **inputs}
    # mmpading orders the classes by its config; the converter reorders
    # the classifier rows (identity for ZSP).
    order = class_row_order(reference_layout(layout))
    reference['class_order'] = np.array(order)
    return reference


def converted_model(layout: str, reference: dict):
    """The stage-2 mmpading model with the converted reference weights."""
    key_shapes = json.loads((KEYS_DIR / LAYOUTS[layout][1]).read_text())
    result = convert_state_dict(
        reference_state_dict(key_shapes, reference['meta']['seed']),
        layout=layout,
        stage='pading')
    model = build_target_model(layout, 'pading', device='cpu').eval()
    model.load_state_dict(result.state_dict, strict=True)
    if layout != 'zss':
        model.panoptic_fusion_head.test_cfg['semantic_logits'] = True
    return model


def preprocess(model, image_rgb: np.ndarray, meta: dict) -> dict:
    """The model's data preprocessor on one image given as RGB uint8."""
    bgr = torch.from_numpy(image_rgb[..., ::-1].copy()).permute(2, 0, 1)
    sample_type = SegDataSample if hasattr(model,
                                           'decode_head') else DetDataSample
    sample = sample_type(
        metainfo=dict(
            img_shape=tuple(meta['input_size']),
            ori_shape=tuple(meta['original_size']),
            scale_factor=(1.0, 1.0)))
    return model.data_preprocessor({
        'inputs': [bgr],
        'data_samples': [sample]
    }, False)


def run(model, image_rgb: np.ndarray, meta: dict) -> dict:
    """Predictions and the head's last-layer outputs of one forward."""
    head = model.segmenter_head
    recorded = {}
    forward = head.forward

    def recording_forward(*args, **kwargs):
        recorded['outputs'] = forward(*args, **kwargs)
        return recorded['outputs']

    data = preprocess(model, image_rgb, meta)
    head.forward = recording_forward
    try:
        with torch.no_grad(), \
                record_class_embeddings(head.cls_embed) as embeddings:
            prediction = model.predict(data['inputs'],
                                       data['data_samples'])[0]
            _, mask_preds = recorded['outputs']
            embedding = embeddings[-1][0]
            head_outputs = {
                'query_embeddings': embedding,
                'class_embed_logits': head.cls_embed(embedding),
                'new_fc_logits': model.learner.classifier(embedding),
                'mask_logits': mask_preds[-1][0],
            }
    finally:
        del head.forward
    return {'head': head_outputs, 'prediction': prediction}


@pytest.fixture(scope='module', params=list(LAYOUTS))
def case(request) -> dict:
    layout = request.param
    reference = load_reference(layout)
    model = converted_model(layout, reference)
    outputs = run(model, reference['image_rgb'], reference['meta'])
    return {
        'layout': layout,
        'model': model,
        'reference': reference,
        'outputs': outputs
    }


def max_abs_diff(actual: torch.Tensor, expected: np.ndarray) -> float:
    assert tuple(actual.shape) == expected.shape
    return float((actual.float() - torch.from_numpy(expected)).abs().max())


def test_head_outputs_match(case):
    reference = case['reference']
    order = reference['class_order']
    compared = []
    for name in ('query_embeddings', 'class_embed_logits', 'new_fc_logits',
                 'mask_logits'):
        if name not in reference:  # ZSI / ZSS keep the smaller ones
            continue
        expected = reference[name]
        if name.endswith('_logits') and name != 'mask_logits':
            expected = expected[:, order]
        diff = max_abs_diff(case['outputs']['head'][name], expected)
        assert diff <= TOLERANCE, f'{name}: max abs difference {diff:.3g}'
        compared.append(name)
    assert 'query_embeddings' in compared and 'new_fc_logits' in compared


def reference_masks(reference) -> torch.Tensor:
    """The reference's mask logits at the original size, (Q, H, W).

    As its inference: upsampled to the padded input, cropped to the image
    and resized to the original size (bilinear, ``align_corners=False``).
    """
    height, width = reference['meta']['input_size']
    padded = (math.ceil(height / 32) * 32, math.ceil(width / 32) * 32)
    logits = F.interpolate(
        torch.from_numpy(reference['mask_logits'])[None],
        size=padded,
        mode='bilinear',
        align_corners=False)[:, :, :height, :width]
    return F.interpolate(
        logits,
        size=tuple(reference['meta']['original_size']),
        mode='bilinear',
        align_corners=False)[0]


def panoptic_ambiguous(reference) -> np.ndarray:
    """Pixels whose panoptic assignment is within AMBIGUITY of a tie."""
    masks = reference_masks(reference)
    probs = torch.from_numpy(reference['new_fc_logits']).softmax(-1)
    scores, labels = probs.max(-1)
    keep = (labels != probs.shape[-1] - 1) & (scores > 0.8)
    mask_probs = masks[keep].sigmoid()
    ambiguous = ((mask_probs - 0.5).abs() < AMBIGUITY).any(0)
    if len(mask_probs) > 1:
        top2 = (scores[keep][:, None, None] * mask_probs).topk(2, dim=0).values
        ambiguous |= (top2[0] - top2[1]) < AMBIGUITY
    return ambiguous.numpy()


# Each layout's reference config turns on: ZSP panoptic, instance and
# semantic; ZSI instance; ZSS semantic.
@pytest.mark.parametrize('case', ['zsp'], indirect=True)
def test_panoptic_maps_identical(case):
    reference = case['reference']
    num_classes = reference['new_fc_logits'].shape[-1] - 1
    # Reference: segment ids (0 = void) and each segment's class.
    segments = reference['panoptic_seg'].astype(np.int64)
    classes = np.full(segments.max() + 1, num_classes)
    classes[reference['panoptic_segment_ids']] = reference[
        'panoptic_segment_classes']
    # The fixture is not trivial: things and stuff, and void pixels.
    isthing = reference['panoptic_segment_isthing']
    assert isthing.any() and not isthing.all()
    assert (segments == 0).any()
    # mmdet: class + instance * INSTANCE_OFFSET; void = num_classes.
    ids = case['outputs']['prediction'].pred_panoptic_seg.sem_seg[0].numpy()
    assert ids.shape == segments.shape
    # Away from ties: the same class and segments in one-to-one
    # correspondence (segment ids are named differently).
    clear = ~panoptic_ambiguous(reference)
    pairs = set(zip(segments[clear].tolist(), ids[clear].tolist()))
    assert len(pairs) == len({ref for ref, _ in pairs}) == len(
        {ours for _, ours in pairs}), f'segments differ: {sorted(pairs)}'
    assert len(pairs) == len(np.unique(segments)) == len(np.unique(ids))
    same_class = classes[segments] == ids % INSTANCE_OFFSET
    assert same_class[clear].all(), (
        f'{int((~same_class & clear).sum())} panoptic pixels away from any '
        'tie have another class')


@pytest.mark.parametrize('case', ['zsp', 'zsi_48_17'], indirect=True)
def test_instances_match(case):
    reference = case['reference']
    instances = case['outputs']['prediction'].pred_instances
    # The reference's top-k is unsorted: both sorted by score, then class
    # (the reference's class index).
    scores = instances.scores.numpy()
    labels = reference['class_order'][instances.labels.numpy()]
    order = np.lexsort((labels, -scores))
    assert len(order) == len(reference['instance_scores'])
    np.testing.assert_array_equal(labels[order], reference['instance_labels'])
    assert max_abs_diff(instances.scores[order],
                        reference['instance_scores']) <= TOLERANCE
    masks = instances.masks.numpy()[order].astype(bool)
    expected_masks = np.unpackbits(
        reference['instance_masks_packed'], axis=-1,
        count=masks.shape[-1]).astype(bool)
    # An instance mask is its query's mask logit > 0 (mask logits are
    # recorded for ZSP only; elsewhere no pixel may differ).
    near_zero = (reference_masks(reference).abs() < AMBIGUITY).any(0).numpy(
    ) if 'mask_logits' in reference else np.zeros(masks.shape[1:], bool)
    assert not ((masks != expected_masks) & ~near_zero).any()
    boxes = instances.bboxes.numpy()[order]
    expected_boxes = reference['instance_boxes']
    if not near_zero.any():
        np.testing.assert_array_equal(boxes, expected_boxes)
    else:  # a pixel on the edge of a mask may move its box by one
        assert np.abs(boxes - expected_boxes).max() <= 1


@pytest.mark.parametrize('case', ['zsp', 'zss'], indirect=True)
def test_semantic_matches(case):
    reference = case['reference']
    prediction = case['outputs']['prediction']
    if case['layout'] == 'zss':  # mmseg
        labels, scores = prediction.pred_sem_seg.data[0], \
            prediction.seg_logits.data
    else:
        labels, scores = prediction.pred_sem_seg.sem_seg[0], \
            prediction.pred_sem_seg.seg_logits
    # Back to the reference's class order.
    class_order = reference['class_order'][:-1]
    labels = class_order[labels.numpy()]
    scores = scores[np.argsort(class_order)]
    stride = reference['meta']['semantic_stride']
    assert max_abs_diff(scores[:, ::stride, ::stride],
                        reference['semantic_scores_strided']) <= TOLERANCE
    top2 = scores.topk(2, dim=0).values
    ambiguous = ((top2[0] - top2[1]) < AMBIGUITY).numpy()
    differing = labels != reference['semantic_labels']
    assert not (differing & ~ambiguous).any()


@pytest.mark.parametrize('case', ['zsp'], indirect=True)
def test_comparison_detects_a_channel_swap(case):
    """Fed RGB as if it were BGR, the same weights give other embeddings."""
    reference = case['reference']
    swapped = run(case['model'], reference['image_rgb'][..., ::-1],
                  reference['meta'])
    diff = max_abs_diff(swapped['head']['query_embeddings'],
                        reference['query_embeddings'])
    assert diff > 100 * TOLERANCE
