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

Class embedding (PADing's ``get_embeddings``, heshuting555/PADing
``PADing/PADing_model.py:159-201``): each class name is split at ``', '``
into variants; every template of the prompt set (default
``'imagenet_select'``: :data:`IMAGENET_SELECT_PROMPT_TEMPLATES`, PADing's
``IMAGENET_TEMPLATES_SELECT``) is filled with every variant; the prompts are
encoded, each embedding is L2-normalised, the embeddings are averaged and the
mean is L2-normalised (``PADing_model.py:193-195``). Class names are used as
written, as PADing does (``'tree-merged'``, ``'sky-other-merged'``,
``'door-stuff'``: no suffix is stripped).
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
from ..splits import closest_names
from .word2vec_embeddings import file_sha256

# PADing's prompt ensemble: ``IMAGENET_TEMPLATES_SELECT`` (the "v1" set) of
# heshuting555/PADing, PADing/third_party/imagenet_templates.py:88-97, which
# PADing/PADing_model.py:167-171 selects (prompt_ensemble_type =
# "imagenet_select"). Copied as data, character for character: the last
# template has a capital 'A' (the tokenizer lower-cases it) and no full stop.
IMAGENET_SELECT_PROMPT_TEMPLATES: tuple[str, ...] = (
    'itap of a {}.',
    'a bad photo of the {}.',
    'a origami {}.',
    'a photo of the large {}.',
    'a {} in a video game.',
    'art of the {}.',
    'a photo of the small {}.',
    'A photo of a {} in the scene',
)
# PADing's ``'single'`` option (PADing/PADing_model.py:174-175).
SINGLE_PROMPT_TEMPLATES: tuple[str, ...] = ('A photo of a {} in the scene', )
# mmpading's former default, kept as an option: the first 8 of the 14
# ViLD-style ``VILD_PROMPT`` templates of OVSeg / FC-CLIP. Not PADing's set.
VILD8_PROMPT_TEMPLATES: tuple[str, ...] = (
    'a photo of a {}.',
    'This is a photo of a {}',
    'There is a {} in the scene',
    'There is the {} in the scene',
    'a photo of a {} in the scene',
    'a photo of a small {}.',
    'a photo of a medium {}.',
    'a photo of a large {}.',
)
# Named prompt sets (``templates=<name>``; the tool's ``--templates``).
PROMPT_TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    'imagenet_select': IMAGENET_SELECT_PROMPT_TEMPLATES,
    'single': SINGLE_PROMPT_TEMPLATES,
    'vild8': VILD8_PROMPT_TEMPLATES,
}
# What each named set is, for the ``source`` of an embedding file.
PROMPT_TEMPLATE_SET_ORIGINS: dict[str, str] = {
    'imagenet_select': "PADing's IMAGENET_TEMPLATES_SELECT",
    'single': "PADing's 'single' prompt",
    'vild8': "the first 8 ViLD-style templates (mmpading's former default)",
}
DEFAULT_PROMPT_TEMPLATES = 'imagenet_select'
# PADing's default set (the name predates the named sets).
PADING_PROMPT_TEMPLATES = IMAGENET_SELECT_PROMPT_TEMPLATES

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


def build_clip_text_encoder(
        config: CLIPTextConfig = CLIPTextConfig(),
        templates: str | Sequence[str] = DEFAULT_PROMPT_TEMPLATES
) -> torch.nn.Module:
    """An mmseg ``CLIPTextEncoder`` (random weights) of the given size.

    Built through mmseg's registry in mmseg's scope (its layers use
    mmseg's ``QuickGELU``); no background embedding, no feature cache.
    ``templates`` (a set name or the templates) is only stored on the
    encoder; :func:`encode_class_names` does its own prompting.
    """
    _, templates = resolve_prompt_templates(templates)
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


