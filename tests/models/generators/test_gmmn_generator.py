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
