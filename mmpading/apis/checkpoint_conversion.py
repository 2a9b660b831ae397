"""Convert checkpoints of the PADing reference (detectron2) to mmpading.

The reference (heshuting555/PADing, on detectron2 v0.6) releases, per task,
a stage-1 "pretrained" Mask2Former R-50 and a final PADing model. Their
state dicts (``{'model': state_dict, ...}``, ``.pth`` or ``.pkl``) name the
parts after detectron2 and the reference's own modules; this module maps
every key to the mmdet / mmseg Mask2Former of mmpading's configs and, for
final models, to the stage-2 learner:

======================================  =======================================
reference                               mmpading
======================================  =======================================
``backbone.stem.conv1`` (+ ``.norm``)   ``backbone.conv1`` / ``backbone.bn1``
``backbone.res{2..5}.B.convJ``          ``backbone.layer{1..4}.B.convJ`` /
(+ ``.norm``), ``.shortcut``            ``.bnJ``, ``.downsample.{0,1}``
``sem_seg_head.pixel_decoder.*``        ``<head>.pixel_decoder.*``
``sem_seg_head.predictor.*``            ``<head>.*`` (``transformer_decoder``,
                                        ``query_feat`` / ``query_embed``,
                                        ``level_embed``, ``cls_embed``,
                                        ``mask_embed``)
``new_fc``                              ``zero_shot.classifier``
``fc_projection``, ``dict_feature``,    ``zero_shot.generator``
``generator.*``                         (:class:`PrimitiveGenerator`)
``projection_(un)related``,             ``zero_shot.disentangle_head``
``decoder``, ``relation``               (:class:`DisentangleHead`)
======================================  =======================================

``<head>`` is ``panoptic_head`` (mmdet: ZSP, ZSI) or ``decode_head``
(mmseg: ZSS). Rows of the class-indexed layers (``class_embed``,
``new_fc``) are reordered by class name: the reference orders ZSI's
classes seen first, then unseen (``PADing/data/datasets/
register_coco_zsi_48_17.py``) and ZSS's likewise (``register_coco_stuff.py``,
``COCO_CATEGORIES_Seen + COCO_CATEGORIES_Unseen2``), mmpading in the order
of mmdet's ``CocoDataset`` / mmseg's ``COCOStuffDataset``; ZSP's order is
detectron2's ``COCO_CATEGORIES``, the same as mmdet's
``CocoPanopticDataset``.

The conversion is strict: every source key is mapped or on
:data:`IGNORED_KEYS` (reported), every key of the result is one of the
mmpading model (:func:`check_state_dict_fits`), and a state dict of another
layout is refused, naming its first unmapped keys. ``docs/
model_conversion.md`` lists what else matters for equal outputs.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmpading.datasets.splits import get_split
from mmpading.utils.compat import TRUST_ENV, load_from_local

#: The layouts of the reference's released models.
LAYOUTS = ('zsp', 'zsi_48_17', 'zsi_65_15', 'zss')
#: ``pretrain``: stage 1 (Mask2Former trained on the seen classes);
#: ``pading``: the final model (stage 2 learned).
STAGES = ('pretrain', 'pading')
#: detectron2's ``FrozenBatchNorm2d(num_features, eps=1e-5)``
#: (``detectron2/layers/batch_norm.py:35``, v0.6), which its R-50 uses
#: (``MODEL.RESNETS.NORM`` default ``FrozenBN``).
REFERENCE_BN_EPS = 1e-5
#: Input normalisation of the reference (``MODEL.PIXEL_MEAN`` / ``STD`` of
#: its ``configs/*/Base-*.yaml``), RGB (``INPUT.FORMAT: RGB``).
REFERENCE_PIXEL_MEAN = (123.675, 116.280, 103.530)
REFERENCE_PIXEL_STD = (58.395, 57.120, 57.375)

#: Source keys without a counterpart, and why.
IGNORED_KEYS = {
    'criterion.empty_weight':
    'the loss weights of the classes (no-object: NO_OBJECT_WEIGHT), a '
    "config value in mmpading (the head's loss_cls.class_weight)",
}
#: Keys of stage-1 checkpoints the reference's
#: ``tools/preprocess_pretrained_weight.py`` adds, ignored for stage 1.
STAGE1_NEW_FC_REASON = (
    'a copy of class_embed written by the reference\'s '
    'tools/preprocess_pretrained_weight.py for its stage 2; mmpading\'s '
    "stage 2 initialises its classifier from cls_embed itself")
#: The generator's self-attention runs on a sequence of one token: its
#: softmax over one key is 1, so its query and key projections have no
#: effect on any output; mmpading keeps the value and output projections.
UNUSED_QK_REASON = (
    'query / key rows (0:2C) of the one-token self-attention of the '
    'generator: the softmax over one key is 1, they change no output '
    '(PrimitiveAssemblyLayer keeps the value rows as self_attn_value)')

_LEARNER_MARKERS = ('fc_projection.weight', 'dict_feature.weight',
                    'generator.norm.weight')
_CLASS_EMBED = 'sem_seg_head.predictor.class_embed.weight'
_CONFIG_DIR = next(
    (path for path in (
        osp.join(osp.dirname(osp.dirname(osp.dirname(
            osp.abspath(__file__)))), 'configs', 'pading'),
        osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim',
                 'configs', 'pading')) if osp.isdir(path)), '')


class ConversionError(ValueError):
    """A reference checkpoint that cannot be converted: named, with why."""


# --------------------------------------------------------------- layouts
def _coco_panoptic_classes() -> tuple[str, ...]:
    from mmdet.datasets import CocoPanopticDataset
    return tuple(CocoPanopticDataset.METAINFO['classes'])


def _coco_instance_classes() -> tuple[str, ...]:
    from mmdet.datasets import CocoDataset
    return tuple(CocoDataset.METAINFO['classes'])


def _coco_stuff_classes() -> tuple[str, ...]:
    from mmseg.datasets import COCOStuffDataset
    return tuple(COCOStuffDataset.METAINFO['classes'])


@dataclass(frozen=True)
class ReferenceLayout:
    """One released model family of the reference and its mmpading twin.

    Attributes:
        name (str): One of :data:`LAYOUTS`.
        scope (str): Default scope of the mmpading configs.
        head (str): Attribute of the Mask2Former head in the mmpading model.
        split (str): The zero-shot split.
        stage1_config (str): mmpading's stage-1 config (``configs/pading``).
        stage2_config (str): mmpading's stage-2 config.
        semantic_dim (int): Class-embedding dimension of the generator
            (CLIP ViT-B/16 text: 512; word2vec: 300).
    """
    name: str
    scope: str
    head: str
    split: str
    stage1_config: str
    stage2_config: str
    semantic_dim: int

    def target_classes(self) -> tuple[str, ...]:
        """The classes of mmpading's configs, in label order."""
        if self.name == 'zsp':
            return _coco_panoptic_classes()
        if self.name == 'zss':
            return _coco_stuff_classes()
        return get_split(self.split).ordered_like(_coco_instance_classes())

    def reference_classes(self) -> tuple[str, ...]:
        """The classes of the reference's heads, in row order.

        ZSP: detectron2's ``COCO_CATEGORIES`` (mmdet's panoptic order). ZSI
        and ZSS: seen classes then unseen, which are the split's lists
        (``mmpading.datasets.splits``: ZSI in the word2vec files' column
        order, the reference's ``COCO_ZSI_TEST_CATEGORIES``; ZSS seen in
        COCO-Stuff order, then its ``COCO_CATEGORIES_Unseen``).
        """
        if self.name == 'zsp':
            return _coco_panoptic_classes()
        return get_split(self.split).classes

    @property
    def num_seen(self) -> int:
        """Classes of the reference's stage-1 head (before padding)."""
        if self.name == 'zsp':
            # The reference trains ZSP's stage 1 with all 133 classes
            # (configs/panoptic-segmentation/pretrain.yaml NUM_CLASSES).
            return len(_coco_panoptic_classes())
        return len(get_split(self.split).seen)

    def config_path(self, stage: str) -> str:
        """The mmpading config of a stage (``configs/pading/<name>.py``)."""
        name = self.stage1_config if stage == 'pretrain' else \
            self.stage2_config
        return osp.join(_CONFIG_DIR, f'{name}.py')