def resolve_prompt_templates(
        templates: str | Sequence[str] = DEFAULT_PROMPT_TEMPLATES
) -> tuple[str, tuple[str, ...]]:
    """The prompt templates named or given by ``templates``.

    Args:
        templates (str | Sequence[str]): A set name of
            :data:`PROMPT_TEMPLATE_SETS` (``'imagenet_select'``, PADing's
            default; ``'single'``; ``'vild8'``, mmpading's former default)
            or the templates themselves, each with one ``{}``.

    Returns:
        tuple[str, tuple[str, ...]]: The set name (``'custom'`` for given
        templates) and the templates.

    Raises:
        ValueError: For an unknown set name (with the closest names), no
            template, or a template without exactly one ``{}``.
    """
    if isinstance(templates, str):
        if templates not in PROMPT_TEMPLATE_SETS:
            matches = closest_names(templates, PROMPT_TEMPLATE_SETS)
            hint = f' Did you mean {matches[0]!r}?' if matches else ''
            given = (' (a single template must be given as a list)'
                     if '{}' in templates else '')
            raise ValueError(
                f'Unknown prompt template set {templates!r}{given}.{hint} '
                f'Known sets: {", ".join(PROMPT_TEMPLATE_SETS)}.')
        return templates, PROMPT_TEMPLATE_SETS[templates]
    templates = tuple(templates)
    _check_templates(templates)
    for name, known in PROMPT_TEMPLATE_SETS.items():
        if templates == known:
            return name, known
    return 'custom', templates


def prompt_variants(class_name: str) -> list[str]:
    """The names a class is prompted with: ``'a, b'`` -> ``['a', 'b']``.

    PADing splits at ``', '`` (``PADing_model.py:183-184``); surrounding
    spaces do not change the prompts' tokens (CLIP's tokenizer collapses
    white space), and empty parts are dropped here where PADing would
    prompt an empty name.
    """
    variants = [part.strip() for part in class_name.split(', ')]
    variants = [part for part in variants if part]
    return variants or [class_name]


def class_prompts(
        class_name: str,
        templates: str | Sequence[str] = DEFAULT_PROMPT_TEMPLATES
) -> list[str]:
    """Every template filled with every variant of ``class_name``.

    Template-major, as PADing (``PADing_model.py:186-188``): for each
    template, each variant; a name without ``', '`` gives one prompt per
    template, in the templates' order. The name is used as written.
    """
    _, templates = resolve_prompt_templates(templates)
    variants = prompt_variants(class_name)
    return [
        template.format(variant) for template in templates
        for variant in variants
    ]


def _check_templates(templates: Sequence[str]) -> None:
    if not templates:
        raise ValueError('At least one prompt template is needed.')
    bad = [t for t in templates if t.count('{}') != 1]
    if bad:
        raise ValueError(f'Prompt templates need exactly one "{{}}" for the '
                         f'class name: {bad}')


def ensemble_prompt_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    """One class embedding from its prompts' embeddings, as PADing.

    L2-normalise each prompt's embedding, average, L2-normalise the mean
    (``PADing_model.py:193-195``).

    Args:
        embeddings (torch.Tensor): (P, C) text embeddings of the P prompts
            of one class (normalised or not).

    Returns:
        torch.Tensor: (C, ) float32, unit L2 norm.
    """
    embeddings = F.normalize(embeddings.float(), dim=-1)
    return F.normalize(embeddings.mean(dim=0), dim=0)


def tokenize_prompts(prompts: Sequence[str],
                     context_length: int = 77) -> torch.Tensor:
    """CLIP tokens of the prompts, (P, context_length) int64.

    mmseg's tokenizer would cut a prompt longer than the context silently;
    PADing's ``clip.tokenize`` refuses it (``PADing/third_party/clip.py:
    202-204``), and so does this function.

    Raises:
        ValueError: When a prompt needs more than ``context_length`` tokens
            (start and end of text included); the prompt is named.
    """
    from mmseg.utils import tokenizer
    for prompt in prompts:
        length = len(tokenizer._tokenizer.encode(prompt)) + 2
        if length > context_length:
            raise ValueError(
                f'The prompt {prompt!r} needs {length} tokens, more than the '
                f'context length {context_length} of the text encoder; '
                'shorten the class name.')
    return tokenizer.tokenize(list(prompts), context_length=context_length)


