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
    PADING_PROMPT_TEMPLATES,
    build_clip_class_embeddings,
    class_prompts,
    encode_class_names,
    load_clip_text_encoder,
    openai_to_mmseg_key,
    prompt_variants,
    read_clip_text_weights,
)

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


def test_pading_templates():
    assert len(PADING_PROMPT_TEMPLATES) == 8
    assert PADING_PROMPT_TEMPLATES[0] == 'a photo of a {}.'
    assert all(t.count('{}') == 1 for t in PADING_PROMPT_TEMPLATES)
    assert class_prompts('cat') == [
        t.format('cat') for t in PADING_PROMPT_TEMPLATES
    ]
    assert prompt_variants('tv, monitor') == ['tv', 'monitor']
    assert prompt_variants('wall-concrete') == ['wall-concrete']
    assert len(class_prompts('tv, monitor')) == 16


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
    assert 'OpenAI TorchScript' in source and 'PADing' in source
    assert 'test list' in source
    wanted = list(reversed(NAMES))
    loaded, names = load_class_embeddings(str(out), class_names=wanted,
                                          dim=32)
    assert names == wanted
    loader = load_clip_text_encoder(tiny_clip['openai_pt'], num_heads=2)
    np.testing.assert_array_equal(
        loaded, encode_class_names(loader.encoder, wanted))
