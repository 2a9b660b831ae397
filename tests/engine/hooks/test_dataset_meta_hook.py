"""DatasetMetaHook gives the model its data set's classes and split."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import BaseLoop
from torch import nn

from mmpading.engine.hooks import DatasetMetaHook

from _helpers import tiny_stage2_runner

REPO = Path(__file__).resolve().parents[3]
STAGE2_TYPES = ('PADing', 'PADingSegmentor')


class Learner(nn.Module):
    """Records what set_dataset_meta received."""

    def __init__(self):
        super().__init__()
        self.received = []

    def set_dataset_meta(self, meta):
        self.received.append(dict(meta))


class Model(nn.Module):

    def __init__(self, with_learner=True):
        super().__init__()
        self.zero_shot = Learner() if with_learner else None


def loader(name: str):
    return SimpleNamespace(dataset=SimpleNamespace(
        metainfo=dict(classes=('a', 'b'), seen_classes=('a', ),
                      unseen_classes=('b', ), source=name)))


def fake_runner(model):
    return SimpleNamespace(model=model, train_dataloader=loader('train'),
                           val_dataloader=loader('val'),
                           test_dataloader=loader('test'))


@pytest.mark.parametrize('stage, source', [('before_train', 'train'),
                                           ('before_val', 'val'),
                                           ('before_test', 'test')])
def test_each_loop_passes_its_own_data_sets_metainfo(stage, source):
    model = Model()
    getattr(DatasetMetaHook(), stage)(fake_runner(model))
    assert [meta['source'] for meta in model.zero_shot.received] == [source]
    # mmdet's convention (init_detector): the model's dataset_meta.
    assert model.dataset_meta['source'] == source


def test_a_model_without_learner_gets_only_its_dataset_meta():
    model = Model(with_learner=False)
    DatasetMetaHook().before_test(fake_runner(model))
    assert model.dataset_meta['classes'] == ('a', 'b')


def test_the_real_learner_refuses_a_disagreeing_validation_set(tmp_path):
    from mmpading.datasets.class_embeddings import save_class_embeddings
    from mmpading.models import ZeroShotLearner
    names = ['a', 'b', 'c']
    embeddings = str(tmp_path / 'embeddings.json')
    save_class_embeddings(embeddings, names, torch.eye(3).numpy(), 'test')
    model = Model()
    model.zero_shot = ZeroShotLearner(
        class_embeddings=embeddings, feat_dim=4, num_classes=3,
        generator=dict(type='PrimitiveGenerator', num_primitives=4,
                       num_heads=2, ffn_dim=8))
    runner = fake_runner(model)
    for name, seen in (('train', ('a', 'b')), ('val', ('a', ))):
        getattr(runner, f'{name}_dataloader').dataset.metainfo = dict(
            classes=tuple(names), seen_classes=seen,
            unseen_classes=tuple(n for n in names if n not in seen))
    DatasetMetaHook().before_train(runner)
    assert model.zero_shot.unseen_ids.tolist() == [2]
    with pytest.raises(ValueError, match='disagree'):
        DatasetMetaHook().before_val(runner)


def test_every_stage2_config_has_the_hook_once():
    """Without it the learner has no classes (it refuses to train)."""
    configs = sorted((REPO / 'configs').rglob('*.py'))
    stage2 = []
    for path in configs:
        cfg = Config.fromfile(path)
        if cfg.model.get('type') not in STAGE2_TYPES:
            continue
        stage2.append(path.name)
        # A default hook: a config's own custom_hooks do not drop it.
        assert cfg.default_hooks.dataset_meta == dict(
            type='DatasetMetaHook'), path
        types = [hook['type'] for hook in cfg.get('custom_hooks') or []]
        assert 'DatasetMetaHook' not in types, (path, types)
        assert 'class_names' not in cfg.model.zero_shot, path
        assert 'split' not in cfg.model.zero_shot, path
    assert len(stage2) >= 10, stage2


def runner_with_loops(model, **built):
    """A runner whose loops named in ``built`` are built (BaseLoop
    instances), the others still config dicts."""
    class Loop(BaseLoop):

        def run(self):
            pass

    runner = fake_runner(model)
    for name in ('train', 'val', 'test'):
        loop = Loop.__new__(Loop) if built.get(name) else dict(type='Loop')
        setattr(runner, f'_{name}_loop', loop)
    return runner


@pytest.mark.parametrize('built, source', [
    (dict(train=True, val=True), 'train'),
    (dict(test=True), 'test'),
    (dict(val=True), 'val'),
])
def test_before_run_passes_the_built_loops_metainfo(built, source):
    model = Model()
    DatasetMetaHook().before_run(runner_with_loops(model, **built))
    assert [meta['source'] for meta in model.zero_shot.received] == [source]


def test_before_run_without_a_built_loop_builds_nothing():
    model = Model()
    DatasetMetaHook().before_run(runner_with_loops(model))
    assert model.zero_shot.received == []
    assert not hasattr(model, 'dataset_meta')


def test_stage2_trains_with_mmengines_ema_hook(tiny_toy_root,
                                               stage1_checkpoint, tmp_path):
    """EMAHook copies the model in before_run: the copy needs the learner's
    class-sized buffers, else loading the averaged weights fails."""
    runner = tiny_stage2_runner(tiny_toy_root, tmp_path, stage1_checkpoint,
                                hooks=[dict(type='EMAHook', momentum=0.5)])
    runner.train()
    (ema, ) = [hook for hook in runner.hooks if type(hook).__name__ ==
               'EMAHook']
    source = runner.model.zero_shot
    copy = ema.ema_model.module.zero_shot
    assert copy.seen_ids.tolist() == source.seen_ids.tolist() != []
    assert copy.unseen_ids.tolist() == source.unseen_ids.tolist() != []
    checkpoint = torch.load(tmp_path / 'iter_2.pth', map_location='cpu',
                            weights_only=False)
    assert 'ema_state_dict' in checkpoint
