"""Properties of RelationAlignLoss."""
import pytest
import torch

from mmpading.models import RelationAlignLoss

NUM_CLASSES = 6
UNSEEN = [4, 5]


def make_batch(seed: int = 0, feat_dim: int = 16, sem_dim: int = 10):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(NUM_CLASSES, sem_dim, generator=generator)
    # Several features per seen class, one per unseen class.
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 4, 5])
    features = torch.randn(len(labels), feat_dim, generator=generator)
    return features, labels, embeddings


def reference_term(features, labels, embeddings, rows, cols, temperature):
    """KL(P_sem || P_vis) row by row, averaged over matrix entries."""

    def cosine(x, y):
        return torch.nn.functional.cosine_similarity(
            x[:, None, :], y[None, :, :], dim=-1).double()

    semantic = embeddings[labels]
    p_sem = torch.softmax(
        cosine(semantic[rows], semantic[cols]) / temperature, dim=1)
    p_vis = torch.softmax(
        cosine(features[rows], features[cols]) / temperature, dim=1)
    kl = (p_sem * (p_sem.log() - p_vis.log())).sum()
    return (kl / p_sem.numel()).item()


def test_defaults():
    loss = RelationAlignLoss()
    assert loss.temperature == pytest.approx(0.1)
    assert loss.use_seen_seen and loss.use_unseen_unseen
    assert loss.use_seen_unseen


def test_zero_when_visual_relations_equal_semantic_ones():
    _, labels, embeddings = make_batch()
    loss = RelationAlignLoss()
    # Same cosine similarities: the class embeddings themselves, rescaled.
    visual = 3.0 * embeddings[labels]
    assert loss(visual, labels, embeddings, UNSEEN).abs().item() < 1e-6


def test_positive_otherwise_with_gradient():
    features, labels, embeddings = make_batch()
    features.requires_grad_(True)
    value = RelationAlignLoss()(features, labels, embeddings, UNSEEN)
    assert value.item() > 1e-3
    value.backward()
    assert features.grad.abs().sum() > 0


@pytest.mark.parametrize('switches', [
    (True, True, True),
    (True, False, False),
    (False, True, False),
    (False, False, True),
    (True, False, True),
    (False, True, True),
])
def test_each_term_can_be_switched_off(switches):
    features, labels, embeddings = make_batch()
    is_unseen = torch.isin(labels, torch.tensor(UNSEEN))
    seen, unseen = ~is_unseen, is_unseen
    blocks = [(seen, seen), (unseen, unseen), (seen, unseen)]
    expected = [
        reference_term(features, labels, embeddings, rows, cols, 0.1)
        for enabled, (rows, cols) in zip(switches, blocks) if enabled
    ]
    loss = RelationAlignLoss(
        use_seen_seen=switches[0],
        use_unseen_unseen=switches[1],
        use_seen_unseen=switches[2])
    value = loss(features, labels, embeddings, UNSEEN).item()
    assert value == pytest.approx(sum(expected) / len(expected), rel=1e-4)


def test_all_terms_off_or_empty_groups_give_zero_or_fewer_terms():
    features, labels, embeddings = make_batch()
    off = RelationAlignLoss(
        use_seen_seen=False, use_unseen_unseen=False, use_seen_unseen=False)
    assert off(features, labels, embeddings, UNSEEN).item() == 0.0
    # No unseen class: only the seen-seen block exists.
    all_seen = RelationAlignLoss()(features, labels, embeddings, None)
    seen_only = RelationAlignLoss(
        use_unseen_unseen=False, use_seen_unseen=False)(
            features, labels, embeddings, [])
    assert all_seen.item() == pytest.approx(seen_only.item())


def test_unseen_ids_and_mask_agree_and_loss_weight_scales():
    features, labels, embeddings = make_batch()
    mask = torch.zeros(NUM_CLASSES, dtype=torch.bool)
    mask[UNSEEN] = True
    by_ids = RelationAlignLoss()(features, labels, embeddings,
                                 torch.tensor(UNSEEN))
    by_mask = RelationAlignLoss()(features, labels, embeddings, mask)
    torch.testing.assert_close(by_ids, by_mask)
    weighted = RelationAlignLoss(loss_weight=2.0)(features, labels,
                                                  embeddings, UNSEEN)
    torch.testing.assert_close(weighted, 2 * by_ids)


def test_temperature_sharpens_the_penalty():
    features, labels, embeddings = make_batch()
    cold = RelationAlignLoss(temperature=0.1)(features, labels, embeddings,
                                              UNSEEN)
    warm = RelationAlignLoss(temperature=1.0)(features, labels, embeddings,
                                              UNSEEN)
    assert cold.item() > warm.item()


def test_fp32_under_autocast():
    features, labels, embeddings = make_batch()
    loss = RelationAlignLoss()
    expected = loss(features, labels, embeddings, UNSEEN)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        value = loss(features, labels, embeddings, UNSEEN)
        from_half = loss(features.bfloat16(), labels,
                         embeddings.bfloat16(), UNSEEN)
    assert value.dtype == from_half.dtype == torch.float32
    torch.testing.assert_close(value, expected)
    assert torch.isfinite(from_half)


def test_bad_inputs_are_named():
    features, labels, embeddings = make_batch()
    loss = RelationAlignLoss()
    with pytest.raises(ValueError, match=r'labels must be in \[0, 6\)'):
        loss(features, labels + 3, embeddings, UNSEEN)
    with pytest.raises(ValueError, match='one per feature'):
        loss(features, labels[:-1], embeddings, UNSEEN)
    with pytest.raises(ValueError, match='unseen class ids'):
        loss(features, labels, embeddings, [9])
    with pytest.raises(ValueError, match='one entry per class'):
        loss(features, labels, embeddings, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match='integer class indices'):
        loss(features, labels.float(), embeddings, UNSEEN)


def test_forward_reads_the_device_once(host_reads, monkeypatch):
    """One host read per call (is a group empty?). The label checks read on
    the CPU only (tests/models/utils/test_class_masks.py): skipped here as
    they are on a GPU, as is the loss's first call."""
    from mmpading.models.losses import relation_align_loss
    from mmpading.models.utils import class_masks
    for module in (relation_align_loss, class_masks):
        monkeypatch.setattr(module, 'check_class_indices',
                            lambda *args, **kwargs: None)
    features, labels, embeddings = make_batch()
    loss = RelationAlignLoss()
    with host_reads() as reads:
        value = loss(features, labels, embeddings, torch.tensor(UNSEEN))
    assert reads.count == 1
    assert value > 0