_LAYOUTS = {
    'zsp': ReferenceLayout('zsp', 'mmdet', 'panoptic_head', 'zsp_coco',
                           'zsp_r50_pretrain', 'zsp_r50', 512),
    'zsi_48_17': ReferenceLayout('zsi_48_17', 'mmdet', 'panoptic_head',
                                 'zsi_48_17', 'zsi_48_17_r50_pretrain',
                                 'zsi_48_17_r50', 300),
    'zsi_65_15': ReferenceLayout('zsi_65_15', 'mmdet', 'panoptic_head',
                                 'zsi_65_15', 'zsi_65_15_r50_pretrain',
                                 'zsi_65_15_r50', 300),
    'zss': ReferenceLayout('zss', 'mmseg', 'decode_head', 'zss_cocostuff',
                           'zss_r50_pretrain', 'zss_r50', 512),
}


def reference_layout(name: str) -> ReferenceLayout:
    """The layout called ``name`` (one of :data:`LAYOUTS`)."""
    if name not in _LAYOUTS:
        raise ConversionError(f'unknown layout {name!r}; expected one of '
                              f'{", ".join(LAYOUTS)}')
    return _LAYOUTS[name]


# --------------------------------------------------------------- loading
class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays (detectron2 ``.pkl``) and no code."""

    _ALLOWED = {
        ('collections', 'OrderedDict'),
        ('numpy', 'ndarray'),
        ('numpy', 'dtype'),
        ('numpy.core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'),
        ('numpy._core.multiarray', '_reconstruct'),
        ('numpy._core.multiarray', 'scalar'),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f'{module}.{name}')
        return super().find_class(module, name)


def load_reference_checkpoint(path: str) -> dict[str, Tensor]:
    """The model state dict of a reference checkpoint.

    Reads detectron2's ``.pth`` (``torch.save``) and ``.pkl`` (pickled
    numpy arrays) files, either ``{'model': state_dict, ...}`` or a bare
    state dict; numpy arrays become tensors and a ``module.`` prefix on
    every key (a DDP-wrapped save) is removed.

    Args:
        path (str): The checkpoint file.

    Returns:
        dict[str, Tensor]: The state dict.

    Raises:
        FileNotFoundError: No such file.
        ConversionError: Not a readable checkpoint, or no state dict in it.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} not found')
    if path.endswith('.pkl'):
        with open(path, 'rb') as file:
            try:
                if os.environ.get(TRUST_ENV) == '1':
                    loaded = pickle.load(file, encoding='latin1')
                else:
                    loaded = _NumpyUnpickler(file, encoding='latin1').load()
            except pickle.UnpicklingError as error:
                raise ConversionError(
                    f'{path!r} holds more than numpy arrays ({error}); if '
                    f'you trust the file, set {TRUST_ENV}=1 to unpickle it '
                    'fully') from None
            except Exception as error:
                raise ConversionError(
                    f'cannot read {path!r} as a pickle: {error}') from None
    else:
        try:
            loaded = load_from_local(path, map_location='cpu')
        except Exception as error:
            raise ConversionError(str(error)) from None
    state_dict = loaded.get('model', loaded) if isinstance(loaded,
                                                           Mapping) else None
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise ConversionError(
            f'{path!r} holds no state dict (expected {{"model": '
            'state_dict, ...}} as detectron2 saves, or a state dict)')
    tensors = {}
    for key, value in state_dict.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, Tensor):
            tensors[str(key)] = value
    if tensors and all(key.startswith('module.') for key in tensors):
        tensors = {key[len('module.'):]: value
                   for key, value in tensors.items()}
    return tensors


