"""Properties of UniversalFusionHead (semantic outputs, calibration)."""
import math

import pytest
import torch
from mmdet.models.seg_heads import MaskFormerFusionHead
from mmdet.structures import DetDataSample

from mmpading.models import UniversalFusionHead

NUM_THINGS, NUM_STUFF = 2, 2
NUM_CLASSES = NUM_THINGS + NUM_STUFF
SEEN, UNSEEN = [0, 1], [2, 3]


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: one thread is faster and immune to busy neighbours."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_test_cfg(**overrides) -> dict:
    cfg = dict(
        panoptic_on=True,
        instance_on=True,
        semantic_on=True,
        max_per_image=5,
        object_mask_thr=0.2,
        iou_thr=0.0)
    cfg.update(overrides)
    return cfg


def make_head(cls=UniversalFusionHead, **kwargs):
    test_cfg = kwargs.pop('test_cfg', make_test_cfg())
    return cls(
        num_things_classes=NUM_THINGS,
        num_stuff_classes=NUM_STUFF,
        test_cfg=test_cfg,
        **kwargs)


def make_sample(img_shape=(8, 8), ori_shape=None) -> DetDataSample:
    sample = DetDataSample()
    sample.set_metainfo(
        dict(img_shape=img_shape, ori_shape=ori_shape or img_shape))
    return sample


