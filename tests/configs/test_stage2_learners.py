"""Every stage-2 config builds the learner and optimizers of the reference.

The stage-2 configs state only what differs from ``ZeroShotLearner``'s
defaults (the paper's panoptic setting). This test builds each config's
learner, on the CPU without its data (stand-in class embeddings where the
file is not shipped), and checks the values the built modules hold against
the PADing reference's, as listed in docs/parity.md; then it builds the
config's optimizers and checks which modules each one trains.
"""
from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch import nn

from mmpading.apis.model_loading import config_dataset_meta
from mmpading.datasets.class_embeddings import (
    resolve_class_embeddings_path,
    save_class_embeddings,
)
from mmpading.datasets.splits import (
    TOY_STUFF_CLASSES,
    TOY_THING_CLASSES,
    get_split,
)
from mmpading.engine import PADingOptimWrapperConstructor
from mmpading.models import ZeroShotLearner

CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs'

# The reference's panoptic setting (docs/parity.md; the reference's
# configs/panoptic-segmentation/PADing.yaml and PADing/config.py).
PANOPTIC = dict(
    generator=dict(type='PrimitiveGenerator', num_primitives=400,
                   num_layers=3, num_heads=8, ffn_dim=1024, dropout=0.1),
    kernel_variances=(2, 5, 10, 20, 40, 80),
    synthetic_cls_weight=0.001,
    synthetic_cls_logits='all',
    disentangle_dropout=0.1,
    seen_relation_classes='all',
    temperature=0.1,
    lambda_weight=1e-4,
    num_unseen_per_iter=5,
    class_weights=(1.0, 5.0, 0.1),  # seen, unseen, no-object
    feat_dim=256)
# What the instance (PADing.yaml:43-46, PADing_model.py:134-139) and the
# semantic setting (PADing.yaml:39-41, config.py:39,41, PADing_model.py:353)
# change.
INSTANCE = dict(PANOPTIC, lambda_weight=1e-3, class_weights=(1.0, 2.0, 0.1),
                seen_relation_classes='seen')
SEMANTIC = dict(PANOPTIC,
                generator=dict(PANOPTIC['generator'], dropout=0.3),
                disentangle_dropout=0.2, synthetic_cls_logits='seen',
                lambda_weight=1e-3, num_unseen_per_iter=None)
TOY = dict(PANOPTIC, feat_dim=128)

# Parts per variant (the paper's Table 1): generator, D, A, classifier.
FULL = ('PrimitiveGenerator', True, True, 'Linear')
VARIANTS = {
    'gmmn': ('GMMNGenerator', False, False, 'Linear'),
    'p': ('PrimitiveGenerator', False, False, 'Linear'),
    'p_a': ('PrimitiveGenerator', False, True, 'Linear'),
    'projection': (None, False, False, 'SemanticProjectionClassifier'),
}
STAGE2_CONFIGS = {
    # config: (setting, parts)
    'toy/pading_toy_stage2': (TOY, FULL),
    **{f'toy/pading_toy_stage2_{v}': (TOY, parts)
       for v, parts in VARIANTS.items()},
    'pading/zsp_r50': (PANOPTIC, FULL),
    **{f'pading/zsp_r50_{v}': (PANOPTIC, parts)
       for v, parts in VARIANTS.items()},
    'pading/zsi_48_17_r50': (INSTANCE, FULL),
    'pading/zsi_65_15_r50': (INSTANCE, FULL),
    'pading/zss_r50': (SEMANTIC, FULL),
}


@cache
def load_config(path: Path) -> Config:
    """Parsed once per test session; the tests copy what they change."""
    return Config.fromfile(str(path))


def dropout_rates(module: nn.Module) -> set[float]:
    return {m.p for m in module.modules() if isinstance(m, nn.Dropout)}


def test_every_stage2_config_is_covered():
    found = set()
    for path in CONFIG_ROOT.rglob('*.py'):
        if 'zero_shot' in load_config(path).model:
            found.add(str(path.relative_to(CONFIG_ROOT).with_suffix('')))
    assert found == set(STAGE2_CONFIGS)


def training_meta(cfg: Config) -> dict:
    """The training set's dataset_meta, which DatasetMetaHook passes on
    (the toy set's: its default classes and split, written by
    make_toy_dataset.py, which need not be here)."""
    if 'toy' in cfg.data_root:
        split = get_split('toy')
        classes = TOY_THING_CLASSES + TOY_STUFF_CLASSES
        return dict(
            classes=classes, zero_shot_split='toy',
            seen_classes=tuple(c for c in classes if c in split.seen),
            unseen_classes=tuple(c for c in classes if c in split.unseen))
    return config_dataset_meta(cfg, 'train')


def build_learner(cfg: Config, tmp_path: Path) -> ZeroShotLearner:
    """The config's learner, with stand-ins for data files not here."""
    learner_cfg = copy.deepcopy(cfg.model.zero_shot.to_dict())
    assert learner_cfg.pop('type') == 'ZeroShotLearner'
    # Without feat_dim the model gives its head's cls_embed.in_features,
    # the head's feat_channels (mmdet's and mmseg's Mask2FormerHead).
    head = cfg.model.get('panoptic_head') or cfg.model.decode_head
    learner_cfg.setdefault('feat_dim', head.feat_channels)
    meta = training_meta(cfg)
    names = list(meta['classes'])
    learner_cfg.setdefault('num_classes', len(names))
    # Shipped files (mmpading::...) are read; data files not here are
    # replaced.
    if not Path(resolve_class_embeddings_path(
            learner_cfg['class_embeddings'])).is_file():
        learner_cfg['class_embeddings'] = str(tmp_path / 'embeddings.json')
        save_class_embeddings(
            learner_cfg['class_embeddings'], names,
            np.random.default_rng(0).standard_normal((len(names), 8)),
            source='stand-in for the config test')
    learner = ZeroShotLearner(**learner_cfg)
    learner.set_dataset_meta(meta)
    return learner


