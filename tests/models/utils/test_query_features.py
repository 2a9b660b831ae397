"""Class embeddings of upstream Mask2Former heads: recording, another
classifier in upstream's predict, and stage 2's matching."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from scipy.optimize import linear_sum_assignment

import mmpading  # noqa: F401
from mmpading.models.utils.query_features import (
    QueryFeatures,
    build_query_assigner,
    classify_with,
    match_queries,
    record_class_embeddings,
)
from mmpading.registry import MODELS

from _helpers.mask2former_head import features, head_cfg

FEAT = 32


def det_head(**extra):
    init_default_scope('mmdet')
    return MODELS.build(head_cfg('Mask2FormerHead', num_things_classes=3,
                                 num_stuff_classes=1, **extra))


def query_features(head, samples, assigner=None) -> QueryFeatures:
    """As PADing's frozen forward: record, then match the last layer."""
    with record_class_embeddings(head.cls_embed) as embeddings:
        cls_scores, mask_preds = head(features(), samples)
    gt = head.preprocess_gt([s.gt_instances for s in samples],
                            [s.gt_sem_seg for s in samples])
    labels = match_queries(head, cls_scores[-1], mask_preds[-1], gt,
                           [s.metainfo for s in samples], assigner)
    return QueryFeatures(embeddings[-1], labels, 4)


def test_seg_head_embeddings_and_prediction_with_another_classifier():
    init_default_scope('mmseg')
    head = MODELS.build(head_cfg('Mask2FormerHead', num_classes=4,
                                 align_corners=False))
    assert type(head).__module__.startswith('mmseg.')
    head.eval()
    metas = [dict(img_shape=(64, 64), pad_shape=(64, 64),
                  batch_input_shape=(64, 64))] * 2
    with torch.no_grad():
        with record_class_embeddings(head.cls_embed) as embeddings:
            cls_preds, _ = head(features(), [DetDataSample(metainfo=m)
                                             for m in metas])
        # One embedding per decoder layer plus the initial queries.
        assert len(embeddings) == len(cls_preds) == 3
        assert embeddings[-1].shape == (2, 6, FEAT)
        assert torch.allclose(head.cls_embed(embeddings[-1]), cls_preds[-1])
        upstream = head.predict(features(), metas, dict())
        # A classifier that always says class 2 makes class 2 win anywhere
        # a mask is confident.
        always_two = torch.nn.Linear(FEAT, 5)
        torch.nn.init.zeros_(always_two.weight)
        always_two.bias.copy_(torch.tensor([0., 0., 10., 0., 0.]))
        with classify_with(head.cls_embed, always_two):
            replaced = head.predict(features(), metas, dict())
        # The hooks are gone after their contexts.
        again = head.predict(features(), metas, dict())
    assert upstream.shape == replaced.shape == (2, 4, 64, 64)
    assert (replaced.argmax(1) == 2).all()
    assert torch.equal(again, upstream)
    assert not head.cls_embed._forward_hooks
    assert not head.cls_embed._forward_pre_hooks


def det_samples() -> list:
    """Two images: things [0, 2] and [1], each with a stuff region (3)."""
    samples = []
    for labels in ([0, 2], [1]):
        sample = DetDataSample(metainfo=dict(
            img_shape=(64, 64), pad_shape=(64, 64),
            batch_input_shape=(64, 64)))
        masks = torch.zeros(len(labels), 64, 64, dtype=torch.bool)
        for i in range(len(labels)):
            masks[i, i * 20:i * 20 + 16, 8:40] = True
        sample.gt_instances = InstanceData(
            labels=torch.tensor(labels),
            masks=BitmapMasks(masks.numpy(), 64, 64))
        sem = torch.full((1, 64, 64), 255, dtype=torch.long)
        sem[:, 50:, :] = 3  # a stuff region
        sample.gt_sem_seg = PixelData(sem_seg=sem)
        samples.append(sample)
    return samples


def test_det_head_query_features_label_matched_segments():
    head = det_head()
    features_ = query_features(head, det_samples())
    assert features_.embeddings.shape == (2, 6, FEAT)
    assert sorted(features_.labels[0][features_.matched[0]].tolist()) == \
        [0, 2, 3]
    assert sorted(features_.labels[1][features_.matched[1]].tolist()) == \
        [1, 3]
    # Unmatched queries carry the no-object index.
    assert (features_.labels[~features_.matched] == 4).all()


def record_class_costs(*assigners) -> list:
    """Patch ``assign`` of each assigner to log its class-cost weight."""
    weights = []
    for assigner in assigners:
        original = assigner.assign

        def assign(*args, _original=original, _assigner=assigner,
                   **kwargs):
            (cost, ) = [c for c in _assigner.match_costs
                        if type(c).__name__ == 'ClassificationCost']
            weights.append(cost.weight)
            return _original(*args, **kwargs)

        assigner.assign = assign
    return weights


def test_query_class_cost_weighs_stage2_matching_only():
    """Reference: stage 2 matches with its own CLASS_WEIGHT (5.0 ZSP / ZSS),
    stage 1 with 2.0 (PADing_model.py:213-223, configs/*/PADing.yaml)."""
    head = det_head()
    query_assigner = build_query_assigner(head.train_cfg, 5.0)
    mask_costs = [(type(c).__name__, c.weight)
                  for c in head.assigner.match_costs[1:]]
    assert [(type(c).__name__, c.weight)
            for c in query_assigner.match_costs] == \
        [('ClassificationCost', 5.0)] + mask_costs
    weights = record_class_costs(head.assigner, query_assigner)
    samples = det_samples()
    query_features(head, samples, query_assigner)
    # One assignment per image, all with the stage-2 class cost; the head's
    # assigner is back in place.
    assert weights == [5.0, 5.0]
    weights.clear()
    head.loss(features(), samples)
    assert weights and set(weights) == {2.0}
    assert head.assigner.match_costs[0].weight == 2.0
    assert build_query_assigner(head.train_cfg, None) is None


def test_query_class_cost_changes_the_matching():
    """A class cost that outweighs the mask costs follows the class scores."""
    head = det_head().eval()
    samples = det_samples()
    with torch.no_grad():
        labels = {
            cost: query_features(
                head, samples,
                build_query_assigner(head.train_cfg, cost)).labels
            for cost in (None, 2.0, 1e6)
        }
        probs = head(features(), samples)[0][-1].softmax(-1)
    # None and the stage-1 value match alike.
    assert torch.equal(labels[None], labels[2.0])
    # With a dominant class cost the matching is the assignment that
    # maximises the summed class scores.
    for i, gt_labels in enumerate(([0, 2, 3], [1, 3])):
        queries, columns = linear_sum_assignment(
            -probs[i][:, gt_labels].numpy())
        expected = torch.full((6, ), 4)
        expected[queries] = torch.tensor(gt_labels)[columns]
        assert torch.equal(labels[1e6][i], expected)


def test_query_class_cost_without_a_class_cost_raises():
    train_cfg = head_cfg('Mask2FormerHead').train_cfg
    train_cfg.assigner.match_costs = train_cfg.assigner.match_costs[1:]
    with pytest.raises(ValueError, match='ClassificationCost'):
        build_query_assigner(train_cfg, 5.0)
    with pytest.raises(ValueError, match='train_cfg.assigner'):
        build_query_assigner(None, 5.0)