# -------------------------------------------------------------- detection
def detect_stage(state_dict: Mapping[str, Tensor]) -> str:
    """``'pading'`` when the state dict holds a generator, else
    ``'pretrain'``."""
    return 'pading' if any(key in state_dict
                           for key in _LEARNER_MARKERS) else 'pretrain'


def detect_layout(state_dict: Mapping[str, Tensor],
                  stage: str | None = None) -> str:
    """The layout of a reference state dict, from its class count.

    ``class_embed`` has K + 1 rows (134 ZSP, 66 ZSI 48/17, 81 ZSI 65/15,
    172 ZSS) in final models and in stage-1 checkpoints padded by the
    reference's ``tools/preprocess_pretrained_weight.py`` (which adds
    ``new_fc``); unpadded stage-1 checkpoints have seen + 1 (49, 66, 157).

    Raises:
        ConversionError: No ``class_embed``, or a count of no layout.
    """
    if _CLASS_EMBED not in state_dict:
        raise ConversionError(
            f'no {_CLASS_EMBED}: not a checkpoint of the reference\'s '
            f'Mask2Former (first keys: {_first(state_dict)})')
    rows = int(state_dict[_CLASS_EMBED].shape[0])
    stage = stage or detect_stage(state_dict)
    padded = stage == 'pading' or 'new_fc.weight' in state_dict
    candidates = []
    for name in LAYOUTS:
        layout = _LAYOUTS[name]
        num_classes = len(layout.target_classes())
        if rows == num_classes + 1 and (padded or name == 'zsp'):
            candidates.append(name)
        elif rows == layout.num_seen + 1 and not padded:
            candidates.append(name)
    candidates = sorted(set(candidates), key=LAYOUTS.index)
    if len(candidates) != 1:
        raise ConversionError(
            f'cannot tell the layout from class_embed with {rows} rows '
            f'({"none" if not candidates else " or ".join(candidates)} '
            'fits); pass --layout')
    return candidates[0]


def _first(keys: Sequence[str] | Mapping, count: int = 8) -> str:
    keys = list(keys)
    text = ', '.join(keys[:count])
    return text + (f', ... ({len(keys)} in all)' if len(keys) > count else '')


