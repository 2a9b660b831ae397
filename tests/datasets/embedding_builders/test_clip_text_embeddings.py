"""CLIP text embeddings: checkpoint formats, prompt ensemble, errors.

The checkpoints are the tiny random-weight models of ``conftest.py``; their
reference forward is an independent copy of OpenAI's ``encode_text``.
"""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmpading.datasets.class_embeddings import load_class_embeddings
from mmpading.datasets.embedding_builders import (
    DEFAULT_PROMPT_TEMPLATES,
    PADING_PROMPT_TEMPLATES,
    PROMPT_TEMPLATE_SETS,
    build_clip_class_embeddings,
    class_prompts,
    encode_class_names,
    ensemble_prompt_embeddings,
    load_clip_text_encoder,
    openai_to_mmseg_key,
    prompt_variants,
    read_clip_text_weights,
    resolve_prompt_templates,
)

# Data copied from the reference, heshuting555/PADing
# PADing/third_party/imagenet_templates.py:88-97 (IMAGENET_TEMPLATES_SELECT,
# selected by PADing/PADing_model.py:167-171).
REFERENCE_IMAGENET_TEMPLATES_SELECT = [
    'itap of a {}.',
    'a bad photo of the {}.',
    'a origami {}.',
    'a photo of the large {}.',
    'a {} in a video game.',
    'art of the {}.',
    'a photo of the small {}.',
    'A photo of a {} in the scene',
]
# PADing/PADing_model.py:175 (prompt_ensemble_type == "single").
REFERENCE_SINGLE = ['A photo of a {} in the scene']
# mmpading's former default (first 8 ViLD-style templates), kept as 'vild8'.
FORMER_DEFAULT_TEMPLATES = [
    'a photo of a {}.',
    'This is a photo of a {}',
    'There is a {} in the scene',
    'There is the {} in the scene',
    'a photo of a {} in the scene',
    'a photo of a small {}.',
    'a photo of a medium {}.',
    'a photo of a large {}.',
]

NAMES = ['cat', 'traffic light', 'tv, monitor', 'sky-other-merged']


def reference_embedding(model, prompts):
    """PADing's recipe on the reference model: normalise, mean, normalise."""
    from mmseg.utils import tokenizer
    with torch.no_grad():
        features = model(tokenizer.tokenize(prompts))
    return F.normalize(F.normalize(features, dim=-1).mean(dim=0),
                       dim=0).numpy()


@pytest.fixture(scope='module')
def encoders(tiny_clip):
    return {
        key: load_clip_text_encoder(tiny_clip[key], num_heads=2)
        for key in ('openai_pt', 'mmseg_pth', 'mmseg_state_dict_pth')
    }


def test_default_templates_are_the_references():
    assert DEFAULT_PROMPT_TEMPLATES == 'imagenet_select'
    assert list(PROMPT_TEMPLATE_SETS['imagenet_select']) == \
        REFERENCE_IMAGENET_TEMPLATES_SELECT
    assert list(PADING_PROMPT_TEMPLATES) == \
        REFERENCE_IMAGENET_TEMPLATES_SELECT
    assert list(PROMPT_TEMPLATE_SETS['single']) == REFERENCE_SINGLE
    assert list(PROMPT_TEMPLATE_SETS['vild8']) == FORMER_DEFAULT_TEMPLATES
    # Defaults everywhere: the reference's set, in the reference's order.
    assert class_prompts('cat') == [
        t.format('cat') for t in REFERENCE_IMAGENET_TEMPLATES_SELECT
    ]
    assert class_prompts('cat', 'vild8')[0] == 'a photo of a cat.'


def test_resolve_prompt_templates():
    assert resolve_prompt_templates() == (
        'imagenet_select', tuple(REFERENCE_IMAGENET_TEMPLATES_SELECT))
    assert resolve_prompt_templates('vild8') == (
        'vild8', tuple(FORMER_DEFAULT_TEMPLATES))
    # A known set given as a list is recognised; others are custom.
    assert resolve_prompt_templates(FORMER_DEFAULT_TEMPLATES)[0] == 'vild8'
    assert resolve_prompt_templates(['a {}']) == ('custom', ('a {}', ))
    with pytest.raises(ValueError, match="Did you mean 'imagenet_select'"):
        resolve_prompt_templates('imagenet_selct')
    with pytest.raises(ValueError, match='must be given as a list'):
        resolve_prompt_templates('a photo of a {}')
    with pytest.raises(ValueError, match='exactly one'):
        resolve_prompt_templates(['no slot'])
    with pytest.raises(ValueError, match='At least one'):
        resolve_prompt_templates([])


