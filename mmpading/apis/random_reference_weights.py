"""Seeded random weights for a reference-layout (detectron2 PADing) model.

The output-parity fixture (``tests/data/reference_parity/``) was made by
giving the reference model (heshuting555/PADing) the weights of
:func:`reference_state_dict` and recording its outputs. The project test
rebuilds the same state dict from the fixture's key / shape list and this
rule, without the reference installed, converts it and compares mmpading's
outputs with the recorded ones.

Plain fan-in initialisation makes a random post-LayerNorm transformer
decoder collapse: the residual branches swamp each query's own state and
all queries end up equal. The rule therefore keeps the query tables at
unit scale, shrinks the projections that write into a residual stream and
scales the classifiers so that some queries pass the panoptic score
threshold (0.8). Every tensor depends only on its key, its shape and the
seed (not on the order of the keys).
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

#: Version of the rule; stored in the fixture's metadata.
RULE_VERSION = 1

#: Tables of learned vectors added to (or used as) token states.
QUERY_TABLE_SUFFIXES = ('query_feat.weight', 'query_embed.weight',
                        'level_embed.weight', 'dict_feature.weight')
#: Projections whose output is added to a residual stream.
RESIDUAL_OUTPUT_SUFFIXES = ('out_proj.weight', 'output_proj.weight',
                            'linear2.weight')
RESIDUAL_OUTPUT_SCALE = 0.1
#: Classifiers: logits with a standard deviation of about this value.
CLASSIFIER_SUFFIXES = ('class_embed.weight', 'new_fc.weight')
CLASSIFIER_SCALE = 3.0
#: Gain of the last BN of each backbone bottleneck (its residual branch).
BOTTLENECK_LAST_BN_GAIN = 0.25


def _generator(key: str, seed: int) -> torch.Generator:
    mixed = (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63)
    return torch.Generator().manual_seed(mixed)


def reference_init(key: str, shape: Sequence[int], seed: int = 0) -> Tensor:
    """The value of one reference state-dict entry.

    Args:
        key (str): Reference state-dict key, e.g.
            ``'sem_seg_head.predictor.query_feat.weight'``.
        shape (Sequence[int]): Its shape.
        seed (int): Seed of the whole state dict. Defaults to 0.

    Returns:
        Tensor: float32 tensor of ``shape``:

        - ``criterion.empty_weight``: ones, 0.1 for no-object (the
          reference's NO_OBJECT_WEIGHT);
        - BN running mean ``0.1 * N(0, 1)``, running variance
          ``exp(0.2 * N(0, 1))``;
        - other 1-d ``weight`` (BN / GN / LN scales) ``1 + 0.1 * N(0, 1)``,
          times :data:`BOTTLENECK_LAST_BN_GAIN` for ``conv3.norm``;
        - biases ``0.05 * N(0, 1)``;
        - query tables (:data:`QUERY_TABLE_SUFFIXES`) ``N(0, 1)``;
        - other weights ``N(0, 1) / sqrt(fan_in)`` (fan-in: the product of
          all dimensions but the first), times
          :data:`RESIDUAL_OUTPUT_SCALE` for residual output projections and
          :data:`CLASSIFIER_SCALE` for the classifiers.
    """
    shape = tuple(int(s) for s in shape)
    if key == 'criterion.empty_weight':
        value = torch.ones(shape)
        value[-1] = 0.1
        return value
    normal = torch.randn(shape, generator=_generator(key, seed))
    if key.endswith('running_mean'):
        return 0.1 * normal
    if key.endswith('running_var'):
        return torch.exp(0.2 * normal)
    if key.endswith('bias'):
        return 0.05 * normal
    if key.endswith(QUERY_TABLE_SUFFIXES):
        return normal
    if len(shape) == 1:  # the scale of a BN / GN / LN
        gain = BOTTLENECK_LAST_BN_GAIN if key.endswith(
            'conv3.norm.weight') else 1.0
        return gain * (1.0 + 0.1 * normal)
    fan_in = 1
    for size in shape[1:]:
        fan_in *= size
    value = normal / fan_in**0.5
    if key.endswith(RESIDUAL_OUTPUT_SUFFIXES):
        value = value * RESIDUAL_OUTPUT_SCALE
    elif key.endswith(CLASSIFIER_SUFFIXES):
        value = value * CLASSIFIER_SCALE
    return value


def reference_state_dict(key_shapes: Mapping[str, Sequence[int]],
                         seed: int = 0) -> dict[str, Tensor]:
    """A reference-layout state dict with :func:`reference_init` values.

    Args:
        key_shapes (Mapping[str, Sequence[int]]): Key -> shape, e.g. the
            JSON key lists in ``tests/data/reference_parity/``.
        seed (int): Seed. Defaults to 0.

    Returns:
        dict[str, Tensor]: Key -> float32 tensor, in the order given.
    """
    return {
        key: reference_init(key, shape, seed)
        for key, shape in key_shapes.items()
    }
