"""CLIP text embeddings of class names, as PADing computes them.

The text encoder is mmseg's ``CLIPTextEncoder`` (built through mmseg's
registry), the tokenizer mmseg's CLIP BPE tokenizer (``mmseg.utils.
tokenizer``, its vocabulary ships inside the mmseg package). Nothing is
downloaded: the weights come from a user-provided checkpoint, either

- OpenAI's TorchScript release (e.g. ``ViT-B-16.pt``), read with
  ``torch.jit.load``; its keys (``transformer.resblocks.N.attn.*``,
  ``ln_1``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``) are renamed to mmseg's
  (``transformer.N.attentions.0.attn.*``, ``norms.0``, ``norms.1``,
  ``ffns.0.layers.0.0``, ``ffns.0.layers.1``), the renaming of mmseg's
  ``tools/model_converters/clip2mmseg.py``; a plain ``torch.save`` of the
  same state dict is accepted too;
- or mmseg's format: the output of ``clip2mmseg.py``, an mmseg model
  checkpoint (``state_dict`` key, text encoder under ``text_encoder.``) or a
  bare ``CLIPTextEncoder`` state dict.

The architecture is read off the weights: width from ``token_embedding``,
depth from the number of residual blocks, context length from
``positional_embedding``, output dimension from ``text_projection``; the
number of heads is ``width // 64`` (CLIP's rule) unless given.

Class embedding (PADing's ``get_embeddings``): each class name is split at
``', '`` into variants; every template of :data:`PADING_PROMPT_TEMPLATES`
is filled with every variant; the prompts are encoded, each embedding is
L2-normalised, the embeddings are averaged and the mean is L2-normalised.
"""
from __future__ import annotations

import os.path as osp
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..class_embeddings import save_class_embeddings
from .word2vec_embeddings import file_sha256

# The 8 templates used by PADing (ZegFormer's / ViLD's prompt set). Every
# class embedding averages all of them.
PADING_PROMPT_TEMPLATES: tuple[str, ...] = (
    'a photo of a {}.',
    'This is a photo of a {}',
    'There is a {} in the scene',
    'There is the {} in the scene',
    'a photo of a {} in the scene',
    'a photo of a small {}.',
    'a photo of a medium {}.',
    'a photo of a large {}.',
)

# Keys of one residual block: OpenAI name (after transformer.resblocks.N.)
# -> mmseg name (after transformer.N.), as in mmseg's clip2mmseg.py.
BLOCK_KEYS_OPENAI_TO_MMSEG: dict[str, str] = {
    'attn.in_proj_weight': 'attentions.0.attn.in_proj_weight',
    'attn.in_proj_bias': 'attentions.0.attn.in_proj_bias',
    'attn.out_proj.weight': 'attentions.0.attn.out_proj.weight',
    'attn.out_proj.bias': 'attentions.0.attn.out_proj.bias',
    'ln_1.weight': 'norms.0.weight',
    'ln_1.bias': 'norms.0.bias',
    'mlp.c_fc.weight': 'ffns.0.layers.0.0.weight',
    'mlp.c_fc.bias': 'ffns.0.layers.0.0.bias',
    'mlp.c_proj.weight': 'ffns.0.layers.1.weight',
    'mlp.c_proj.bias': 'ffns.0.layers.1.bias',
    'ln_2.weight': 'norms.1.weight',
    'ln_2.bias': 'norms.1.bias',
}
BLOCK_KEYS_MMSEG_TO_OPENAI = {
    value: key
    for key, value in BLOCK_KEYS_OPENAI_TO_MMSEG.items()
}
# Same name in both formats.
TOP_LEVEL_KEYS = ('token_embedding.weight', 'positional_embedding',
                  'text_projection', 'ln_final.weight', 'ln_final.bias')
# Present in checkpoints, not needed for text embeddings.
OPTIONAL_KEYS = ('logit_scale', )
IGNORED_KEYS = ('input_resolution', 'context_length', 'vocab_size',
                'attn_mask', 'bg_embed')
IGNORED_PREFIXES = ('visual.', )
# Causal masks saved as buffers (rebuilt by the encoder).
IGNORED_SUFFIXES = ('.attn_mask', )
MMSEG_PREFIX = 'text_encoder.'