# ---------------------------------------------------------------- mapping
@dataclass
class ConversionResult:
    """A converted state dict and how it was made.

    Attributes:
        state_dict (dict[str, Tensor]): mmpading keys.
        layout (str): The layout converted.
        stage (str): ``'pretrain'`` or ``'pading'``.
        mapped (dict[str, list[str]]): Source key -> the target keys made
            from it.
        ignored (dict[str, str]): Source key -> why it has no counterpart.
        partial (dict[str, str]): Source key mapped in part -> why the
            rest has no counterpart.
        filled (dict[str, str]): Target key without a source -> its value.
        notes (list[str]): What else the conversion did (padding, reordered
            rows).
    """
    state_dict: dict[str, Tensor]
    layout: str
    stage: str
    mapped: dict[str, list[str]] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    filled: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The coverage in a few lines (printed by the tool)."""
        lines = [
            f'layout {self.layout}, stage {self.stage}: '
            f'{len(self.mapped)} source keys mapped to '
            f'{sum(map(len, self.mapped.values()))} mmpading keys, '
            f'{len(self.ignored)} ignored, {len(self.partial)} used in '
            f'part, {len(self.filled)} mmpading keys filled without a source'
        ]
        for what, entries in (('ignored', self.ignored),
                              ('used in part', self.partial),
                              ('filled', self.filled)):
            groups: dict[str, list[str]] = {}
            for key, reason in entries.items():
                groups.setdefault(reason, []).append(key)
            for reason, keys in groups.items():
                lines.append(f'  {what} {_first(keys, 2)}: {reason}')
        lines += [f'  note: {note}' for note in self.notes]
        return '\n'.join(lines)


# A rule turns one source key into (target key, tensor) pairs.
_Rule = tuple[re.Pattern, Callable[[re.Match, Tensor], list[tuple[str,
                                                                  Tensor]]]]


def _rename(template: str) -> Callable:
    """A rule's action: one target key, ``template`` formatted with the
    match's groups, the tensor unchanged."""

    def action(match: re.Match, value: Tensor) -> list[tuple[str, Tensor]]:
        return [(template.format(*match.groups(), **match.groupdict()),
                 value)]

    return action


def _backbone_rules() -> list[_Rule]:
    # detectron2 names the BN of a conv ``<conv>.norm``; mmdet ``bnJ``.
    def stage_block(match: re.Match) -> str:
        return f'backbone.layer{int(match["stage"]) - 1}.{match["block"]}'

    def conv(match: re.Match, value: Tensor) -> list[tuple[str, Tensor]]:
        return [(f'{stage_block(match)}.conv{match["j"]}.weight', value)]

    def conv_norm(match: re.Match, value: Tensor) -> list[tuple[str, Tensor]]:
        return [(f'{stage_block(match)}.bn{match["j"]}.{match["param"]}',
                 value)]

    def shortcut(match: re.Match, value: Tensor) -> list[tuple[str, Tensor]]:
        return [(f'{stage_block(match)}.downsample.0.weight', value)]

    def shortcut_norm(match: re.Match,
                      value: Tensor) -> list[tuple[str, Tensor]]:
        return [(f'{stage_block(match)}.downsample.1.{match["param"]}',
                 value)]

    block = r'backbone\.res(?P<stage>[2-5])\.(?P<block>\d+)'
    param = r'(?P<param>weight|bias|running_mean|running_var|' \
            r'num_batches_tracked)'
    return [
        (re.compile(r'backbone\.stem\.conv1\.weight'),
         _rename('backbone.conv1.weight')),
        (re.compile(rf'backbone\.stem\.conv1\.norm\.{param}'),
         _rename('backbone.bn1.{param}')),
        (re.compile(rf'{block}\.conv(?P<j>[1-3])\.weight'), conv),
        (re.compile(rf'{block}\.conv(?P<j>[1-3])\.norm\.{param}'), conv_norm),
        (re.compile(rf'{block}\.shortcut\.weight'), shortcut),
        (re.compile(rf'{block}\.shortcut\.norm\.{param}'), shortcut_norm),
    ]


