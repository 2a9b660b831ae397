"""train_toy_config: nothing in a used work dir is deleted or mixed up."""
import json

import pytest

from mmpading.apis import WorkDirInUseError, train_toy_config
from mmpading.apis.toy_experiments import RUN_RECORD


def test_a_used_work_dir_is_refused_and_kept(tiny_toy_root, tmp_path):
    work_dir = tmp_path / 'stage1'
    work_dir.mkdir()
    earlier = work_dir / 'iter_600.pth'
    earlier.write_bytes(b'an earlier run')
    with pytest.raises(FileExistsError) as error:
        train_toy_config('pading_toy_stage1', str(work_dir), tiny_toy_root,
                         max_iters=1)
    message = str(error.value)
    assert str(work_dir) in message
    assert 'iter_600.pth' in message
    assert 'reuse=True' in message and '--reuse' in message
    assert 'another work dir' in message
    assert earlier.read_bytes() == b'an earlier run'


def test_a_work_dir_that_is_a_file_is_refused(tiny_toy_root, tmp_path):
    path = tmp_path / 'stage1'
    path.write_text('not a folder')
    with pytest.raises(WorkDirInUseError, match='is a file'):
        train_toy_config('pading_toy_stage1', str(path), tiny_toy_root)
    assert path.read_text() == 'not a folder'


def test_reuse_refuses_a_run_of_another_seed(tiny_toy_root, tmp_path):
    work_dir = tmp_path / 'stage1'
    work_dir.mkdir()
    record = work_dir / RUN_RECORD
    record.write_text(json.dumps(dict(config='pading_toy_stage1', seed=3,
                                      max_iters=1, options={})))
    with pytest.raises(WorkDirInUseError) as error:
        train_toy_config('pading_toy_stage1', str(work_dir), tiny_toy_root,
                         seed=0, max_iters=1, reuse=True)
    message = str(error.value)
    assert str(work_dir) in message
    assert 'seed 3 there, 0 now' in message
    assert json.loads(record.read_text())['seed'] == 3


def test_reuse_refuses_a_checkpoint_past_the_schedule(tiny_toy_root,
                                                      tmp_path):
    work_dir = tmp_path / 'stage1'
    work_dir.mkdir()
    checkpoint = work_dir / 'iter_50.pth'
    checkpoint.write_bytes(b'x')
    (work_dir / 'last_checkpoint').write_text(str(checkpoint))
    with pytest.raises(WorkDirInUseError) as error:
        train_toy_config('pading_toy_stage1', str(work_dir), tiny_toy_root,
                         max_iters=2, reuse=True)
    assert str(checkpoint) in str(error.value)
    assert '2 iterations' in str(error.value)