FORMAT_OPENAI_TORCHSCRIPT = 'OpenAI TorchScript'
FORMAT_OPENAI_STATE_DICT = 'OpenAI state dict'
FORMAT_MMSEG = 'mmseg'

_OPENAI_BLOCK = re.compile(r'transformer\.resblocks\.(\d+)\.(.+)')
_MMSEG_BLOCK = re.compile(r'transformer\.(\d+)\.(.+)')


def openai_to_mmseg_key(key: str) -> str | None:
    """mmseg's name of an OpenAI CLIP text-encoder key, None if not one."""
    match = _OPENAI_BLOCK.fullmatch(key)
    if match:
        suffix = BLOCK_KEYS_OPENAI_TO_MMSEG.get(match.group(2))
        return None if suffix is None else \
            f'transformer.{match.group(1)}.{suffix}'
    if key in TOP_LEVEL_KEYS or key in OPTIONAL_KEYS:
        return key
    return None


def mmseg_to_openai_key(key: str) -> str:
    """OpenAI's name of an mmseg ``CLIPTextEncoder`` key (for messages)."""
    match = _MMSEG_BLOCK.fullmatch(key)
    if match and match.group(2) in BLOCK_KEYS_MMSEG_TO_OPENAI:
        return (f'transformer.resblocks.{match.group(1)}.'
                f'{BLOCK_KEYS_MMSEG_TO_OPENAI[match.group(2)]}')
    return key


def expected_text_encoder_keys(num_layers: int) -> list[str]:
    """mmseg names of the weights the text embeddings need."""
    keys = list(TOP_LEVEL_KEYS)
    for index in range(num_layers):
        keys.extend(f'transformer.{index}.{suffix}'
                    for suffix in BLOCK_KEYS_OPENAI_TO_MMSEG.values())
    return keys


@dataclass
class CLIPTextWeights:
    """The text-encoder weights of a checkpoint, under mmseg's names.

    Attributes:
        path (str): The checkpoint file.
        checkpoint_format (str): ``'OpenAI TorchScript'``, ``'OpenAI state
            dict'`` or ``'mmseg'``.
        state_dict (dict[str, torch.Tensor]): float32 tensors, mmseg names
            without the ``text_encoder.`` prefix.
        naming (str): ``'openai'`` or ``'mmseg'``: the checkpoint's names.
        unexpected (list[str]): Keys of the checkpoint's text encoder that
            no weight of mmseg's encoder corresponds to (checkpoint names).
        prefix (str): ``'text_encoder.'`` when the checkpoint's keys had it.
    """

    path: str
    checkpoint_format: str
    state_dict: dict[str, torch.Tensor]
    naming: str = 'mmseg'
    unexpected: list[str] = field(default_factory=list)
    prefix: str = ''

    def checkpoint_key(self, key: str) -> str:
        """The checkpoint's own name of an mmseg key (for messages)."""
        if self.naming == 'openai':
            return mmseg_to_openai_key(key)
        return self.prefix + key


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(
        name == 'constants.pkl' or name.endswith('/constants.pkl')
        for name in names)


def _ignored(key: str) -> bool:
    return (key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)
            or key.endswith(IGNORED_SUFFIXES))