def _pixel_decoder_rules(head: str) -> list[_Rule]:
    src = r'sem_seg_head\.pixel_decoder'
    dst = f'{head}.pixel_decoder'
    wb = r'(?P<param>weight|bias)'
    # The reference's FPN part (one level for R-50: res2) is named
    # adapter_1 / layer_1; mmdet lists it from low to high resolution,
    # as the reference's lateral_convs[::-1]: level 1 is index 0.
    return [
        (re.compile(rf'{src}\.input_proj\.(\d+)\.0\.{wb}'),
         _rename(dst + '.input_convs.{0}.conv.{param}')),
        (re.compile(rf'{src}\.input_proj\.(\d+)\.1\.{wb}'),
         _rename(dst + '.input_convs.{0}.gn.{param}')),
        (re.compile(rf'{src}\.transformer\.level_embed'),
         _rename(dst + '.level_encoding.weight')),
        (re.compile(rf'{src}\.transformer\.encoder\.layers\.(\d+)\.self_attn'
                    r'\.(sampling_offsets|attention_weights|value_proj|'
                    rf'output_proj)\.{wb}'),
         _rename(dst + '.encoder.layers.{0}.self_attn.{1}.{param}')),
        (re.compile(rf'{src}\.transformer\.encoder\.layers\.(\d+)\.linear1'
                    rf'\.{wb}'),
         _rename(dst + '.encoder.layers.{0}.ffn.layers.0.0.{param}')),
        (re.compile(rf'{src}\.transformer\.encoder\.layers\.(\d+)\.linear2'
                    rf'\.{wb}'),
         _rename(dst + '.encoder.layers.{0}.ffn.layers.1.{param}')),
        (re.compile(rf'{src}\.transformer\.encoder\.layers\.(\d+)\.norm1'
                    rf'\.{wb}'),
         _rename(dst + '.encoder.layers.{0}.norms.0.{param}')),
        (re.compile(rf'{src}\.transformer\.encoder\.layers\.(\d+)\.norm2'
                    rf'\.{wb}'),
         _rename(dst + '.encoder.layers.{0}.norms.1.{param}')),
        (re.compile(rf'{src}\.mask_features\.{wb}'),
         _rename(dst + '.mask_feature.{param}')),
        (re.compile(rf'{src}\.adapter_1\.weight'),
         _rename(dst + '.lateral_convs.0.conv.weight')),
        (re.compile(rf'{src}\.adapter_1\.norm\.{wb}'),
         _rename(dst + '.lateral_convs.0.gn.{param}')),
        (re.compile(rf'{src}\.layer_1\.weight'),
         _rename(dst + '.output_convs.0.conv.weight')),
        (re.compile(rf'{src}\.layer_1\.norm\.{wb}'),
         _rename(dst + '.output_convs.0.gn.{param}')),
    ]


def _decoder_rules(head: str) -> list[_Rule]:
    src = r'sem_seg_head\.predictor'
    layers = f'{head}.transformer_decoder.layers'
    wb = r'(?P<param>weight|bias)'
    attn = r'(?P<param>in_proj_weight|in_proj_bias|out_proj\.weight|' \
           r'out_proj\.bias)'
    # Both sides use nn.MultiheadAttention (mmcv's MultiheadAttention wraps
    # one as .attn): the packed in-projections copy unchanged. mmdet's
    # layer runs cross-attention, self-attention, FFN with norms 0, 1, 2,
    # the reference's order (mask2former_transformer_decoder.py:404-421).
    mask_embed = {'0': '0', '1': '2', '2': '4'}

    def mask_embed_rule(match: re.Match,
                        value: Tensor) -> list[tuple[str, Tensor]]:
        return [(f'{head}.mask_embed.{mask_embed[match[1]]}.{match["param"]}',
                 value)]

    return [
        (re.compile(rf'{src}\.transformer_self_attention_layers\.(\d+)'
                    rf'\.self_attn\.{attn}'),
         _rename(layers + '.{0}.self_attn.attn.{param}')),
        (re.compile(rf'{src}\.transformer_self_attention_layers\.(\d+)\.norm'
                    rf'\.{wb}'),
         _rename(layers + '.{0}.norms.1.{param}')),
        (re.compile(rf'{src}\.transformer_cross_attention_layers\.(\d+)'
                    rf'\.multihead_attn\.{attn}'),
         _rename(layers + '.{0}.cross_attn.attn.{param}')),
        (re.compile(rf'{src}\.transformer_cross_attention_layers\.(\d+)\.norm'
                    rf'\.{wb}'),
         _rename(layers + '.{0}.norms.0.{param}')),
        (re.compile(rf'{src}\.transformer_ffn_layers\.(\d+)\.linear1\.{wb}'),
         _rename(layers + '.{0}.ffn.layers.0.0.{param}')),
        (re.compile(rf'{src}\.transformer_ffn_layers\.(\d+)\.linear2\.{wb}'),
         _rename(layers + '.{0}.ffn.layers.1.{param}')),
        (re.compile(rf'{src}\.transformer_ffn_layers\.(\d+)\.norm\.{wb}'),
         _rename(layers + '.{0}.norms.2.{param}')),
        (re.compile(rf'{src}\.decoder_norm\.{wb}'),
         _rename(head + '.transformer_decoder.post_norm.{param}')),
        (re.compile(rf'{src}\.(query_feat|query_embed|level_embed)\.weight'),
         _rename(head + '.{0}.weight')),
        # ENFORCE_INPUT_PROJ (False in every reference config) adds these.
        (re.compile(rf'{src}\.input_proj\.(\d+)\.{wb}'),
         _rename(head + '.decoder_input_projs.{0}.{param}')),
        (re.compile(rf'{src}\.mask_embed\.layers\.([0-2])\.{wb}'),
         mask_embed_rule),
    ]


def _split_in_proj(value: Tensor, parts: Sequence[str | None],
                   template: str) -> list[tuple[str, Tensor]]:
    """Rows (3C, ...) of a packed in-projection -> q / k / v tensors.

    ``parts`` names the target of each third (None: not kept).
    """
    chunks = value.chunk(3, dim=0)
    return [(template.format(part), chunk.clone())
            for part, chunk in zip(parts, chunks) if part is not None]


