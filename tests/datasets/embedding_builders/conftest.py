"""Tiny random-weight CLIP text encoders, saved in the checkpoint formats.

Real CLIP weights cannot be downloaded in tests. ``TinyOpenAICLIPText`` is
an independent re-implementation of the text half of OpenAI's
``clip/model.py`` (``CLIP.encode_text``) with OpenAI's parameter names; it is
saved as a TorchScript archive (like OpenAI's ``ViT-B-16.pt``) and, through
mmseg's own ``clip2mmseg.py`` key conversion, in mmseg's format. Its
``forward`` is the reference the embeddings are checked against.
"""
from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

# width 64, 2 layers, 2 heads (not width // 64 = 1), context 77, 32-d output.
TINY = dict(width=64, layers=2, heads=2, context_length=77, embed_dim=32,
            vocab_size=49408)


class QuickGELU(nn.Module):

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):

    def __init__(self, width: int, heads: int, attn_mask: torch.Tensor):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict([('c_fc', nn.Linear(width, width * 4)),
                         ('gelu', QuickGELU()),
                         ('c_proj', nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.attn_mask = attn_mask  # a plain attribute, as in OpenAI's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False,
                          attn_mask=self.attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):

    def __init__(self, width: int, layers: int, heads: int,
                 attn_mask: torch.Tensor):
        super().__init__()
        self.resblocks = nn.Sequential(*[
            ResidualAttentionBlock(width, heads, attn_mask)
            for _ in range(layers)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class TinyOpenAICLIPText(nn.Module):
    """CLIP's text tower with OpenAI's names (and a stub visual tower)."""

    def __init__(self, width: int, layers: int, heads: int,
                 context_length: int, embed_dim: int, vocab_size: int):
        super().__init__()
        mask = torch.full((context_length, context_length),
                          float('-inf')).triu_(1)
        self.transformer = Transformer(width, layers, heads, mask)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(
            torch.randn(context_length, width) * 0.1)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(
            torch.randn(width, embed_dim) * width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))
        # What OpenAI's archives hold besides the text tower.
        self.visual = nn.Module()
        self.visual.proj = nn.Parameter(torch.randn(8, embed_dim))
        self.register_buffer('input_resolution', torch.tensor(224))
        self.register_buffer('context_length', torch.tensor(context_length))
        self.register_buffer('vocab_size', torch.tensor(vocab_size))
        with torch.no_grad():  # visible LayerNorm parameters
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.weight.normal_(1.0, 0.1)
                    module.bias.normal_(0.0, 0.1)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """``CLIP.encode_text`` (not normalised)."""
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]),
                 text.argmax(dim=-1)] @ self.text_projection


@pytest.fixture(scope='session')
def clip2mmseg():
    """mmseg's own ``tools/model_converters/clip2mmseg.py`` as a module.

    None when the mmseg install does not ship it.
    """
    import mmseg
    path = (Path(mmseg.__file__).parent / '.mim' / 'tools' /
            'model_converters' / 'clip2mmseg.py')
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location('clip2mmseg', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def tiny_clip(tmp_path_factory, clip2mmseg) -> dict:
    """The tiny model and its checkpoints.

    Keys: ``model`` (the reference module), ``openai_pt`` (TorchScript
    archive), ``mmseg_pth`` (``clip2mmseg.py`` output, keys
    ``text_encoder.*``), ``mmseg_state_dict_pth`` (an mmseg model
    checkpoint: ``{'state_dict': ..., 'meta': ...}``).
    """
    torch.manual_seed(0)
    model = TinyOpenAICLIPText(**TINY).eval()
    folder = tmp_path_factory.mktemp('tiny_clip')
    example = torch.zeros(2, TINY['context_length'], dtype=torch.long)
    example[:, 0], example[:, 1] = 49406, 49407
    traced = torch.jit.trace(model, example)
    openai_pt = folder / 'tiny-ViT.pt'
    torch.jit.save(traced, str(openai_pt))

    openai_state = {k: v.clone() for k, v in model.state_dict().items()
                    if not k.startswith('visual.')}
    if clip2mmseg is not None:
        converted = clip2mmseg.convert_key_name(openai_state,
                                                visual_split=-1)
    else:  # an mmseg install without its tools: our own renaming
        from mmpading.datasets.embedding_builders import openai_to_mmseg_key
        converted = {
            'text_encoder.' + openai_to_mmseg_key(k): v
            for k, v in openai_state.items() if openai_to_mmseg_key(k)
        }
    mmseg_pth = folder / 'tiny_mmseg.pth'
    torch.save(dict(converted), str(mmseg_pth))
    mmseg_state_dict_pth = folder / 'tiny_mmseg_model.pth'
    torch.save({'state_dict': dict(converted), 'meta': {'epoch': 1}},
               str(mmseg_state_dict_pth))
    return dict(model=model, openai_pt=str(openai_pt),
                mmseg_pth=str(mmseg_pth),
                mmseg_state_dict_pth=str(mmseg_state_dict_pth),
                folder=folder)