def _as_float(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    return tensor.float() if tensor.is_floating_point() else tensor


def _describe_keys(keys: Sequence[str], limit: int = 8) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    more = f', ... ({len(keys)} keys)' if len(keys) > limit else ''
    return shown + more if keys else '(none)'


def _read_raw_state_dict(path: str) -> tuple[dict, str]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'CLIP checkpoint {path!r} does not exist.')
    if is_torchscript_archive(path):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', category=FutureWarning,
                                        message='.*torch.jit.load')
                module = torch.jit.load(path, map_location='cpu')
        except Exception as error:  # noqa: BLE001 - any failure: one message
            first = str(error).strip().splitlines()[0] if str(error) else ''
            raise ValueError(f'Cannot read the TorchScript archive {path!r}: '
                             f'{type(error).__name__}: {first}') from None
        return dict(module.state_dict()), FORMAT_OPENAI_TORCHSCRIPT
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as file:
            head = file.read(2)
        if head == b'PK':
            raise ValueError(
                f'Cannot read the checkpoint {path!r}: a damaged or '
                'truncated zip archive (download or copy it again).')
        if head[:1] != b'\x80':  # neither zip nor a (legacy) pickle
            raise ValueError(
                f'Cannot read the checkpoint {path!r}: it is neither a '
                'TorchScript archive (OpenAI .pt) nor a torch.save file.')
    from mmpading.utils.compat import TRUST_ENV, load_from_local
    try:
        content = load_from_local(path, map_location='cpu')
    except Exception as error:  # noqa: BLE001 - any failure: one message
        if isinstance(error, RuntimeError) and TRUST_ENV in str(error):
            raise  # the readable weights-only refusal of mmpading
        first = str(error).strip().splitlines()[0] if str(error) else ''
        raise ValueError(f'Cannot read the checkpoint {path!r} (a TorchScript '
                         'archive or a torch.save file is expected): '
                         f'{type(error).__name__}: {first}') from None
    if isinstance(content, Mapping) and isinstance(
            content.get('state_dict'), Mapping):
        content = content['state_dict']
    if not isinstance(content, Mapping) or not all(
            isinstance(key, str) for key in content):
        raise ValueError(f'{path!r} holds a {type(content).__name__}, not a '
                         'state dict (a mapping of names to tensors).')
    return dict(content), ''


def read_clip_text_weights(path: str) -> CLIPTextWeights:
    """Read the text-encoder weights of a CLIP checkpoint (see module doc).

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        ValueError: When the file cannot be read or holds no CLIP text
            encoder (the keys found are named).
    """
    raw, checkpoint_format = _read_raw_state_dict(path)
    tensors = {
        key: value
        for key, value in raw.items() if isinstance(value, torch.Tensor)
    }
    prefix = ''
    if any(key.startswith(MMSEG_PREFIX) for key in tensors):
        prefix = MMSEG_PREFIX
        tensors = {
            key[len(prefix):]: value
            for key, value in tensors.items() if key.startswith(prefix)
        }
    openai_names = any(_OPENAI_BLOCK.fullmatch(key) for key in tensors)
    mmseg_names = any(_MMSEG_BLOCK.fullmatch(key) for key in tensors)
    if not (openai_names or mmseg_names or 'token_embedding.weight'
            in tensors):
        raise ValueError(
            f'{path!r} holds no CLIP text encoder: expected OpenAI CLIP keys '
            '(token_embedding.weight, transformer.resblocks.0.attn.'
            'in_proj_weight, ...) or mmseg keys (text_encoder.'
            'token_embedding.weight, text_encoder.transformer.0.attentions.'
            f'0.attn.in_proj_weight, ...); found: '
            f'{_describe_keys(sorted(raw))}.')

    state_dict: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    if openai_names and not prefix:
        checkpoint_format = checkpoint_format or FORMAT_OPENAI_STATE_DICT
        naming = 'openai'
        for key, value in tensors.items():
            if _ignored(key):
                continue
            target = openai_to_mmseg_key(key)
            if target is None:
                unexpected.append(key)
            else:
                state_dict[target] = _as_float(value)
    else:
        checkpoint_format = FORMAT_MMSEG if not checkpoint_format else \
            f'{FORMAT_MMSEG} names in a {checkpoint_format} archive'
        naming = 'mmseg'
        known_blocks = set(BLOCK_KEYS_MMSEG_TO_OPENAI)
        for key, value in tensors.items():
            if _ignored(key):
                continue
            match = _MMSEG_BLOCK.fullmatch(key)
            if key in TOP_LEVEL_KEYS or key in OPTIONAL_KEYS or (
                    match and match.group(2) in known_blocks):
                state_dict[key] = _as_float(value)
            else:
                unexpected.append(prefix + key)
    return CLIPTextWeights(path=path, checkpoint_format=checkpoint_format,
                           state_dict=state_dict, naming=naming,
                           unexpected=unexpected, prefix=prefix)