def random_outputs(batch=1, queries=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mask_cls = 3 * torch.randn(
        batch, queries, NUM_CLASSES + 1, generator=generator)
    mask_pred = 4 * torch.randn(batch, queries, size, size,
                                generator=generator)
    return mask_cls, mask_pred


def reference_semantic(mask_cls, mask_pred):
    """sum_q softmax(cls)[q, k] * sigmoid(mask)[q], with explicit loops."""
    num_queries, num_outputs = mask_cls.shape
    cls64, mask64 = mask_cls.double(), mask_pred.double()
    scores = torch.zeros(num_outputs - 1, *mask_pred.shape[1:],
                         dtype=torch.float64)
    for q in range(num_queries):
        denominator = sum(
            math.exp(cls64[q, j].item()) for j in range(num_outputs))
        mask_prob = 1.0 / (1.0 + torch.exp(-mask64[q]))
        for k in range(num_outputs - 1):
            prob = math.exp(cls64[q, k].item()) / denominator
            scores[k] += prob * mask_prob
    return scores


def probs_to_logits(rows):
    return torch.tensor(rows, dtype=torch.float32).log()


# ------------------------------------------------------------- semantic
def test_semantic_postprocess_is_argmax_of_summed_class_times_mask():
    mask_cls, mask_pred = random_outputs()
    result = make_head().semantic_postprocess(mask_cls[0], mask_pred[0])
    expected = reference_semantic(mask_cls[0], mask_pred[0])
    assert result.seg_logits.shape == (NUM_CLASSES, 8, 8)
    assert torch.allclose(result.seg_logits.double(), expected, atol=1e-5)
    assert result.sem_seg.shape == (1, 8, 8)
    assert result.sem_seg.dtype == torch.long
    assert torch.equal(result.sem_seg[0], expected.argmax(0))
    # Non-trivial case: more than one class wins somewhere.
    assert result.sem_seg.unique().numel() > 1


def test_predict_adds_sem_results_next_to_upstream_results():
    mask_cls, mask_pred = random_outputs(batch=2)
    head = make_head()
    results = head.predict(mask_cls, mask_pred,
                           [make_sample(), make_sample()])
    assert len(results) == 2
    for i, result in enumerate(results):
        assert set(result) == {'pan_results', 'ins_results', 'sem_results'}
        expected = reference_semantic(mask_cls[i], mask_pred[i])
        assert torch.equal(result['sem_results'].sem_seg[0],
                           expected.argmax(0))
        assert result['pan_results'].sem_seg.shape == (1, 8, 8)
    # The head's own test_cfg is left as configured.
    assert head.test_cfg['semantic_on'] is True


def test_predict_without_semantic_on_has_no_sem_results():
    mask_cls, mask_pred = random_outputs()
    head = make_head(test_cfg=make_test_cfg(semantic_on=False))
    (result, ) = head.predict(mask_cls, mask_pred, [make_sample()])
    assert set(result) == {'pan_results', 'ins_results'}


def test_predict_crops_padding_and_rescales_to_the_original_size():
    mask_cls, mask_pred = random_outputs()
    head = make_head()
    # The image covers only the top-left 6 x 5 of the padded 8 x 8 masks.
    (cropped, ) = head.predict(mask_cls, mask_pred,
                               [make_sample((6, 5), (12, 10))])
    assert cropped['sem_results'].sem_seg.shape == (1, 6, 5)
    expected = reference_semantic(mask_cls[0], mask_pred[0, :, :6, :5])
    assert torch.equal(cropped['sem_results'].sem_seg[0],
                       expected.argmax(0))
    assert cropped['pan_results'].sem_seg.shape == (1, 6, 5)

    (rescaled, ) = head.predict(
        mask_cls, mask_pred, [make_sample((6, 5), (12, 10))], rescale=True)
    assert rescaled['sem_results'].sem_seg.shape == (1, 12, 10)
    assert rescaled['pan_results'].sem_seg.shape == (1, 12, 10)


def test_per_class_scores_are_kept_only_on_request():
    mask_cls, mask_pred = random_outputs()
    (default, ) = make_head().predict(mask_cls, mask_pred, [make_sample()])
    assert 'seg_logits' not in default['sem_results']
    head = make_head(test_cfg=make_test_cfg(semantic_logits=True))
    (kept, ) = head.predict(mask_cls, mask_pred,
                            [make_sample((6, 5), (12, 10))], rescale=True)
    assert kept['sem_results'].seg_logits.shape == (NUM_CLASSES, 12, 10)
    assert torch.equal(kept['sem_results'].seg_logits.argmax(0),
                       kept['sem_results'].sem_seg[0])


# ---------------------------------------------------------- calibration
def test_gamma_zero_leaves_logits_bit_identical():
    mask_cls, _ = random_outputs()
    head = make_head(seen_class_ids=SEEN)
    assert head.calibration_gamma == 0
    calibrated = head.calibrate(mask_cls)
    assert calibrated is mask_cls
    assert torch.equal(calibrated, random_outputs()[0])


def test_gamma_zero_matches_upstream_panoptic_and_instance_outputs():
    mask_cls, mask_pred = random_outputs(batch=2, queries=6, seed=3)
    ours = make_head()
    upstream = make_head(MaskFormerFusionHead,
                         test_cfg=make_test_cfg(semantic_on=False))
    samples = [make_sample(), make_sample((7, 6), (14, 12))]
    for rescale in (False, True):
        mine = ours.predict(mask_cls, mask_pred, samples, rescale=rescale)
        theirs = upstream.predict(mask_cls, mask_pred, samples,
                                  rescale=rescale)
        for a, b in zip(mine, theirs):
            pan_a, pan_b = a['pan_results'].sem_seg, b['pan_results'].sem_seg
            assert torch.equal(pan_a, pan_b)
            for key in ('labels', 'scores', 'bboxes', 'masks'):
                assert torch.equal(a['ins_results'].get(key),
                                   b['ins_results'].get(key))
    # The comparison is not vacuous: some segments were kept.
    assert (pan_a != NUM_CLASSES).any()


def test_calibration_runs_before_upstream_postprocessing():
    mask_cls, mask_pred = random_outputs(batch=1, queries=6, seed=4)
    ours = make_head(seen_class_ids=SEEN, calibration_gamma=0.2)
    upstream = make_head(MaskFormerFusionHead,
                         test_cfg=make_test_cfg(semantic_on=False))
    (mine, ) = ours.predict(mask_cls, mask_pred, [make_sample()])
    (theirs, ) = upstream.predict(ours.calibrate(mask_cls), mask_pred,
                                  [make_sample()])
    assert torch.equal(mine['pan_results'].sem_seg,
                       theirs['pan_results'].sem_seg)
    assert torch.equal(mine['ins_results'].labels,
                       theirs['ins_results'].labels)


def test_gamma_lowers_seen_probabilities_before_renormalisation():
    mask_cls, _ = random_outputs(queries=5, seed=1)
    gamma = 0.05
    head = make_head(seen_class_ids=SEEN, calibration_gamma=gamma)
    before = mask_cls.softmax(-1)
    calibrated = head.calibrate(mask_cls)
    # Unnormalised: seen probabilities minus gamma (floored), the rest kept.
    expected = before.clone()
    expected[..., SEEN] = (before[..., SEEN] - gamma).clamp_min(1e-8)
    assert torch.allclose(calibrated.exp(), expected, rtol=1e-5, atol=1e-9)
    # After the softmax of post-processing every seen class loses ground
    # against every unseen class.
    after = calibrated.softmax(-1)
    assert torch.allclose(after.sum(-1), torch.ones(1, 5))
    for k in SEEN:
        for j in UNSEEN:
            ratio_before = before[..., k] / before[..., j]
            ratio_after = after[..., k] / after[..., j]
            assert (ratio_after < ratio_before).all()
    assert (after[..., UNSEEN] > before[..., UNSEEN]).all()


def test_gamma_flips_a_seen_top_class_with_a_small_margin_to_unseen():
    # Query 0: seen class 0 beats unseen class 2 by 0.05 < gamma.
    # Query 1: seen class 0 beats unseen class 2 by 0.35 > gamma.
    mask_cls = probs_to_logits([[0.40, 0.10, 0.35, 0.05, 0.10],
                                [0.60, 0.05, 0.25, 0.05, 0.05]])[None]
    # Query 0 covers the left half of the image, query 1 the right half.
    mask_pred = torch.full((1, 2, 4, 4), -10.0)
    mask_pred[0, 0, :, :2] = 10.0
    mask_pred[0, 1, :, 2:] = 10.0
    sample = make_sample((4, 4))

    plain = make_head(seen_class_ids=SEEN)
    calibrated = make_head(seen_class_ids=SEEN, calibration_gamma=0.1)
    top = calibrated.calibrate(mask_cls)[0, :, :-1].argmax(-1)
    assert top.tolist() == [2, 0]
    assert plain.calibrate(mask_cls)[0, :, :-1].argmax(-1).tolist() == [0, 0]

    (before, ) = plain.predict(mask_cls, mask_pred, [sample])
    (after, ) = calibrated.predict(mask_cls, mask_pred, [sample])
    assert (before['sem_results'].sem_seg == 0).all()
    assert (after['sem_results'].sem_seg[0, :, :2] == 2).all()
    assert (after['sem_results'].sem_seg[0, :, 2:] == 0).all()


def test_negative_gamma_favours_the_seen_classes():
    mask_cls, _ = random_outputs(queries=5, seed=2)
    head = make_head(seen_class_ids=SEEN, calibration_gamma=-0.3)
    before = mask_cls.softmax(-1)
    calibrated = head.calibrate(mask_cls)
    # Unnormalised: unseen probabilities minus 0.3 (floored); seen and
    # no-object kept, so the seen distribution keeps its shape.
    expected = before.clone()
    expected[..., UNSEEN] = (before[..., UNSEEN] - 0.3).clamp_min(1e-8)
    assert torch.allclose(calibrated.exp(), expected, rtol=1e-5, atol=1e-9)
    after = calibrated.softmax(-1)
    assert (after[..., UNSEEN] < before[..., UNSEEN]).all()
    assert (after[..., SEEN] >= before[..., SEEN]).all()
    assert torch.allclose(after[..., SEEN[0]] / after[..., SEEN[1]],
                          before[..., SEEN[0]] / before[..., SEEN[1]])
    # Beyond -1 an unseen class can never beat a seen one.
    extreme = make_head(seen_class_ids=SEEN, calibration_gamma=-1.0)
    top = extreme.calibrate(mask_cls)[..., :-1].argmax(-1)
    assert set(top.flatten().tolist()) <= set(SEEN)


def test_gamma_without_seen_class_ids_raises():
    for gamma in (0.1, -0.1):
        with pytest.raises(ValueError, match='seen_class_ids'):
            make_head(calibration_gamma=gamma)
