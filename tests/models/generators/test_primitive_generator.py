"""Properties of PrimitiveGenerator."""
import pytest
import torch

from mmpading.models import PrimitiveGenerator

SEMANTIC_DIM = 12


def small_generator(**kwargs) -> PrimitiveGenerator:
    cfg = dict(
        semantic_dim=SEMANTIC_DIM,
        feat_dim=32,
        num_primitives=20,
        num_layers=3,
        num_heads=4,
        ffn_dim=64)
    cfg.update(kwargs)
    return PrimitiveGenerator(**cfg)


def test_defaults_follow_the_design():
    generator = PrimitiveGenerator(semantic_dim=300)
    assert generator.primitives.shape == (400, 256)
    assert len(generator.layers) == 3
    layer = generator.layers[0]
    assert layer.cross_attn.num_heads == 8
    assert layer.ffn[0].out_features == 1024
    assert layer.dropout2.p == pytest.approx(0.1)
    assert generator.with_noise and generator.noise_std == 1.0
    out = generator(torch.randn(3, 300))
    assert out.shape == (3, 256)


@pytest.mark.parametrize('training', [True, False])
def test_assembly_weights_are_distributions_over_primitives(training):
    torch.manual_seed(0)
    generator = small_generator().train(training)
    features, weights = generator(
        torch.randn(5, SEMANTIC_DIM), return_weights=True)
    assert features.shape == (5, 32)
    assert len(weights) == generator.num_layers
    for layer_weights in weights:
        assert layer_weights.shape == (5, 4, 20)
        assert layer_weights.dtype == torch.float32
        assert (layer_weights >= 0).all()
        torch.testing.assert_close(
            layer_weights.sum(dim=-1), torch.ones(5, 4))
    averaged = generator.assembly_weights(
        torch.randn(5, SEMANTIC_DIM), average_heads=True)
    for layer_weights in averaged:
        assert layer_weights.shape == (5, 20)
        torch.testing.assert_close(layer_weights.sum(dim=-1), torch.ones(5))


def test_gradients_reach_primitives_projection_and_every_layer():
    torch.manual_seed(0)
    generator = small_generator()
    features = generator(torch.randn(6, SEMANTIC_DIM))
    # A random projection: the plain sum of a LayerNorm output has no
    # gradient.
    (features * torch.randn_like(features)).sum().backward()
    names = dict(generator.named_parameters())
    assert 'primitives' in names and 'semantic_proj.weight' in names
    for index in range(generator.num_layers):
        assert any(name.startswith(f'layers.{index}.') for name in names)
    without_gradient = [
        name for name, param in names.items()
        if param.grad is None or not param.grad.abs().sum() > 0
    ]
    assert without_gradient == []


def test_noise_switch_and_determinism():
    generator = small_generator().eval()
    embeddings = torch.randn(4, SEMANTIC_DIM)
    first, second = generator(embeddings), generator(embeddings)
    assert not torch.allclose(first, second), 'noise draws must differ'
    # No noise and no dropout: a deterministic function of the embedding.
    torch.testing.assert_close(
        generator(embeddings, noise=False), generator(embeddings,
                                                      noise=False),
        rtol=0, atol=0)
    # Training mode (dropout) with a fixed seed is repeatable too.
    generator.train()
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        outputs.append(generator(embeddings, noise=False))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    # The constructor switch is the default of forward(noise=None).
    quiet = small_generator(with_noise=False).eval()
    torch.testing.assert_close(quiet(embeddings), quiet(embeddings))
    assert not torch.allclose(
        quiet(embeddings, noise=True), quiet(embeddings, noise=True))


def test_same_seed_builds_and_generates_the_same():
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        generator = small_generator()
        outputs.append(generator(torch.randn(4, SEMANTIC_DIM)))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


@pytest.mark.parametrize('with_noise', [True, False])
def test_noise_is_added_after_the_cross_attention_residual_of_each_layer(
        with_noise):
    """Recompute norm2's input from its parts: the rest is the noise."""
    torch.manual_seed(0)
    noise_std = 0.5
    generator = small_generator(feat_dim=64, noise_std=noise_std).eval()
    captured = {index: {} for index in range(generator.num_layers)}
    hooks = []
    for index, layer in enumerate(generator.layers):
        record = captured[index]
        hooks += [
            layer.norm1.register_forward_hook(
                lambda m, i, o, r=record: r.__setitem__('residual', o)),
            layer.cross_attn.register_forward_hook(
                lambda m, i, o, r=record: r.__setitem__('attended', o[0])),
            layer.norm2.register_forward_pre_hook(
                lambda m, i, r=record: r.__setitem__('norm2_input', i[0])),
        ]
    generator(torch.randn(256, SEMANTIC_DIM), noise=with_noise)
    for hook in hooks:
        hook.remove()
    for record in captured.values():
        injected = record['norm2_input'] - (
            record['residual'] + record['attended'])
        if with_noise:
            assert injected.std().item() == pytest.approx(noise_std, rel=0.1)
            assert injected.mean().abs().item() < 0.05
        else:
            assert injected.abs().max().item() < 1e-5


def test_wrong_semantic_dim_names_expected_and_found():
    generator = small_generator()
    with pytest.raises(ValueError, match=f'semantic_dim={SEMANTIC_DIM}.*'
                       'dimension 7'):
        generator(torch.randn(3, 7))
    with pytest.raises(ValueError, match=r'shape \(N, 12\)'):
        generator(torch.randn(SEMANTIC_DIM))
    with pytest.raises(ValueError, match='divisible by num_heads'):
        small_generator(num_heads=5)


def test_cpu_autocast_keeps_assembly_weights_in_fp32():
    torch.manual_seed(0)
    generator = small_generator()
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for device in devices:
        generator.to(device)
        dtype = torch.bfloat16 if device == 'cpu' else torch.float16
        with torch.autocast(device_type=device, dtype=dtype):
            features, weights = generator(
                torch.randn(8, SEMANTIC_DIM, device=device),
                return_weights=True)
        assert torch.isfinite(features).all()
        for layer_weights in weights:
            assert layer_weights.dtype == torch.float32
            torch.testing.assert_close(
                layer_weights.sum(-1),
                torch.ones(8, 4, device=device),
                atol=1e-5,
                rtol=0)