def _learner_rules() -> list[_Rule]:
    gen = 'zero_shot.generator'
    dis = 'zero_shot.disentangle_head'
    wb = r'(?P<param>weight|bias)'

    def self_attn_in(match: re.Match,
                     value: Tensor) -> list[tuple[str, Tensor]]:
        param = 'weight' if match['param'] == 'in_proj_weight' else 'bias'
        return _split_in_proj(value, (None, None, 'self_attn_value'),
                              f'{gen}.layers.{match[1]}.{{}}.{param}')

    def cross_attn_in(match: re.Match,
                      value: Tensor) -> list[tuple[str, Tensor]]:
        param = 'weight' if match['param'] == 'in_proj_weight' else 'bias'
        return _split_in_proj(
            value, ('q_proj', 'k_proj', 'v_proj'),
            f'{gen}.layers.{match[1]}.cross_attn.{{}}.{param}')

    in_proj = r'(?P<param>in_proj_weight|in_proj_bias)'
    return [
        (re.compile(rf'fc_projection\.{wb}'),
         _rename(gen + '.semantic_proj.{param}')),
        (re.compile(r'dict_feature\.weight'), _rename(gen + '.primitives')),
        (re.compile(rf'generator\.layers\.(\d+)\.self_attn\.{in_proj}'),
         self_attn_in),
        (re.compile(rf'generator\.layers\.(\d+)\.self_attn\.out_proj\.{wb}'),
         _rename(gen + '.layers.{0}.self_attn_out.{param}')),
        (re.compile(rf'generator\.layers\.(\d+)\.multihead_attn\.{in_proj}'),
         cross_attn_in),
        (re.compile(rf'generator\.layers\.(\d+)\.multihead_attn\.out_proj'
                    rf'\.{wb}'),
         _rename(gen + '.layers.{0}.cross_attn.out_proj.{param}')),
        (re.compile(rf'generator\.layers\.(\d+)\.linear1\.{wb}'),
         _rename(gen + '.layers.{0}.ffn.0.{param}')),
        (re.compile(rf'generator\.layers\.(\d+)\.linear2\.{wb}'),
         _rename(gen + '.layers.{0}.ffn.3.{param}')),
        (re.compile(rf'generator\.layers\.(\d+)\.(norm[1-3])\.{wb}'),
         _rename(gen + '.layers.{0}.{1}.{param}')),
        (re.compile(rf'generator\.norm\.{wb}'),
         _rename(gen + '.final_norm.{param}')),
        (re.compile(rf'projection_related\.encoder\.([01])\.{wb}'),
         _rename(dis + '.related_encoder.{0}.{param}')),
        (re.compile(rf'projection_unrelated\.encoder\.([01])\.{wb}'),
         _rename(dis + '.unrelated_encoder.{0}.{param}')),
        # Decoder: Linear(2C, C), LeakyReLU, Dropout, Linear(C, C), ...
        (re.compile(rf'decoder\.decoder\.([03])\.{wb}'),
         _rename(dis + '.decoder.{0}.{param}')),
        # RelationNet's fc1 takes cat(feature, class embedding), the order
        # of DisentangleHead.relation_fc's columns.
        (re.compile(rf'relation\.fc1\.{wb}'),
         _rename(dis + '.relation_fc.{param}')),
        (re.compile(rf'relation\.fc2\.{wb}'),
         _rename(dis + '.relation_out.{param}')),
    ]


def class_row_order(layout: ReferenceLayout) -> list[int]:
    """For each mmpading row (classes, then no-object), its reference row.

    Raises:
        ConversionError: The two class lists are not the same set.
    """
    reference = list(layout.reference_classes())
    target = list(layout.target_classes())
    if sorted(reference) != sorted(target):
        missing = sorted(set(target) ^ set(reference))
        raise ConversionError(
            f'layout {layout.name}: the reference and mmpading classes '
            f'differ ({_first(missing)})')
    index = {name: row for row, name in enumerate(reference)}
    return [index[name] for name in target] + [len(reference)]


def pad_stage1_classes(value: Tensor, num_rows: int) -> Tensor:
    """Pad a stage-1 ``class_embed`` as the reference's
    ``tools/preprocess_pretrained_weight.py`` does.

    Its seen + 1 rows (the no-object row last) are kept as rows
    ``0..seen`` of a zero tensor of ``num_rows`` rows: the former no-object
    row becomes the row of the first unseen class and the new no-object row
    is zero, the weights the reference's stage 2 starts from.
    """
    padded = value.new_zeros((num_rows, ) + tuple(value.shape[1:]))
    padded[:value.shape[0]] = value
    return padded


