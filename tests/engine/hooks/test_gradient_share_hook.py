"""GradientShareHook on tiny toy stage-2 runs."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmpading.engine.hooks import GradientShareHook

from _helpers import tiny_stage2_runner

GROUPS = ('mmd', 'synthetic_cls', 'align', 'disentangle')


def scalars(work_dir: Path) -> list[dict]:
    (path, ) = work_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_logging_does_not_change_training(tiny_toy_root, stage1_checkpoint,
                                          tmp_path):
    plain = tiny_stage2_runner(tiny_toy_root, tmp_path / 'plain',
                          stage1_checkpoint, hooks=[])
    plain.train()
    # No interval: the logger's, 1 in these tiny runs.
    logged = tiny_stage2_runner(tiny_toy_root, tmp_path / 'logged',
                           stage1_checkpoint,
                           hooks=[dict(type='GradientShareHook')])
    logged.train()
    (hook, ) = [h for h in logged.hooks if isinstance(h, GradientShareHook)]
    assert hook.interval == 1
    expected = plain.model.state_dict()
    state = logged.model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key

    # Both iterations measured; the figures reach scalars.json.
    rows = scalars(tmp_path / 'logged')
    assert [row['iter'] for row in rows] == [1, 2]
    for row in rows:
        for group in GROUPS:
            assert 0 < row[f'grad_share/{group}'] < 1, group
            assert row[f'grad_share/{group}_norm'] > 0, group
        assert sum(row[f'grad_share/{g}'] for g in GROUPS) == \
            pytest.approx(1.0, abs=1e-6)
        assert row['grad_share/ad_ratio'] > 0
    assert not any('grad_share' in key for row in scalars(tmp_path / 'plain')
                   for key in row)
    (log, ) = (tmp_path / 'logged').glob('*/*.log')
    text = log.read_text()
    assert 'generator gradient share: mmd' in text
    assert 'lambda*(A+D) / (MMD+synthetic CE)' in text


def fake_runner(model, messages: list) -> SimpleNamespace:
    return SimpleNamespace(model=model, hooks=[],
                           logger=SimpleNamespace(info=messages.append))


def test_stage1_and_generator_free_models_are_skipped():
    hook = GradientShareHook(interval=1)
    messages = []
    hook.before_train(fake_runner(nn.Linear(2, 2), messages))
    assert len(messages) == 1 and 'does not train stage 2' in messages[0]
    # The iterations then do nothing (the fake runner has no model hooks).
    hook.before_train_iter(SimpleNamespace(iter=0), 0)
    hook.after_train_iter(SimpleNamespace(iter=0), 0)

    no_generator = SimpleNamespace(learner=SimpleNamespace(generator=None))
    hook.before_train(fake_runner(no_generator, messages))
    assert len(messages) == 2 and 'has no generator' in messages[1]


@pytest.mark.parametrize('interval', [0, -3, 2.5])
def test_bad_interval_is_refused(interval):
    with pytest.raises(ValueError, match='interval must be a positive'):
        GradientShareHook(interval=interval)