def test_class_names_as_written_and_template_major_variants():
    """PADing_model.py:183-190: no suffix stripped, template-major order."""
    assert prompt_variants('tv, monitor') == ['tv', 'monitor']
    assert prompt_variants('wall-concrete') == ['wall-concrete']
    assert class_prompts('sky-other-merged')[0] == \
        'itap of a sky-other-merged.'
    assert class_prompts('door-stuff')[-1] == \
        'A photo of a door-stuff in the scene'
    assert class_prompts('tv, monitor') == [
        t.format(v) for t in REFERENCE_IMAGENET_TEMPLATES_SELECT
        for v in ('tv', 'monitor')
    ]
    assert class_prompts('tv, monitor')[:3] == [
        'itap of a tv.', 'itap of a monitor.', 'a bad photo of the tv.'
    ]


class FakeTextEncoder(torch.nn.Module):
    """Stand-in for CLIPTextEncoder: prompt embeddings of unequal norms.

    The embedding of a prompt is the sum of its words' token vectors times
    its word count squared, so the norms differ a lot between prompts and
    normalising before or after averaging gives different results. The
    token tensors it is given are recorded.
    """

    def __init__(self, dim: int = 6):
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.token_embedding = torch.nn.Embedding(49408, dim)
        with torch.no_grad():
            self.token_embedding.weight.copy_(
                torch.randn(49408, dim, generator=generator))
        self.positional_embedding = torch.nn.Parameter(torch.zeros(77, dim))
        self.calls: list[torch.Tensor] = []

    def raw(self, tokens: torch.Tensor) -> torch.Tensor:
        # Words only: start / end of text (49406, 49407) and padding (0)
        # are the same in every prompt.
        words = ((tokens > 0) & (tokens < 49406)).float()
        count = words.sum(dim=1, keepdim=True)
        summed = (self.token_embedding(tokens) * words[..., None]).sum(dim=1)
        return summed * count**2

    def encode_text(self, tokens: torch.Tensor,
                    normalize: bool = False) -> torch.Tensor:
        self.calls.append(tokens.clone())
        x = self.raw(tokens)
        return F.normalize(x, dim=-1) if normalize else x


def test_normalise_each_prompt_then_average_then_renormalise():
    """PADing_model.py:193-195 on a fake encoder."""
    from mmseg.utils import tokenizer
    encoder = FakeTextEncoder()
    row = encode_class_names(encoder, ['tv, monitor'])[0]
    prompts = [
        t.format(v) for t in REFERENCE_IMAGENET_TEMPLATES_SELECT
        for v in ('tv', 'monitor')
    ]
    tokens = tokenizer.tokenize(prompts)
    # One call with the 16 prompts, in the reference's order.
    assert len(encoder.calls) == 1
    assert torch.equal(encoder.calls[0], tokens)
    raw = encoder.raw(tokens).detach()
    expected = F.normalize(F.normalize(raw, dim=-1).mean(dim=0), dim=0)
    np.testing.assert_allclose(row, expected.numpy(), atol=1e-6)
    assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-6)
    # Averaging the raw embeddings (no per-prompt norm) differs.
    unnormalised = F.normalize(raw.mean(dim=0), dim=0).numpy()
    assert not np.allclose(row, unnormalised, atol=1e-3)
    # The helper alone, and its output without the final renormalisation.
    np.testing.assert_allclose(
        ensemble_prompt_embeddings(raw).numpy(), expected.numpy(),
        atol=1e-6)
    mean_only = F.normalize(raw, dim=-1).mean(dim=0)
    assert mean_only.norm() < 0.99  # so the renormalisation matters
    assert not np.allclose(row, mean_only.numpy(), atol=1e-3)


def test_named_sets_change_the_embedding():
    encoder = FakeTextEncoder()
    default = encode_class_names(encoder, ['cat'])
    np.testing.assert_array_equal(
        default, encode_class_names(encoder, ['cat'], 'imagenet_select'))
    former = encode_class_names(encoder, ['cat'], templates='vild8')
    np.testing.assert_array_equal(
        former, encode_class_names(encoder, ['cat'],
                                   FORMER_DEFAULT_TEMPLATES))
    assert not np.allclose(default, former, atol=1e-3)


