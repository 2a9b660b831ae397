"""Properties of PrimitiveGenerator."""
import pytest
import torch

from mmpading.models import PrimitiveGenerator
from mmpading.models.generators.primitive_generator import mha_in_proj_bound

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


# Parity with the reference (heshuting555/PADing): the decoder layer of
# PADing/modeling/transformer_decoder/transformer.py:230-293, built by
# PADing/PADing_model.py:146-150.


def mha_with_weights_of(layer) -> torch.nn.MultiheadAttention:
    """An nn.MultiheadAttention computing the layer's self-attention."""
    embed_dim = layer.self_attn_value.in_features
    mha = torch.nn.MultiheadAttention(
        embed_dim, layer.cross_attn.num_heads, dropout=layer.dropout1.p)
    with torch.no_grad():
        # q / k keep their own values: over one key they do not matter.
        mha.in_proj_weight[2 * embed_dim:] = layer.self_attn_value.weight
        mha.in_proj_bias[2 * embed_dim:] = layer.self_attn_value.bias
        mha.out_proj.weight.copy_(layer.self_attn_out.weight)
        mha.out_proj.bias.copy_(layer.self_attn_out.bias)
    return mha


@pytest.mark.parametrize('training', [True, False])
def test_self_attention_is_multihead_attention_over_one_token(training):
    """Same seed, same draws: the reference's module, dropout included."""
    torch.manual_seed(0)
    generator = small_generator(dropout=0.3)
    layer = generator.layers[0]
    mha = mha_with_weights_of(layer)
    layer.train(training)
    mha.train(training)
    x = torch.randn(300, 32)
    torch.manual_seed(5)
    ours = layer.self_attention(x)
    torch.manual_seed(5)
    # (L=1, N, C): one token per feature, as PADing_model.py:348 calls it.
    reference = mha(x[None], x[None], x[None])[0][0]
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    if training:
        # The former path (residual dropout only) differs in training.
        old = small_generator(dropout=0.3, self_attn_weight_dropout=False)
        old.load_state_dict(generator.state_dict())
        assert not torch.allclose(old.layers[0].self_attention(x), ours)


def test_self_attention_weight_dropout_drops_heads_at_rate_p():
    """The softmax weight over one key is 1; dropout makes it 0 or 1/(1-p)."""
    torch.manual_seed(0)
    p, num_features, num_heads = 0.3, 2000, 4
    generator = small_generator(dropout=p).train()
    layer = generator.layers[0]
    captured = {}
    hooks = [
        layer.self_attn_value.register_forward_hook(
            lambda m, i, o: captured.__setitem__('value', o)),
        layer.self_attn_out.register_forward_pre_hook(
            lambda m, i: captured.__setitem__('weighted', i[0])),
    ]
    torch.manual_seed(1)
    generator(torch.randn(num_features, SEMANTIC_DIM), noise=False)
    for hook in hooks:
        hook.remove()
    value = captured['value'].view(num_features, num_heads, -1)
    weighted = captured['weighted'].view(num_features, num_heads, -1)
    dropped = (weighted == 0).all(dim=-1)
    kept = ~dropped
    # Each (feature, head) is either zeroed or scaled by 1 / (1 - p).
    torch.testing.assert_close(weighted[kept], value[kept] / (1 - p))
    # 8000 Bernoulli draws: the rate is p within about 4 standard errors.
    assert dropped.float().mean().item() == pytest.approx(p, abs=0.02)
    # The heads are dropped independently, not the branch as a whole.
    assert 0 < dropped.sum(dim=1).float().mean() < num_heads * 0.5


def test_self_attention_weight_dropout_option_keeps_the_former_path():
    torch.manual_seed(0)
    generator = small_generator(
        dropout=0.3, self_attn_weight_dropout=False).train()
    layer = generator.layers[0]
    x = torch.randn(500, 32)
    expected = layer.self_attn_out(layer.self_attn_value(x))
    torch.testing.assert_close(layer.self_attention(x), expected)


@pytest.mark.parametrize('dropout', [0.0, 0.3])
def test_eval_outputs_do_not_depend_on_self_attention_weight_dropout(
        dropout):
    torch.manual_seed(0)
    new = small_generator(dropout=dropout)
    old = small_generator(dropout=dropout, self_attn_weight_dropout=False)
    old.load_state_dict(new.state_dict())
    embeddings = torch.randn(16, SEMANTIC_DIM)
    for generator in (new, old):
        generator.eval()
    torch.testing.assert_close(
        new(embeddings, noise=False), old(embeddings, noise=False),
        rtol=0, atol=0)
    if dropout == 0.0:
        # Without dropout training mode is the same function too.
        new.train()
        old.train()
        torch.testing.assert_close(
            new(embeddings, noise=False), old(embeddings, noise=False),
            rtol=0, atol=0)