@dataclass(frozen=True)
class CLIPTextConfig:
    """Size of a CLIP text encoder (arguments of mmseg's CLIPTextEncoder)."""

    embed_dims: int = 512
    num_layers: int = 12
    num_heads: int = 8
    mlp_ratio: int = 4
    context_length: int = 77
    output_dims: int = 512
    total_vocab_size: int = 49408

    def describe(self) -> str:
        return (f'width {self.embed_dims}, {self.num_layers} layers, '
                f'{self.num_heads} heads, context {self.context_length}, '
                f'{self.output_dims}-d output')


def _missing_message(weights: CLIPTextWeights, missing: Sequence[str]) -> str:
    found = sorted(weights.checkpoint_key(key) for key in weights.state_dict)
    lines = [
        f'CLIP checkpoint {weights.path!r} ({weights.checkpoint_format}) '
        f'lacks {len(missing)} weight(s) of the text encoder:'
    ]
    lines.extend(f'  {weights.checkpoint_key(key)}' for key in missing[:20])
    if len(missing) > 20:
        lines.append(f'  ... and {len(missing) - 20} more')
    lines.append(f'Found {len(found)} text-encoder weights: '
                 f'{_describe_keys(found)}. Is the file complete, and a '
                 'CLIP model?')
    return '\n'.join(lines)


