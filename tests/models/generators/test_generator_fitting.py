"""Both generators, trained with MMD only, reproduce two Gaussian clusters.

Each of two random semantic embeddings must be mapped to its own cluster
N(mu_k, 0.3^2 I) in 32 dimensions (the class means are standardised like
LayerNorm'd class embeddings, 8.2 apart here). The loss is the sum of the
per-class MMDs, so the generator must learn which embedding goes where.

Stated tolerance: after 200 Adam steps, the mean of 2000 generated features
of each class lies within 10% of the inter-cluster distance of its target
mean (observed: about 2.5%), while before training it is farther away than
half that distance.
"""
import pytest
import torch

from mmpading.models import GMMNGenerator, MMDLoss, PrimitiveGenerator

FEAT_DIM = 32
SEMANTIC_DIM = 8
CLUSTER_STD = 0.3
BATCH_PER_CLASS = 64
STEPS = 200
TOLERANCE = 0.1  # fraction of the distance between the two target means


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models: one thread is faster and immune to busy neighbours."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build(kind: str) -> torch.nn.Module:
    if kind == 'primitive':
        return PrimitiveGenerator(
            SEMANTIC_DIM,
            feat_dim=FEAT_DIM,
            num_primitives=32,
            num_layers=2,
            num_heads=4,
            ffn_dim=64,
            dropout=0.0)
    return GMMNGenerator(
        SEMANTIC_DIM,
        feat_dim=FEAT_DIM,
        hidden_dim=64,
        noise_dim=FEAT_DIM,
        dropout=0.0)


def mean_errors(generator, embeddings, means) -> list[float]:
    generator.eval()
    with torch.no_grad():
        errors = []
        for k in range(2):
            generated = generator(
                embeddings[k].expand(2000, -1), noise=True)
            errors.append((generated.mean(0) - means[k]).norm().item())
    generator.train()
    return errors


@pytest.mark.parametrize('kind', ['primitive', 'gmmn'])
def test_mmd_alone_fits_two_gaussian_clusters(kind):
    torch.manual_seed(0)
    embeddings = torch.randn(2, SEMANTIC_DIM)
    means = torch.randn(2, FEAT_DIM)
    means = (means - means.mean(1, keepdim=True)) / means.std(
        1, keepdim=True)
    separation = (means[0] - means[1]).norm().item()
    generator = build(kind)
    before = mean_errors(generator, embeddings, means)
    assert min(before) > 0.5 * separation

    mmd = MMDLoss()
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    labels = torch.arange(2).repeat_interleave(BATCH_PER_CLASS)
    for _ in range(STEPS):
        real = means[labels] + CLUSTER_STD * torch.randn(
            len(labels), FEAT_DIM)
        fake = generator(embeddings[labels])
        loss = sum(
            mmd(fake[labels == k], real[labels == k]) for k in range(2))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    after = mean_errors(generator, embeddings, means)
    assert max(after) < TOLERANCE * separation, (
        f'{kind}: generated means are {after} away from the targets '
        f'(tolerance {TOLERANCE * separation:.2f})')