@pytest.mark.parametrize('name', sorted(STAGE2_CONFIGS))
def test_built_learner_has_the_reference_values(name, tmp_path):
    cfg = load_config(CONFIG_ROOT / f'{name}.py')
    setting, (generator_type, with_d, with_a, classifier) = \
        STAGE2_CONFIGS[name]
    learner = build_learner(cfg, tmp_path)

    assert learner.feat_dim == setting['feat_dim']
    # The size of the segmenter's class embeddings (cls_embed's input).
    head = cfg.model.get('panoptic_head') or cfg.model.decode_head
    assert learner.feat_dim == head.feat_channels
    assert type(learner.classifier).__name__ == classifier
    if generator_type is None:
        assert learner.generator is None
    else:
        generator = learner.generator
        assert type(generator).__name__ == generator_type
        assert generator.feat_dim == setting['feat_dim']
    if generator_type == 'PrimitiveGenerator':
        expected = setting['generator']
        assert (generator.num_primitives, generator.num_layers,
                generator.num_heads) == (expected['num_primitives'],
                                         expected['num_layers'],
                                         expected['num_heads'])
        assert len(generator.layers) == expected['num_layers']
        assert generator.layers[0].ffn[0].out_features == \
            expected['ffn_dim']
        assert dropout_rates(generator) == {expected['dropout']}
    elif generator_type == 'GMMNGenerator':
        # The reference's GMMN MLP dropout (network_utils.py:19).
        assert dropout_rates(generator) == {0.4}
    assert learner.mmd_loss.kernel_variances == setting['kernel_variances']
    assert learner.synthetic_cls_weight == setting['synthetic_cls_weight']
    assert learner.synthetic_cls_logits == setting['synthetic_cls_logits']

    head = learner.disentangle_head
    assert (head is not None) == with_d
    if with_d:
        assert dropout_rates(head) == {setting['disentangle_dropout']}
        assert head.seen_relation_classes == \
            setting['seen_relation_classes']
        assert head.unseen_relation_classes == 'unseen'
        assert head.set_reduction == 'per_set'
        assert (head.loss_recon_weight, head.loss_unrelated_kl_weight,
                head.loss_relation_weight) == (0.5, 0.5, 0.2)
    align = learner.relation_align_loss
    assert (align is not None) == with_a
    if with_a:
        assert align.temperature == setting['temperature']

    assert learner.lambda_weight == setting['lambda_weight']
    assert learner.num_unseen_per_iter == setting['num_unseen_per_iter']
    assert learner.unseen_with_replacement is False
    assert learner.cross_rank_losses is True
    seen, unseen, no_object = setting['class_weights']
    weights = learner.class_weight
    assert torch.all(weights[learner.seen_ids] == seen)
    assert torch.allclose(weights[learner.unseen_ids],
                          torch.tensor(unseen))
    assert weights[-1].item() == pytest.approx(no_object)
    split = get_split(training_meta(cfg)['zero_shot_split'])
    assert [learner.class_names[i] for i in learner.unseen_ids] == [
        c for c in learner.class_names if c in split.unseen]


class StubModel(nn.Module):
    """The learner where the stage-2 model holds it."""

    def __init__(self, learner: nn.Module) -> None:
        super().__init__()
        self.zero_shot = learner


def param_ids(modules) -> set[int]:
    return {id(p) for module in modules for p in module.parameters()}


@pytest.mark.parametrize('name', sorted(STAGE2_CONFIGS))
def test_optimizers_train_the_learners_groups(name, tmp_path):
    """Adam 5e-4 on the generator and D, SGD 1e-3 / 0.9 / 5e-4 on the
    classifier (engine_ours/defaults.py:378-393)."""
    cfg = load_config(CONFIG_ROOT / f'{name}.py')
    learner = build_learner(cfg, tmp_path)
    optim_cfg = cfg.optim_wrapper.to_dict()
    assert optim_cfg.pop('constructor') == 'PADingOptimWrapperConstructor'
    wrappers = PADingOptimWrapperConstructor(optim_cfg)(StubModel(learner))
    expected = {'classifier': [learner.classifier]}
    if learner.generator is not None:
        expected['generator'] = [
            m for m in (learner.generator, learner.disentangle_head)
            if m is not None
        ]
    assert set(wrappers.keys()) == set(expected)
    for group, modules in expected.items():
        optimizer = wrappers[group].optimizer
        assert {id(p) for g in optimizer.param_groups
                for p in g['params']} == param_ids(modules)
    classifier = wrappers['classifier'].optimizer
    assert isinstance(classifier, torch.optim.SGD)
    assert (classifier.defaults['lr'], classifier.defaults['momentum'],
            classifier.defaults['weight_decay']) == (1e-3, 0.9, 5e-4)
    if 'generator' in expected:
        generator = wrappers['generator'].optimizer
        assert isinstance(generator, torch.optim.Adam)
        assert (generator.defaults['lr'],
                generator.defaults['weight_decay']) == (5e-4, 0.0)