def infer_clip_text_config(weights: CLIPTextWeights,
                           num_heads: int | None = None) -> CLIPTextConfig:
    """Read the encoder size off the weights.

    Args:
        weights (CLIPTextWeights): From :func:`read_clip_text_weights`.
        num_heads (int, optional): Attention heads; default ``width // 64``
            (8 for ViT-B/16's 512-wide text encoder).

    Raises:
        ValueError: When weights are missing (each one named, in the
            checkpoint's naming), or the sizes are inconsistent.
    """
    state_dict = weights.state_dict
    indices = {
        int(match.group(1))
        for match in map(_MMSEG_BLOCK.fullmatch, state_dict) if match
    }
    num_layers = max(indices) + 1 if indices else 1
    missing = [
        key for key in expected_text_encoder_keys(num_layers)
        if key not in state_dict
    ]
    if missing:
        raise ValueError(_missing_message(weights, missing))
    token_embedding = state_dict['token_embedding.weight']
    positional = state_dict['positional_embedding']
    projection = state_dict['text_projection']
    fc_weight = state_dict['transformer.0.ffns.0.layers.0.0.weight']
    shapes = {
        'token_embedding.weight': (token_embedding.ndim, 2),
        'positional_embedding': (positional.ndim, 2),
        'text_projection': (projection.ndim, 2),
        'transformer.0.ffns.0.layers.0.0.weight': (fc_weight.ndim, 2),
    }
    bad = [key for key, (found, wanted) in shapes.items() if found != wanted]
    if bad:
        raise ValueError(
            f'CLIP checkpoint {weights.path!r}: '
            + ', '.join(f'{weights.checkpoint_key(key)} has shape '
                        f'{tuple(state_dict[key].shape)}' for key in bad)
            + '; expected 2-d matrices.')
    width = int(token_embedding.shape[1])
    if num_heads is None:
        num_heads = max(1, width // 64)
    if num_heads < 1 or width % num_heads:
        raise ValueError(f'The text encoder of {weights.path!r} is {width} '
                         f'wide, which {num_heads} attention heads do not '
                         'divide; give a number of heads that does.')
    hidden = int(fc_weight.shape[0])
    if hidden % width:
        raise ValueError(
            f'CLIP checkpoint {weights.path!r}: the MLP hidden size {hidden} '
            f'({weights.checkpoint_key("transformer.0.ffns.0.layers.0.0.weight")}'
            f') is not a multiple of the width {width} '
            f'(token_embedding.weight {tuple(token_embedding.shape)}).')
    return CLIPTextConfig(
        embed_dims=width,
        num_layers=num_layers,
        num_heads=num_heads,
        mlp_ratio=hidden // width,
        context_length=int(positional.shape[0]),
        output_dims=int(projection.shape[1]),
        total_vocab_size=int(token_embedding.shape[0]))


def build_clip_text_encoder(config: CLIPTextConfig = CLIPTextConfig(),
                            templates: Sequence[str] = PADING_PROMPT_TEMPLATES
                            ) -> torch.nn.Module:
    """An mmseg ``CLIPTextEncoder`` (random weights) of the given size.

    Built through mmseg's registry in mmseg's scope (its layers use
    mmseg's ``QuickGELU``); no background embedding, no feature cache.
    """
    import mmseg.models  # noqa: F401 - registers CLIPTextEncoder
    from mmseg.registry import MODELS
    encoder = MODELS.build(
        dict(type='CLIPTextEncoder',
             _scope_='mmseg',
             vocabulary=[],
             templates=list(templates),
             total_vocab_size=config.total_vocab_size,
             context_length=config.context_length,
             embed_dims=config.embed_dims,
             num_layers=config.num_layers,
             num_heads=config.num_heads,
             mlp_ratio=config.mlp_ratio,
             output_dims=config.output_dims,
             cache_feature=False,
             cat_bg=False))
    return encoder.eval()


def _tokenizer_vocab_size() -> int:
    from mmseg.utils import tokenizer
    return len(tokenizer._tokenizer.encoder)


@dataclass
class LoadedCLIPTextEncoder:
    """An mmseg CLIPTextEncoder with the weights of a checkpoint."""

    encoder: torch.nn.Module
    config: CLIPTextConfig
    weights_path: str
    checkpoint_format: str


def load_clip_text_encoder(path: str,
                           num_heads: int | None = None,
                           device: str | torch.device = 'cpu'
                           ) -> LoadedCLIPTextEncoder:
    """Build mmseg's CLIPTextEncoder and load a checkpoint's weights into it.

    Args:
        path (str): OpenAI TorchScript ``.pt`` or mmseg-format checkpoint.
        num_heads (int, optional): Attention heads; default ``width // 64``.
        device (str | torch.device): Where the encoder runs.

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        ValueError: When weights are missing, unexpected or of the wrong
            shape; the message names every one, with the expected and found
            shapes, in the checkpoint's own key names.
    """
    weights = read_clip_text_weights(path)
    if weights.unexpected:
        raise ValueError(
            f'CLIP checkpoint {path!r} ({weights.checkpoint_format}) has '
            f'{len(weights.unexpected)} text-encoder key(s) that mmseg\'s '
            f'CLIPTextEncoder has no weight for: '
            f'{_describe_keys(weights.unexpected, 20)}. Is it a CLIP '
            '(OpenAI architecture) text encoder?')
    config = infer_clip_text_config(weights, num_heads=num_heads)
    vocab_size = _tokenizer_vocab_size()
    if config.total_vocab_size < vocab_size:
        raise ValueError(
            f'CLIP checkpoint {path!r}: token_embedding.weight has '
            f'{config.total_vocab_size} rows, but the CLIP tokenizer has '
            f'{vocab_size} tokens; expected ({vocab_size}, width).')
    encoder = build_clip_text_encoder(config)
    expected = encoder.state_dict()
    mismatched = [
        f'  {weights.checkpoint_key(key)}: expected '
        f'{tuple(expected[key].shape)}, found {tuple(value.shape)}'
        for key, value in weights.state_dict.items()
        if key in expected and tuple(value.shape) != tuple(expected[key].shape)
    ]
    if mismatched:
        raise ValueError(
            f'CLIP checkpoint {path!r} ({weights.checkpoint_format}) does not '
            f'fit a text encoder of {config.describe()} (read off '
            'token_embedding.weight, positional_embedding, text_projection '
            f'and the block count; {config.num_heads} heads):\n'
            + '\n'.join(mismatched))
    result = encoder.load_state_dict(weights.state_dict, strict=False)
    missing = [key for key in result.missing_keys if key not in OPTIONAL_KEYS]
    if missing or result.unexpected_keys:  # pragma: no cover - checked above
        raise ValueError(f'Loading {path!r}: missing {missing}, unexpected '
                         f'{result.unexpected_keys}.')
    encoder.to(device)
    return LoadedCLIPTextEncoder(encoder=encoder, config=config,
                                 weights_path=path,
                                 checkpoint_format=weights.checkpoint_format)


def prompt_variants(class_name: str) -> list[str]:
    """The names a class is prompted with: ``'a, b'`` -> ``['a', 'b']``."""
    variants = [part.strip() for part in class_name.split(', ')]
    variants = [part for part in variants if part]
    return variants or [class_name]


def class_prompts(class_name: str,
                  templates: Sequence[str] = PADING_PROMPT_TEMPLATES
                  ) -> list[str]:
    """Every template filled with every variant of ``class_name``."""
    return [
        template.format(variant) for variant in prompt_variants(class_name)
        for template in templates
    ]


def _check_templates(templates: Sequence[str]) -> None:
    if not templates:
        raise ValueError('At least one prompt template is needed.')
    bad = [t for t in templates if t.count('{}') != 1]
    if bad:
        raise ValueError(f'Prompt templates need exactly one "{{}}" for the '
                         f'class name: {bad}')


@torch.no_grad()
def encode_class_names(encoder: torch.nn.Module,
                       class_names: Sequence[str],
                       templates: Sequence[str] = PADING_PROMPT_TEMPLATES,
                       progress: bool = False) -> np.ndarray:
    """Prompt-ensembled, L2-normalised text embeddings of class names.

    Args:
        encoder (torch.nn.Module): mmseg ``CLIPTextEncoder`` with weights.
        class_names (Sequence[str]): One embedding per name; ``', '``
            separates variants of a name, which are averaged.
        templates (Sequence[str]): Prompt templates with one ``{}``.
        progress (bool): Show a progress bar over the classes.

    Returns:
        np.ndarray: float32 array (K, output_dims), rows of unit L2 norm.
    """
    from mmseg.utils import tokenizer
    _check_templates(templates)
    if not class_names:
        raise ValueError('No class names to encode.')
    device = encoder.token_embedding.weight.device
    context_length = encoder.positional_embedding.shape[0]
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(class_names))
    rows = []
    for name in class_names:
        tokens = tokenizer.tokenize(
            class_prompts(name, templates), context_length=context_length)
        with warnings.catch_warnings():
            # mmcv's BaseTransformerLayer notes that one causal mask serves
            # every layer: intended here.
            warnings.filterwarnings('ignore', message='Use same attn_mask')
            embeddings = encoder.encode_text(
                tokens.to(device), normalize=True)
        rows.append(F.normalize(embeddings.float().mean(dim=0), dim=0).cpu())
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.file.write('\n')
    return torch.stack(rows).numpy().astype(np.float32)


