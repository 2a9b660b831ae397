"""check_checkpoint_fits: a checkpoint of the other stage is named early."""
from __future__ import annotations

import pytest
import torch

from mmpading.apis import load_model
from mmpading.apis.checkpoint_checks import (
    CheckpointMismatchError,
    check_checkpoint_fits,
    read_checkpoint_contents,
)
from mmpading.utils.compat import CheckpointLoadError
from mmpading.utils.config_utils import toy_config


def save(path, initialised: int | None, ddp: bool = False) -> str:
    """A checkpoint: a segmenter, plus a learner unless ``initialised`` is
    None."""
    state_dict = {'panoptic_head.cls_embed.weight': torch.zeros(3, 2)}
    if initialised is not None:
        prefix = 'zero_shot.module.' if ddp else 'zero_shot.'
        state_dict[prefix + 'classifier.weight'] = torch.zeros(3, 2)
        state_dict[prefix + 'classifier_initialised'] = torch.tensor(
            initialised)
    torch.save({'meta': {'iter': 2}, 'state_dict': state_dict}, path)
    return str(path)


@pytest.fixture
def stage1(tmp_path):
    return save(tmp_path / 'stage1.pth', None)


@pytest.fixture
def stage2(tmp_path):
    return save(tmp_path / 'stage2.pth', 1)


def test_contents_tell_the_stages_apart(tmp_path, stage1, stage2):
    assert read_checkpoint_contents(stage1).stage == 1
    assert read_checkpoint_contents(stage2).stage == 2
    untrained = read_checkpoint_contents(save(tmp_path / 'u.pth', 0))
    assert untrained.has_learner and untrained.stage == 1
    assert read_checkpoint_contents(
        save(tmp_path / 'ddp.pth', 1, ddp=True)).stage == 2


def test_stage2_test_of_a_stage1_checkpoint_is_refused(stage1):
    with pytest.raises(CheckpointMismatchError) as error:
        check_checkpoint_fits(stage1, 2, 'test', config='stage2.py')
    message = str(error.value)
    assert repr(stage1) in message
    assert 'is a stage-1 checkpoint' in message
    assert 'zero_shot.*' in message and 'random' in message
    assert 'stage-2 training' in message and 'stage-1 config' in message
    assert 'stage2.py' in message


def test_untrained_learner_is_refused_for_testing(tmp_path):
    path = save(tmp_path / 'u.pth', 0)
    with pytest.raises(CheckpointMismatchError,
                       match='classifier_initialised is 0'):
        check_checkpoint_fits(path, 2, 'test')


def test_stage1_test_of_a_stage2_checkpoint_says_what_is_ignored(stage2):
    note = check_checkpoint_fits(stage2, 1, 'test')
    assert repr(stage2) in note
    assert 'stage-2 classifier (zero_shot.*) is ignored' in note
    assert 'seen classes only' in note
    assert 'To evaluate PADing, pass the stage-2 config' in note


def test_resume_of_the_other_stage_is_refused(stage1, stage2):
    with pytest.raises(CheckpointMismatchError) as error:
        check_checkpoint_fits(stage1, 2, 'resume', source='--resume')
    message = str(error.value)
    assert message.startswith(f'--resume: checkpoint {stage1!r}')
    assert f'--cfg-options load_from={stage1}' in message
    with pytest.raises(CheckpointMismatchError,
                       match='is a stage-2 .* cannot resume'):
        check_checkpoint_fits(stage2, 1, 'resume')
    with pytest.raises(CheckpointMismatchError,
                       match='work dir /runs/s1 holds a stage-1 run: give '
                       'this run its own --work-dir'):
        check_checkpoint_fits(stage1, 2, 'resume', work_dir='/runs/s1')


def test_fitting_uses_pass(stage1, stage2):
    assert check_checkpoint_fits(stage1, 2, 'load_from') is None
    assert check_checkpoint_fits(stage1, 1, 'resume') is None
    assert check_checkpoint_fits(stage2, 2, 'resume') is None
    assert check_checkpoint_fits(stage2, 2, 'test') is None
    assert 'not from stage 1' in check_checkpoint_fits(
        stage2, 2, 'load_from')
    assert check_checkpoint_fits('s3://bucket/x.pth', 2, 'test') is None
    with pytest.raises(ValueError, match='use must be one of'):
        check_checkpoint_fits(stage1, 2, 'evaluate')


def test_missing_and_damaged_files_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        check_checkpoint_fits('work_dirs/s1/iter_9.pth', 2, 'load_from',
                              source='load_from')
    message = str(error.value)
    assert "load_from: checkpoint 'work_dirs/s1/iter_9.pth' does not " \
        f'exist (relative to the current folder {tmp_path})' in message
    assert '--cfg-options load_from=PATH' in message
    (tmp_path / 'cut.pth').write_bytes(b'PK\x03\x04 cut short')
    with pytest.raises(CheckpointLoadError, match="'cut.pth'.*truncated"):
        check_checkpoint_fits('cut.pth', 2, 'test')


def test_load_model_refuses_a_stage1_checkpoint_for_stage2(
        tiny_toy_root, stage1_checkpoint):
    cfg = toy_config('pading_toy_stage2', tiny_toy_root)
    with pytest.raises(CheckpointMismatchError,
                       match='is a stage-1 checkpoint'):
        load_model(cfg, stage1_checkpoint)
    model = load_model(toy_config('pading_toy_stage1', tiny_toy_root),
                       stage1_checkpoint)
    assert type(model).__name__ == 'Mask2Former' and not model.training


def learner_only(path) -> str:
    """What a stage-2 run from a feature cache saves: stage 1's classifier
    and the trained learner, no segmenter."""
    torch.save({'meta': {'iter': 2}, 'state_dict': {
        'cls_embed.weight': torch.zeros(3, 2),
        'zero_shot.classifier.weight': torch.zeros(3, 2),
        'zero_shot.classifier_initialised': torch.tensor(1)}}, path)
    return str(path)


def test_a_learner_only_checkpoint_is_refused_where_a_segmenter_is_needed(
        tmp_path, stage2):
    path = learner_only(tmp_path / 'cached.pth')
    contents = read_checkpoint_contents(path)
    assert contents.stage == 2 and not contents.has_segmenter
    assert read_checkpoint_contents(stage2).has_segmenter
    for use in ('test', 'load_from', 'resume'):
        with pytest.raises(CheckpointMismatchError) as error:
            check_checkpoint_fits(path, 2, use)
        message = str(error.value)
        assert repr(path) in message and 'random segmenter' in message
        assert 'merge_cached_learner.py' in message
    # Its own model (PADingFromCache) has no segmenter to load.
    assert check_checkpoint_fits(path, 2, 'resume',
                                 needs_segmenter=False) is None


def test_load_model_refuses_a_learner_only_checkpoint(tmp_path,
                                                       tiny_toy_root):
    path = learner_only(tmp_path / 'cached.pth')
    cfg = toy_config('pading_toy_stage2', tiny_toy_root)
    with pytest.raises(ValueError, match='random segmenter'):
        load_model(cfg, path)