def convert_state_dict(state_dict: Mapping[str, Tensor],
                       layout: str | None = None,
                       stage: str | None = None) -> ConversionResult:
    """Convert a reference state dict to mmpading keys.

    Args:
        state_dict (Mapping[str, Tensor]): The reference's model state dict
            (:func:`load_reference_checkpoint`).
        layout (str, optional): One of :data:`LAYOUTS`, or ``'zsi'`` (the
            split told by the class count); None: detected
            (:func:`detect_layout`).
        stage (str, optional): One of :data:`STAGES`; None: detected
            (:func:`detect_stage`).

    Returns:
        ConversionResult: The mmpading state dict and its coverage.

    Raises:
        ConversionError: A layout or stage that does not fit, or source keys
            that no rule maps (the first ones named).
    """
    detected_stage = detect_stage(state_dict)
    if stage is None:
        stage = detected_stage
    elif stage not in STAGES:
        raise ConversionError(f'unknown stage {stage!r}; expected one of '
                              f'{", ".join(STAGES)}')
    elif stage != detected_stage:
        found = [key for key in _LEARNER_MARKERS if key in state_dict]
        raise ConversionError(
            f'--stage {stage}, but the checkpoint is a '
            f'{detected_stage} one ('
            + (f'it has {", ".join(found)}' if found else
               'it has no generator (fc_projection, dict_feature, '
               'generator.*)') + ')')
    detected = detect_layout(state_dict, stage) if layout in (None, 'zsi') \
        else None
    if layout == 'zsi' and detected is not None and \
            not detected.startswith('zsi'):
        raise ConversionError(f'--layout zsi, but the class count says '
                              f'{detected}')
    layout_ = reference_layout(detected or layout)
    head = layout_.head
    rules = _backbone_rules() + _pixel_decoder_rules(head) + \
        _decoder_rules(head)
    if stage == 'pading':
        rules += _learner_rules()
    result = ConversionResult(state_dict={}, layout=layout_.name, stage=stage)

    unmapped = []
    for key, value in state_dict.items():
        if key in IGNORED_KEYS:
            result.ignored[key] = IGNORED_KEYS[key]
            continue
        if key in ('new_fc.weight', 'new_fc.bias', _CLASS_EMBED,
                   'sem_seg_head.predictor.class_embed.bias'):
            continue  # class-indexed: below
        for pattern, action in rules:
            match = pattern.fullmatch(key)
            if match:
                pairs = action(match, value)
                result.mapped[key] = [target for target, _ in pairs]
                result.state_dict.update(pairs)
                break
        else:
            unmapped.append(key)
        if key.startswith('generator.layers.') and \
                '.self_attn.in_proj_' in key:
            result.partial[key] = UNUSED_QK_REASON
    if unmapped:
        raise ConversionError(
            f'{len(unmapped)} key(s) of the checkpoint fit no rule of '
            f'layout {layout_.name} / stage {stage}: {_first(unmapped)}. '
            'This is not a checkpoint of the PADing reference (R-50 '
            'Mask2Former) of that layout; check --layout / --stage')
    _convert_class_rows(state_dict, layout_, stage, result)
    _fill_buffers(result, stage)
    return result


def _convert_class_rows(state_dict: Mapping[str, Tensor],
                        layout: ReferenceLayout, stage: str,
                        result: ConversionResult) -> None:
    """``class_embed`` (and ``new_fc``): pad, reorder, map."""
    num_rows = len(layout.target_classes()) + 1
    order = class_row_order(layout)
    names = [('sem_seg_head.predictor.class_embed', f'{layout.head}.'
              'cls_embed')]
    if stage == 'pading':
        names.append(('new_fc', 'zero_shot.classifier'))
    elif 'new_fc.weight' in state_dict:
        for param in ('weight', 'bias'):
            result.ignored[f'new_fc.{param}'] = STAGE1_NEW_FC_REASON
    for source, target in names:
        for param in ('weight', 'bias'):
            key = f'{source}.{param}'
            if key not in state_dict:
                raise ConversionError(f'the checkpoint has no {key}')
            value = state_dict[key]
            rows = int(value.shape[0])
            if rows == layout.num_seen + 1 and rows != num_rows and \
                    stage == 'pretrain':
                value = pad_stage1_classes(value, num_rows)
                if param == 'weight':
                    result.notes.append(
                        f'{source}: {rows} rows (seen classes + no-object) '
                        f'padded to {num_rows} as the reference\'s '
                        'tools/preprocess_pretrained_weight.py does: the '
                        'former no-object row becomes the row of '
                        f'{layout.reference_classes()[rows - 1]!r}, the '
                        'no-object row is zero')
            elif rows != num_rows:
                raise ConversionError(
                    f'{key} has {rows} rows; layout {layout.name} needs '
                    f'{num_rows} (classes + no-object)'
                    + (f' or {layout.num_seen + 1} (an unpadded stage-1 '
                       'head)' if stage == 'pretrain' else ''))
            result.state_dict[f'{target}.{param}'] = value[order].clone()
            result.mapped[key] = [f'{target}.{param}']
        if order != list(range(num_rows)):
            result.notes.append(
                f'{source} rows reordered from the reference\'s class '
                'order (seen, then unseen) to mmpading\'s')