def build_clip_class_embeddings(
        checkpoint: str,
        class_names: Sequence[str],
        out: str,
        classes_from: str = 'the given class list',
        num_heads: int | None = None,
        device: str | torch.device = 'cpu',
        templates: Sequence[str] = PADING_PROMPT_TEMPLATES,
        progress: bool = False) -> str:
    """Encode class names with a CLIP checkpoint and write the embedding file.

    Args:
        checkpoint (str): OpenAI TorchScript ``.pt`` or mmseg-format weights.
        class_names (Sequence[str]): The classes, one row each.
        out (str): Output ``.json`` (its folder must exist).
        classes_from (str): Where the class list comes from, for ``source``.
        num_heads (int, optional): Attention heads; default ``width // 64``.
        device (str | torch.device): Where the encoder runs.
        templates (Sequence[str]): Prompt templates; PADing's by default.
        progress (bool): Show a progress bar over the classes.

    Returns:
        str: The ``source`` written to the file.
    """
    loaded = load_clip_text_encoder(checkpoint, num_heads=num_heads,
                                    device=device)
    embeddings = encode_class_names(loaded.encoder, class_names,
                                    templates=templates, progress=progress)
    prompts = (f'the {len(templates)} prompt templates of PADing'
               if tuple(templates) == PADING_PROMPT_TEMPLATES else
               f'{len(templates)} custom prompt templates')
    source = (f'CLIP text encoder: {osp.basename(checkpoint)} '
              f'({loaded.checkpoint_format}, sha256 '
              f'{file_sha256(checkpoint)[:16]}; {loaded.config.describe()}); '
              f'{prompts}, embeddings L2-normalised, averaged over templates '
              "and ', ' name variants, renormalised; classes: "
              f'{classes_from}')
    save_class_embeddings(out, class_names, embeddings, source)
    return source
