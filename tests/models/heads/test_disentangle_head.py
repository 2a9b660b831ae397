"""Properties of DisentangleHead."""
import pytest
import torch
import torch.nn.functional as F

from mmpading.models import DisentangleHead

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


def test_reconstruction_loss_falls_over_200_adam_steps():
    torch.manual_seed(0)
    head = DisentangleHead(feat_dim=64, semantic_dim=32, hidden_dim=64)
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
    assert after < 0.5 * before, (before, after)


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