def _fill_buffers(result: ConversionResult, stage: str) -> None:
    """Target buffers the reference has no counterpart of."""
    for key in list(result.state_dict):
        if key.startswith('backbone.') and key.endswith('.running_var'):
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            if counter not in result.state_dict:
                result.state_dict[counter] = torch.tensor(0)
                result.filled[counter] = (
                    'num_batches_tracked = 0 (FrozenBatchNorm2d keeps no '
                    'counter; mmdet\'s BN is frozen, norm_eval)')
    if stage == 'pading':
        key = 'zero_shot.classifier_initialised'
        result.state_dict[key] = torch.tensor(1)
        result.filled[key] = ('classifier_initialised = 1 (the classifier '
                              'holds the trained new_fc)')


# ---------------------------------------------------------------- checks
def check_state_dict_fits(state_dict: Mapping[str, Tensor],
                          model: nn.Module) -> None:
    """The converted state dict fills the model exactly.

    Raises:
        ConversionError: Keys the model lacks or has in addition, or shapes
            that differ (the first ones named).
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    shapes = [
        f'{key} {tuple(state_dict[key].shape)} vs '
        f'{tuple(expected[key].shape)}' for key in expected
        if key in state_dict
        and tuple(state_dict[key].shape) != tuple(expected[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f'{len(missing)} key(s) of the model not filled: '
                        f'{_first(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} key(s) the model does not have: '
                        f'{_first(unexpected)}')
    if shapes:
        problems.append(f'{len(shapes)} shape(s) differ (converted vs '
                        f'model): {_first(shapes, 4)}')
    if problems:
        raise ConversionError('the converted checkpoint does not fit the '
                              'model: ' + '; '.join(problems))


def check_reference_backbone(model: nn.Module) -> None:
    """The model's ResNet computes what detectron2's R-50 does.

    The reference's R-50 (``STRIDE_IN_1X1: False``, FrozenBN, eps 1e-5)
    strides in the 3x3 conv, which is mmdet's ``style='pytorch'``; its BN
    layers must use eps 1e-5 and stay in eval mode in training.

    Raises:
        ConversionError: A different style or eps.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise ConversionError('the model has no backbone')
    style = getattr(backbone, 'style', None)
    if style != 'pytorch':
        raise ConversionError(
            f"backbone style {style!r}: the reference's R-50 strides in the "
            "3x3 conv (STRIDE_IN_1X1: False), mmdet's style='pytorch'")
    eps = sorted({module.eps for module in backbone.modules()
                  if isinstance(module, nn.modules.batchnorm._BatchNorm)})
    if eps != [REFERENCE_BN_EPS]:
        raise ConversionError(
            f'backbone BN eps {eps}: detectron2\'s FrozenBatchNorm2d uses '
            f'{REFERENCE_BN_EPS}')


def build_target_model(layout: str,
                       stage: str,
                       config: str | None = None,
                       device: str | torch.device = 'meta') -> nn.Module:
    """The mmpading model a converted checkpoint is for, without weights.

    Built from ``config`` (default: :meth:`ReferenceLayout.config_path`)
    without pretrained backbone weights. A stage-2 config reads its class
    embedding file; when that file is absent, random vectors of the
    layout's dimension stand in (only the learner's non-persistent buffer
    holds them, so the state dict is the same).

    Args:
        layout (str): One of :data:`LAYOUTS`.
        stage (str): One of :data:`STAGES`.
        config (str, optional): An mmpading config file.
        device (str | torch.device): ``'meta'`` (default) builds no
            tensors: enough to compare keys and shapes.

    Returns:
        nn.Module: The model.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmpading.apis.model_loading import config_dataset_meta
    from mmpading.datasets.class_embeddings import (
        resolve_class_embeddings_path,
        save_class_embeddings,
    )
    from mmpading.registry import UPSTREAM_SCOPES

    layout_ = reference_layout(layout)
    path = config or layout_.config_path(stage)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} not found (pass --config)')
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    with tempfile.TemporaryDirectory() as folder:
        learner = cfg.model.get('zero_shot')
        if learner is not None:
            try:
                found = osp.isfile(
                    resolve_class_embeddings_path(learner.class_embeddings))
            except (FileNotFoundError, ValueError):
                found = False
            if not found:
                stand_in = osp.join(folder, 'embeddings.json')
                names = list(config_dataset_meta(cfg)['classes'])
                save_class_embeddings(
                    stand_in, names,
                    np.random.default_rng(0).standard_normal(
                        (len(names), layout_.semantic_dim)),
                    source='stand-in for the key check')
                learner.class_embeddings = stand_in
        scope = cfg.get('default_scope', layout_.scope)
        init_default_scope(scope)
        with torch.device(device):
            return UPSTREAM_SCOPES[scope].MODELS.build(cfg.model)