def test_too_long_prompts_are_refused_as_the_reference():
    """PADing's clip.tokenize raises (third_party/clip.py:203-204)."""
    with pytest.raises(ValueError, match='more than the context length'):
        encode_class_names(FakeTextEncoder(), [' '.join(['cat'] * 80)])


def test_tokenizer_vocabulary_ships_with_mmseg():
    """Nothing downloads: the BPE vocabulary is inside the mmseg package."""
    import mmseg
    from mmseg.utils import tokenizer
    bpe = Path(tokenizer.default_bpe())
    assert bpe.is_file()
    assert Path(mmseg.__file__).parent in bpe.parents


def test_formats_are_detected(encoders):
    assert encoders['openai_pt'].checkpoint_format == 'OpenAI TorchScript'
    assert encoders['mmseg_pth'].checkpoint_format == 'mmseg'
    assert encoders['mmseg_state_dict_pth'].checkpoint_format == 'mmseg'
    config = encoders['openai_pt'].config
    assert (config.embed_dims, config.num_layers, config.num_heads,
            config.context_length, config.output_dims,
            config.mlp_ratio) == (64, 2, 2, 77, 32, 4)
    from mmseg.models.text_encoder import CLIPTextEncoder
    assert isinstance(encoders['openai_pt'].encoder, CLIPTextEncoder)