@torch.no_grad()
def encode_class_names(
        encoder: torch.nn.Module,
        class_names: Sequence[str],
        templates: str | Sequence[str] = DEFAULT_PROMPT_TEMPLATES,
        progress: bool = False) -> np.ndarray:
    """Prompt-ensembled, L2-normalised text embeddings of class names.

    Per class, as PADing's ``get_embeddings`` (``PADing_model.py:179-198``):
    the prompts of :func:`class_prompts` are encoded, and
    :func:`ensemble_prompt_embeddings` normalises each, averages them and
    normalises the mean. Computed in float32 (PADing: CLIP's fp16 on a GPU).

    Args:
        encoder (torch.nn.Module): mmseg ``CLIPTextEncoder`` with weights
            (anything with its ``encode_text(tokens, normalize)``,
            ``token_embedding`` and ``positional_embedding``).
        class_names (Sequence[str]): One embedding per name, used as
            written; ``', '`` separates variants of a name, whose prompts
            are averaged together.
        templates (str | Sequence[str]): A prompt set name
            (``'imagenet_select'``, PADing's, by default; ``'single'``;
            ``'vild8'``) or templates with one ``{}`` each.
        progress (bool): Show a progress bar over the classes.

    Returns:
        np.ndarray: float32 array (K, output_dims), rows of unit L2 norm.
    """
    _, templates = resolve_prompt_templates(templates)
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
        tokens = tokenize_prompts(class_prompts(name, templates),
                                  context_length=context_length)
        with warnings.catch_warnings():
            # mmcv's BaseTransformerLayer notes that one causal mask serves
            # every layer: intended here.
            warnings.filterwarnings('ignore', message='Use same attn_mask')
            embeddings = encoder.encode_text(
                tokens.to(device), normalize=False)
        rows.append(ensemble_prompt_embeddings(embeddings).cpu())
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
        templates: str | Sequence[str] = DEFAULT_PROMPT_TEMPLATES,
        progress: bool = False) -> str:
    """Encode class names with a CLIP checkpoint and write the embedding file.

    Args:
        checkpoint (str): OpenAI TorchScript ``.pt`` or mmseg-format weights.
        class_names (Sequence[str]): The classes, one row each.
        out (str): Output ``.json`` (its folder must exist).
        classes_from (str): Where the class list comes from, for ``source``.
        num_heads (int, optional): Attention heads; default ``width // 64``.
        device (str | torch.device): Where the encoder runs.
        templates (str | Sequence[str]): Prompt set name or templates
            (:func:`resolve_prompt_templates`); default PADing's
            ``'imagenet_select'``.
        progress (bool): Show a progress bar over the classes.

    Returns:
        str: The ``source`` written to the file (names the prompt set).
    """
    set_name, templates = resolve_prompt_templates(templates)
    loaded = load_clip_text_encoder(checkpoint, num_heads=num_heads,
                                    device=device)
    embeddings = encode_class_names(loaded.encoder, class_names,
                                    templates=templates, progress=progress)
    if set_name in PROMPT_TEMPLATE_SET_ORIGINS:
        prompts = (f"the {len(templates)} prompt template(s) '{set_name}' "
                   f'({PROMPT_TEMPLATE_SET_ORIGINS[set_name]})')
    else:
        prompts = f'{len(templates)} custom prompt template(s)'
    source = (f'CLIP text encoder: {osp.basename(checkpoint)} '
              f'({loaded.checkpoint_format}, sha256 '
              f'{file_sha256(checkpoint)[:16]}; {loaded.config.describe()}); '
              f'{prompts}, embeddings L2-normalised, averaged over templates '
              "and ', ' name variants, renormalised; classes: "
              f'{classes_from}')
    save_class_embeddings(out, class_names, embeddings, source)
    return source
