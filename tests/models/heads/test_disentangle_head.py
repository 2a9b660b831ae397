"""Properties of DisentangleHead."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmpading.datasets.class_embeddings import save_class_embeddings
from mmpading.datasets.splits import ZeroShotSplit, save_split
from mmpading.models import DisentangleHead, ZeroShotLearner
from mmpading.models.losses import softmax_kl

NUM_CLASSES = 5


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models: one thread is faster and immune to busy neighbours."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_batch(num: int = 32, feat_dim: int = 256, sem_dim: int = 256):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(num, feat_dim, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (num, ), generator=generator)
    embeddings = torch.randn(NUM_CLASSES, sem_dim, generator=generator)
    return features, labels, embeddings


def test_forward_splits_into_two_parts():
    head = DisentangleHead()
    related, unrelated = head(torch.randn(7, 256))
    assert related.shape == unrelated.shape == (7, 256)


@pytest.mark.parametrize('decoder_final_act, ratio', [(True, 0.7),
                                                        (False, 0.5)])
def test_reconstruction_loss_falls_over_200_adam_steps(
        decoder_final_act, ratio):
    torch.manual_seed(0)
    head = DisentangleHead(
        feat_dim=64, semantic_dim=32, hidden_dim=64,
        decoder_final_act=decoder_final_act)
    features, labels, embeddings = make_batch(64, 64, 32)

    def recon_loss():
        head.eval()
        with torch.no_grad():
            value = head.loss(features, labels, embeddings)['loss_recon']
        head.train()
        return value.item()

    before = recon_loss()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(200):
        losses = head.loss(features, labels, embeddings)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    after = recon_loss()
    # The reference's decoder ends with LeakyReLU(0.2), which slows the fit
    # of the signed (Gaussian) features.
    assert after < ratio * before, (before, after)


def test_losses_are_weighted_as_designed():
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=16).eval()
    features, labels, embeddings = make_batch(12, 16, 8)
    related, unrelated = head(features)

    torch.manual_seed(5)
    losses = head.loss(features, labels, embeddings, related, unrelated)
    assert set(losses) == {'loss_recon', 'loss_unrelated_kl', 'loss_relation'}

    recon = head.decoder(torch.cat([related, unrelated], 1))
    torch.testing.assert_close(losses['loss_recon'],
                               0.5 * (recon - features).abs().mean())
    torch.manual_seed(5)
    noise = torch.randn_like(unrelated)
    p_noise = torch.softmax(noise / 0.1, dim=1)
    kl = (p_noise * (p_noise.log() -
                     torch.log_softmax(unrelated / 0.1, dim=1))).sum()
    torch.testing.assert_close(losses['loss_unrelated_kl'],
                               0.5 * kl / unrelated.numel())
    # The relation module on every explicit (feature, class) pair.
    pairs = torch.cat([
        related[:, None, :].expand(-1, NUM_CLASSES, -1),
        embeddings[None, :, :].expand(len(features), -1, -1)
    ], dim=-1)
    scores = torch.sigmoid(
        head.relation_out(F.relu(head.relation_fc(pairs)))).squeeze(-1)
    torch.testing.assert_close(
        head.relation_scores(related, embeddings), scores)
    torch.testing.assert_close(losses['loss_relation'],
                               0.2 * F.cross_entropy(scores, labels))


def test_reuses_given_parts_and_gradients_reach_the_features():
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=16).eval()
    features, labels, embeddings = make_batch(12, 16, 8)
    features.requires_grad_(True)
    torch.manual_seed(1)
    own = head.loss(features, labels, embeddings)
    torch.manual_seed(1)
    given = head.loss(features, labels, embeddings, *head(features))
    for key in own:
        torch.testing.assert_close(own[key], given[key])
    sum(own.values()).backward()
    assert features.grad.abs().sum() > 0


def test_empty_batch_gives_zero_losses():
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=16)
    losses = head.loss(
        torch.zeros(0, 16), torch.zeros(0, dtype=torch.long),
        torch.randn(3, 8))
    assert all(value.item() == 0.0 for value in losses.values())


def test_fp32_under_autocast():
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=16)
    features, labels, embeddings = make_batch(12, 16, 8)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        losses = head.loss(features, labels, embeddings)
    for value in losses.values():
        assert value.dtype == torch.float32
        assert torch.isfinite(value)


def test_bad_inputs_are_named():
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=16)
    features, labels, embeddings = make_batch(12, 16, 8)
    with pytest.raises(ValueError, match=r'shape \(N, 16\)'):
        head(torch.randn(3, 20))
    with pytest.raises(ValueError, match='semantic_dim=8'):
        head.loss(features, labels, torch.randn(NUM_CLASSES, 300))
    with pytest.raises(ValueError, match=r'labels must be in \[0, 5\)'):
        head.loss(features, labels + NUM_CLASSES, embeddings)
    with pytest.raises(ValueError, match='both related and unrelated'):
        head.loss(features, labels, embeddings, related=features)


# --------------------------------------------------- parity with PADing
# Reference: heshuting555/PADing, PADing/utils/network_utils.py (Encoder,
# Decoder, RelationNet) and PADing/PADing_model.py:356-397 (the losses).
def test_encoders_and_decoder_have_the_reference_layers():
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12,
                           dropout=0.3)
    for encoder in (head.related_encoder, head.unrelated_encoder):
        assert [type(m) for m in encoder] == [
            nn.Linear, nn.Linear, nn.LeakyReLU, nn.Dropout]
        assert (encoder[0].in_features, encoder[0].out_features,
                encoder[1].out_features) == (16, 12, 16)
        assert encoder[2].negative_slope == 0.2 and encoder[3].p == 0.3
    # network_utils.py:105-112: Linear(2C, C) - LeakyReLU(0.2) - Dropout -
    # Linear(C, C) - LeakyReLU(0.2) - Dropout.
    decoder = head.decoder
    assert [type(m) for m in decoder] == [
        nn.Linear, nn.LeakyReLU, nn.Dropout, nn.Linear, nn.LeakyReLU,
        nn.Dropout]
    assert (decoder[0].in_features, decoder[0].out_features,
            decoder[3].in_features, decoder[3].out_features) == (32, 12, 12,
                                                                 16)
    assert decoder[1].negative_slope == decoder[4].negative_slope == 0.2
    assert decoder[2].p == decoder[5].p == 0.3
    # The relation module: Linear(C + D, hidden) - ReLU - Linear(hidden, 1).
    assert (head.relation_fc.in_features, head.relation_fc.out_features,
            head.relation_out.out_features) == (24, 12, 1)

    head.eval()
    related, unrelated = torch.randn(5, 16), torch.randn(5, 16)
    last = decoder[3](decoder[:3](torch.cat([related, unrelated], 1)))
    torch.testing.assert_close(
        head.reconstruct(related, unrelated), F.leaky_relu(last, 0.2))


def test_old_decoder_ending_is_an_option():
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12,
                           decoder_final_act=False)
    assert [type(m) for m in head.decoder] == [
        nn.Linear, nn.LeakyReLU, nn.Dropout, nn.Linear]


def test_layers_keep_pytorch_default_init():
    """The reference applies no init to Encoder / Decoder / RelationNet."""
    torch.manual_seed(3)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12)
    head.init_weights()
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2 + 2 + 2 + 2
    # Fresh nn.Linear layers of the same shapes, in construction order,
    # drawn from the same seed: PyTorch's kaiming-uniform default.
    torch.manual_seed(3)
    for linear in linears:
        fresh = nn.Linear(linear.in_features, linear.out_features)
        assert torch.equal(linear.weight, fresh.weight)
        assert torch.equal(linear.bias, fresh.bias)


UNSEEN = [1, 3]  # of NUM_CLASSES = 5


def split_batch(num_seen: int = 10, num_unseen: int = 2, dim: int = 16):
    """Seen features first, then one per unseen class (as the learner)."""
    generator = torch.Generator().manual_seed(4)
    seen_labels = torch.tensor([0, 2, 4])[torch.randint(
        3, (num_seen, ), generator=generator)]
    unseen_labels = torch.tensor(UNSEEN).repeat(num_unseen)[:num_unseen]
    labels = torch.cat([seen_labels, unseen_labels])
    features = torch.randn(len(labels), dim, generator=generator)
    embeddings = torch.randn(NUM_CLASSES, 8, generator=generator)
    return features, labels, embeddings


def test_losses_are_50_50_means_of_the_seen_and_unseen_sets():
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12).eval()
    features, labels, embeddings = split_batch(10, 2)
    seen, unseen = slice(0, 10), slice(10, 12)
    related, unrelated = head(features)
    torch.manual_seed(7)
    losses = head.loss(features, labels, embeddings, related, unrelated,
                       unseen_classes=UNSEEN)
    torch.manual_seed(7)
    noise = torch.randn_like(unrelated)

    reconstructed = head.reconstruct(related, unrelated)
    scores = head.relation_scores(related, embeddings)
    # PADing_model.py:368, 389, 394: (L1(seen) + L1(unseen)) / 2.
    recon = [F.l1_loss(reconstructed[s], features[s]) for s in (seen, unseen)]
    torch.testing.assert_close(losses['loss_recon'],
                               0.5 * (recon[0] + recon[1]) / 2)
    pooled = F.l1_loss(reconstructed, features)
    assert not torch.allclose(losses['loss_recon'], 0.5 * pooled)
    # PADing_model.py:365, 390, 395: 0.5 * (KL(seen) + KL(unseen)) / 2,
    # each KL summed and divided by its set's entries.
    kl = [softmax_kl(unrelated[s], noise[s], 0.1) for s in (seen, unseen)]
    torch.testing.assert_close(losses['loss_unrelated_kl'],
                               0.5 * (kl[0] + kl[1]) / 2)
    # PADing_model.py:362-364 and 383-385, 393: the seen CE over all K
    # classes, the unseen CE over the U unseen classes, targets their
    # positions among them; 0.2 * (CE(seen) + CE(unseen)) / 2.
    ce_seen = F.cross_entropy(scores[seen], labels[seen])
    ce_unseen = F.cross_entropy(scores[unseen][:, UNSEEN],
                                torch.tensor([0, 1]))
    torch.testing.assert_close(losses['loss_relation'],
                               0.2 * (ce_seen + ce_unseen) / 2)


def test_per_feature_terms_split_over_parts_reduce_to_the_loss():
    """What a DDP run does: per-feature terms on each part, one reduction.
    """
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12).eval()
    features, labels, embeddings = split_batch(10, 2)
    related, unrelated = head(features)
    torch.manual_seed(7)
    losses = head.loss(features, labels, embeddings, related, unrelated,
                       unseen_classes=UNSEEN)
    torch.manual_seed(7)
    # The noise of the whole set, drawn once, handed to the parts in turn.
    noise = iter(torch.randn_like(unrelated).split([4, 0, 8]))
    parts = []
    for rows in (slice(0, 4), slice(4, 4), slice(4, 12)):
        with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch, 'randn_like', lambda x: next(noise))
            parts.append(head.per_feature_losses(
                features[rows], labels[rows], embeddings, related[rows],
                unrelated[rows], UNSEEN))
    assert parts[1]['recon'].shape == (0, )
    gathered = {key: torch.cat([part[key] for part in parts])
                for key in parts[0]}
    reduced = head.reduce_losses(gathered, labels, NUM_CLASSES, UNSEEN)
    assert reduced.keys() == losses.keys()
    for key in losses:
        torch.testing.assert_close(reduced[key], losses[key])


def test_relation_ce_logits_have_k_and_u_columns(monkeypatch):
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12)
    features, labels, embeddings = split_batch(10, 2)
    shapes = []
    cross_entropy = F.cross_entropy

    def spy(logits, targets, *args, **kwargs):
        shapes.append((tuple(logits.shape), targets.tolist()))
        return cross_entropy(logits, targets, *args, **kwargs)

    monkeypatch.setattr(F, 'cross_entropy', spy)
    head.loss(features, labels, embeddings, unseen_classes=UNSEEN)
    assert shapes == [((10, NUM_CLASSES), labels[:10].tolist()),
                      ((2, len(UNSEEN)), [0, 1])]

    shapes.clear()
    DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12,
                    seen_relation_classes='seen').loss(
                        features, labels, embeddings,
                        unseen_classes=torch.tensor(UNSEEN))
    # Seen classes 0, 2, 4 -> columns 0, 1, 2.
    assert shapes[0] == ((10, 3), (labels[:10] // 2).tolist())

    shapes.clear()
    mask = torch.zeros(NUM_CLASSES, dtype=torch.bool)
    mask[UNSEEN] = True
    DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12,
                    unseen_relation_classes='all').loss(
                        features, labels, embeddings, unseen_classes=mask)
    assert shapes[1] == ((2, NUM_CLASSES), labels[10:].tolist())


def test_pooled_reduction_keeps_the_old_losses():
    """set_reduction='pooled' + CE over K: one set, as without the split."""
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12,
                           set_reduction='pooled',
                           unseen_relation_classes='all').eval()
    features, labels, embeddings = split_batch(10, 2)
    parts = head(features)
    torch.manual_seed(2)
    pooled = head.loss(features, labels, embeddings, *parts,
                       unseen_classes=UNSEEN)
    torch.manual_seed(2)
    unsplit = head.loss(features, labels, embeddings, *parts)
    for key in pooled:
        torch.testing.assert_close(pooled[key], unsplit[key])
    reconstructed = head.reconstruct(*parts)
    torch.testing.assert_close(pooled['loss_recon'],
                               0.5 * F.l1_loss(reconstructed, features))
    torch.testing.assert_close(
        pooled['loss_relation'],
        0.2 * F.cross_entropy(head.relation_scores(parts[0], embeddings),
                              labels))


def test_only_non_empty_sets_count():
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12).eval()
    features, labels, embeddings = split_batch(6, 2)
    for rows in (slice(0, 6), slice(6, 8)):
        torch.manual_seed(1)
        one_set = head.loss(features[rows], labels[rows], embeddings,
                            unseen_classes=UNSEEN)
        assert all(torch.isfinite(v) for v in one_set.values())
        torch.manual_seed(1)
        pooled = DisentangleHead(
            feat_dim=16, semantic_dim=8, hidden_dim=12,
            set_reduction='pooled').eval()
        pooled.load_state_dict(head.state_dict())
        torch.manual_seed(1)
        expected = pooled.loss(features[rows], labels[rows], embeddings,
                               unseen_classes=UNSEEN)
        for key in one_set:
            torch.testing.assert_close(one_set[key], expected[key])


def test_bad_options_and_unseen_ids_are_named():
    for name in ('set_reduction', 'seen_relation_classes',
                 'unseen_relation_classes'):
        with pytest.raises(ValueError, match=name):
            DisentangleHead(**{name: 'nonsense'})
    head = DisentangleHead(feat_dim=16, semantic_dim=8, hidden_dim=12)
    features, labels, embeddings = split_batch(4, 2)
    with pytest.raises(ValueError, match=r'unseen class ids must be in'):
        head.loss(features, labels, embeddings, unseen_classes=[7])
    with pytest.raises(ValueError, match=r'mask must have shape \(5,\)'):
        head.loss(features, labels, embeddings,
                  unseen_classes=torch.ones(3, dtype=torch.bool))


def test_learner_passes_its_unseen_classes(tmp_path, monkeypatch):
    split = str(tmp_path / 'split.json')
    names = ['a', 'b', 'c', 'd', 'e']
    save_split(ZeroShotSplit(name='tiny', seen=('a', 'c', 'e'),
                             unseen=('d', 'b')), split)
    vectors = np.random.default_rng(0).standard_normal((5, 6))
    embeddings = str(tmp_path / 'embeddings.json')
    save_class_embeddings(embeddings, names, vectors.astype(np.float32),
                          source='test vectors')
    torch.manual_seed(0)
    learner = ZeroShotLearner(
        class_names=names, split=split, class_embeddings=embeddings,
        classifier=dict(type='Linear'),
        generator=dict(type='PrimitiveGenerator', num_primitives=8,
                       num_heads=2, ffn_dim=32),
        disentangle_head=dict(type='DisentangleHead', hidden_dim=16),
        feat_dim=16)
    seen = {}

    def spy(method):
        original = getattr(DisentangleHead, method)

        def record(self, *args):
            # The unseen classes are the last positional argument.
            seen.setdefault(method, []).append(args[-1])
            return original(self, *args)

        monkeypatch.setattr(DisentangleHead, method, record)

    # The learner computes per-feature terms, then reduces them per set.
    spy('per_feature_losses')
    spy('reduce_losses')
    labels = torch.tensor([[0, 5, 2], [4, 5, 5]])
    learner(torch.randn(2, 3, 16), labels, 'generator')
    assert set(seen) == {'per_feature_losses', 'reduce_losses'}
    for calls in seen.values():
        assert len(calls) == 1 and calls[0].tolist() == [1, 3]


def test_losses_read_the_device_once(host_reads, monkeypatch):
    """per_feature_losses reads nothing, reduce_losses once (which sets
    are empty), with the CPU-only label checks skipped as on a GPU."""
    from mmpading.models.heads import disentangle_head
    from mmpading.models.utils import class_masks
    for module in (disentangle_head, class_masks):
        monkeypatch.setattr(module, 'check_class_indices',
                            lambda *args, **kwargs: None)
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=8, semantic_dim=6, hidden_dim=16)
    features = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 0, 3, 4])
    semantic = torch.randn(5, 6)
    unseen = torch.tensor([3, 4])
    with host_reads() as reads:
        related, unrelated = head(features)
        per_feature = head.per_feature_losses(features, labels, semantic,
                                              related, unrelated, unseen)
    assert reads.count == 0
    with host_reads() as reads:
        losses = head.reduce_losses(per_feature, labels, 5, unseen)
    assert reads.count == 1
    assert all(torch.isfinite(value) for value in losses.values())