def test_all_formats_give_identical_embeddings(encoders):
    results = [
        encode_class_names(loaded.encoder, NAMES)
        for loaded in encoders.values()
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_rows_are_unit_norm_with_the_output_dim(encoders):
    embeddings = encode_class_names(encoders['openai_pt'].encoder, NAMES)
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (len(NAMES), 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0,
                               atol=1e-6)


def test_template_average_matches_a_manual_computation(tiny_clip, encoders):
    """Encode each prompt, normalise, average, renormalise."""
    embeddings = encode_class_names(encoders['openai_pt'].encoder,
                                    ['cat', 'traffic light'])
    for row, name in enumerate(['cat', 'traffic light']):
        prompts = [t.format(name) for t in PADING_PROMPT_TEMPLATES]
        expected = reference_embedding(tiny_clip['model'], prompts)
        np.testing.assert_allclose(embeddings[row], expected, atol=1e-5)
    # Not the embedding of a single prompt.
    single = reference_embedding(tiny_clip['model'], ['a photo of a cat.'])
    assert not np.allclose(embeddings[0], single, atol=1e-3)


def test_comma_names_average_their_variants(tiny_clip, encoders):
    encoder = encoders['mmseg_pth'].encoder
    both, tv, monitor = encode_class_names(encoder,
                                           ['tv, monitor', 'tv', 'monitor'])
    prompts = [t.format(v) for v in ('tv', 'monitor')
               for t in PADING_PROMPT_TEMPLATES]
    np.testing.assert_allclose(
        both, reference_embedding(tiny_clip['model'], prompts), atol=1e-5)
    # Equal weight per variant: the sum of the per-variant template means.
    model = tiny_clip['model']
    from mmseg.utils import tokenizer
    with torch.no_grad():
        means = [
            F.normalize(model(tokenizer.tokenize(class_prompts(v))),
                        dim=-1).mean(dim=0) for v in ('tv', 'monitor')
        ]
    np.testing.assert_allclose(
        both, F.normalize(means[0] + means[1], dim=0).numpy(), atol=1e-5)
    assert not np.allclose(both, tv, atol=1e-3)
    assert not np.allclose(both, monitor, atol=1e-3)


def test_heads_default_to_width_over_64(tiny_clip, encoders):
    loaded = load_clip_text_encoder(tiny_clip['openai_pt'])
    assert loaded.config.num_heads == 1
    one_head = encode_class_names(loaded.encoder, ['cat'])
    two_heads = encode_class_names(encoders['openai_pt'].encoder, ['cat'])
    assert not np.allclose(one_head, two_heads, atol=1e-3)
    with pytest.raises(ValueError, match=r'64 wide.*3 attention heads'):
        load_clip_text_encoder(tiny_clip['openai_pt'], num_heads=3)


def _openai_state(tiny_clip) -> dict:
    return {k: v.clone() for k, v in tiny_clip['model'].state_dict().items()}


def test_truncated_openai_checkpoint_names_the_missing_key(
        tiny_clip, tmp_path):
    state = _openai_state(tiny_clip)
    del state['transformer.resblocks.1.mlp.c_proj.weight']
    del state['ln_final.bias']
    path = tmp_path / 'truncated.pt'
    torch.save(state, str(path))
    with pytest.raises(ValueError) as error:
        load_clip_text_encoder(str(path), num_heads=2)
    message = str(error.value)
    assert 'lacks 2 weight(s)' in message
    assert 'transformer.resblocks.1.mlp.c_proj.weight' in message
    assert 'ln_final.bias' in message
    assert str(path) in message


def test_truncated_mmseg_checkpoint_names_the_missing_key(
        tiny_clip, tmp_path):
    state = torch.load(tiny_clip['mmseg_pth'], weights_only=True)
    del state['text_encoder.transformer.1.ffns.0.layers.1.weight']
    path = tmp_path / 'truncated.pth'
    torch.save(state, str(path))
    with pytest.raises(ValueError,
                       match=re.escape('text_encoder.transformer.1.ffns.0.'
                                       'layers.1.weight')):
        load_clip_text_encoder(str(path), num_heads=2)


def test_wrong_width_names_expected_and_found_shapes(tiny_clip, tmp_path):
    state = _openai_state(tiny_clip)
    state['positional_embedding'] = torch.zeros(77, 48)
    path = tmp_path / 'wrong_width.pt'
    torch.save(state, str(path))
    with pytest.raises(ValueError) as error:
        load_clip_text_encoder(str(path), num_heads=2)
    assert 'positional_embedding: expected (77, 64), found (77, 48)' in str(
        error.value)


def test_unknown_text_keys_are_named(tiny_clip, tmp_path):
    state = _openai_state(tiny_clip)
    state['transformer.resblocks.0.attn.extra_scale'] = torch.ones(1)
    path = tmp_path / 'extra.pt'
    torch.save(state, str(path))
    with pytest.raises(ValueError, match='attn.extra_scale'):
        load_clip_text_encoder(str(path), num_heads=2)


def test_other_files_fail_with_the_path(tiny_clip, tmp_path):
    missing = tmp_path / 'ViT-B-16.pt'
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_clip_text_weights(str(missing))
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint at all')
    with pytest.raises(ValueError, match='Cannot read the checkpoint'):
        read_clip_text_weights(str(garbage))
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(Path(tiny_clip['openai_pt']).read_bytes()[:100_000])
    with pytest.raises(ValueError, match='damaged or truncated'):
        read_clip_text_weights(str(cut))
    other = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}},
               str(other))
    with pytest.raises(ValueError,
                       match=r'no CLIP text encoder.*backbone\.conv1'):
        read_clip_text_weights(str(other))


def test_key_mapping_matches_mmseg_converter(tiny_clip, clip2mmseg):
    """openai_to_mmseg_key == mmseg's clip2mmseg.py, key by key."""
    if clip2mmseg is None:
        pytest.skip('this mmseg install ships no clip2mmseg.py')
    state = {
        k: v
        for k, v in _openai_state(tiny_clip).items()
        if not k.startswith('visual.') and k not in ('input_resolution',
                                                     'context_length',
                                                     'vocab_size')
    }
    converted = list(clip2mmseg.convert_key_name(state, visual_split=-1))
    assert converted == ['text_encoder.' + openai_to_mmseg_key(k)
                         for k in state]


def test_embedding_file_round_trip(tiny_clip, tmp_path):
    out = tmp_path / 'clip.json'
    source = build_clip_class_embeddings(
        tiny_clip['openai_pt'], NAMES, str(out), classes_from='test list',
        num_heads=2)
    assert 'OpenAI TorchScript' in source
    assert "prompt template(s) 'imagenet_select'" in source
    assert 'IMAGENET_TEMPLATES_SELECT' in source
    assert 'test list' in source
    wanted = list(reversed(NAMES))
    loaded, names = load_class_embeddings(str(out), class_names=wanted,
                                          dim=32)
    assert names == wanted
    loader = load_clip_text_encoder(tiny_clip['openai_pt'], num_heads=2)
    np.testing.assert_array_equal(
        loaded, encode_class_names(loader.encoder, wanted))
