"""Properties of the GMMN baseline generator."""
import inspect

import pytest
import torch

from mmpading.models import GMMNGenerator, PrimitiveGenerator


def test_shape_and_interface_match_the_primitive_generator():
    generator = GMMNGenerator(semantic_dim=300)
    assert generator(torch.randn(5, 300)).shape == (5, 256)
    assert generator.semantic_proj.out_features == 256
    gmmn_forward = inspect.signature(GMMNGenerator.forward).parameters
    primitive_forward = inspect.signature(
        PrimitiveGenerator.forward).parameters
    assert list(gmmn_forward) == list(primitive_forward)[:len(gmmn_forward)]
    for name in ('semantic_dim', 'feat_dim', 'with_noise', 'noise_std'):
        assert name in inspect.signature(GMMNGenerator).parameters


def test_noise_switch_and_determinism():
    generator = GMMNGenerator(semantic_dim=10, feat_dim=16).eval()
    embeddings = torch.randn(4, 10)
    assert not torch.allclose(generator(embeddings), generator(embeddings))
    torch.testing.assert_close(
        generator(embeddings, noise=False),
        generator(embeddings, noise=False),
        rtol=0,
        atol=0)
    generator.train()
    outputs = []
    for _ in range(2):
        torch.manual_seed(11)
        outputs.append(generator(embeddings))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    generator = GMMNGenerator(semantic_dim=10, feat_dim=16, dropout=0.0)
    features = generator(torch.randn(6, 10))
    (features * torch.randn_like(features)).sum().backward()
    without_gradient = [
        name for name, param in generator.named_parameters()
        if param.grad is None or not param.grad.abs().sum() > 0
    ]
    assert without_gradient == []


def test_wrong_semantic_dim_names_expected_and_found():
    generator = GMMNGenerator(semantic_dim=300)
    with pytest.raises(ValueError, match='semantic_dim=300.*dimension 512'):
        generator(torch.randn(2, 512))
    with pytest.raises(ValueError, match='dropout'):
        GMMNGenerator(semantic_dim=3, dropout=1.5)


def xavier_bound(linear) -> float:
    return (6.0 / (linear.in_features + linear.out_features))**0.5


def test_default_init_follows_the_reference_gmmn():
    """GMMNnetwork.init_weights (PADing/utils/network_utils.py:22-25)."""
    torch.manual_seed(0)
    generator = GMMNGenerator(semantic_dim=300)
    assert generator.init_mode == 'reference'
    for linear in (generator.mlp[0], generator.mlp[3]):
        bound = xavier_bound(linear)
        assert linear.weight.abs().max().item() <= bound
        assert linear.weight.abs().max().item() >= 0.95 * bound
        assert linear.weight.std().item() == pytest.approx(
            bound / 3**0.5, rel=0.03)
        assert (linear.bias == 0.01).all()
    # The projection is a default nn.Linear like fc_projection
    # (PADing_model.py:146): kaiming-uniform, non-zero uniform bias.
    proj = generator.semantic_proj
    bound = 1 / 300**0.5
    assert proj.weight.abs().max().item() <= bound
    assert proj.weight.std().item() == pytest.approx(bound / 3**0.5,
                                                     rel=0.03)
    assert (proj.bias != 0).all() and proj.bias.abs().max() <= bound


def test_xavier_init_mode_restores_the_former_init():
    torch.manual_seed(0)
    generator = GMMNGenerator(semantic_dim=300, init_mode='xavier')
    for linear in (generator.semantic_proj, generator.mlp[0],
                   generator.mlp[3]):
        bound = xavier_bound(linear)
        assert linear.weight.abs().max().item() <= bound
        assert linear.weight.std().item() == pytest.approx(
            bound / 3**0.5, rel=0.03)
        assert (linear.bias == 0).all()
    with pytest.raises(ValueError, match='init_mode'):
        GMMNGenerator(semantic_dim=3, init_mode='torch_default')