def assert_uniform(tensor, bound, name):
    """A large tensor drawn from U(-bound, bound)."""
    values = tensor.detach().flatten()
    assert values.abs().max().item() <= bound * (1 + 1e-6), name
    assert values.abs().max().item() >= 0.95 * bound, name
    assert values.std().item() == pytest.approx(
        bound / 3**0.5, rel=0.15 if values.numel() < 2000 else 0.03), name
    assert values.mean().abs().item() < 0.1 * bound, name


def linear_default_bound(linear) -> float:
    """nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)), 1/sqrt(in)."""
    return 1.0 / linear.in_features**0.5


def test_torch_default_formulas_are_what_pytorch_gives():
    """Anchor the bounds used below on real PyTorch modules."""
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(256, 8)
    assert_uniform(mha.in_proj_weight, mha_in_proj_bound(256), 'in_proj')
    assert (mha.in_proj_bias == 0).all() and (mha.out_proj.bias == 0).all()
    assert_uniform(mha.out_proj.weight,
                   linear_default_bound(mha.out_proj), 'out_proj')
    linear = torch.nn.Linear(300, 256)
    assert_uniform(linear.weight, linear_default_bound(linear), 'weight')
    assert_uniform(linear.bias, linear_default_bound(linear), 'bias')


@pytest.mark.parametrize('init_mode', ['reference', 'torch_default'])
def test_default_init_follows_the_reference_module_by_module(init_mode):
    torch.manual_seed(0)
    kwargs = {} if init_mode == 'reference' else dict(init_mode=init_mode)
    generator = PrimitiveGenerator(semantic_dim=300, **kwargs)
    assert generator.init_mode == init_mode
    in_proj = mha_in_proj_bound(256)
    # fc_projection (PADing_model.py:146): nn.Linear, non-zero bias.
    proj = generator.semantic_proj
    assert_uniform(proj.weight, linear_default_bound(proj), 'semantic_proj')
    assert_uniform(proj.bias, linear_default_bound(proj), 'semantic_proj.b')
    # dict_feature (PADing_model.py:147): nn.Embedding, N(0, 1).
    assert generator.primitives.std().item() == pytest.approx(1.0, rel=0.02)
    assert generator.primitives.mean().abs().item() < 0.02
    for index, layer in enumerate(generator.layers):
        name = f'layers.{index}'
        # self_attn / multihead_attn (transformer.py:242-243).
        for linear in (layer.self_attn_value, layer.cross_attn.q_proj,
                       layer.cross_attn.k_proj, layer.cross_attn.v_proj):
            assert_uniform(linear.weight, in_proj, f'{name} in_proj')
            assert (linear.bias == 0).all()
        for linear in (layer.self_attn_out, layer.cross_attn.out_proj):
            assert_uniform(linear.weight, linear_default_bound(linear),
                           f'{name} out_proj')
            assert (linear.bias == 0).all()
        # linear1 / linear2 (transformer.py:245-247): nn.Linear defaults.
        for linear in (layer.ffn[0], layer.ffn[3]):
            bound = linear_default_bound(linear)
            assert_uniform(linear.weight, bound, f'{name} ffn')
            assert_uniform(linear.bias, bound, f'{name} ffn bias')
            assert (linear.bias != 0).all()
        for norm in (layer.norm1, layer.norm2, layer.norm3):
            assert (norm.weight == 1).all() and (norm.bias == 0).all()
    assert (generator.final_norm.weight == 1).all()
    assert (generator.final_norm.bias == 0).all()
    # _get_clones (transformer.py:108,360-361) deep-copies one layer.
    first = generator.layers[0].state_dict()
    for layer in generator.layers[1:]:
        same = all(
            torch.equal(first[key], value)
            for key, value in layer.state_dict().items())
        assert same == (init_mode == 'reference')


def test_xavier_init_mode_restores_the_former_init():
    torch.manual_seed(0)
    generator = PrimitiveGenerator(semantic_dim=300, init_mode='xavier')
    for name, module in generator.named_modules():
        if isinstance(module, torch.nn.Linear):
            bound = (6.0 / (module.in_features + module.out_features))**0.5
            assert_uniform(module.weight, bound, name)
            assert (module.bias == 0).all(), name
    assert generator.primitives.std().item() == pytest.approx(1.0, rel=0.02)
    first, second = generator.layers[0], generator.layers[1]
    assert not torch.equal(first.ffn[0].weight, second.ffn[0].weight)
    with pytest.raises(ValueError, match='init_mode'):
        small_generator(init_mode='kaiming')


def test_init_weights_without_init_cfg_keeps_the_init():
    """mmengine's init_weights (called by the runner) must not undo it."""
    torch.manual_seed(0)
    generator = small_generator()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    generator.init_weights()
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
