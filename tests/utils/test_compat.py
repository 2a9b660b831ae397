"""mmengine checkpoints load again on torch >= 2.6, safely."""
import pickle
import zipfile

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmpading  # noqa: F401  (applies the compat layer)
from mmpading.utils.compat import (
    TRUST_ENV,
    CheckpointLoadError,
    load_from_local,
)


class TinyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, inputs, targets, mode='tensor'):
        outputs = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((outputs - torch.stack(targets))**2).mean())
        return outputs


class RandomPairs(Dataset):

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        return dict(inputs=torch.randn(4, generator=generator),
                    targets=torch.randn(1, generator=generator))


def make_runner(work_dir, max_iters: int, **kwargs) -> Runner:
    return Runner(
        model=TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=RandomPairs(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=100),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        experiment_name=f'compat_{max_iters}_{id(work_dir)}',
        **kwargs)


@pytest.fixture(scope='module')
def trained_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('first_run')
    runner = make_runner(work_dir, max_iters=2)
    runner.train()
    return work_dir / 'iter_2.pth'


def test_runner_checkpoint_holds_more_than_tensors(trained_checkpoint):
    """The round trip below is meaningful only if plain weights-only
    unpickling would meet non-tensor globals in the file."""
    with zipfile.ZipFile(trained_checkpoint) as archive:
        pickled = [archive.read(name) for name in archive.namelist()
                   if name.endswith('data.pkl')]
    assert len(pickled) == 1
    assert b'HistoryBuffer' in pickled[0]


def test_resume_continues_from_checkpoint(trained_checkpoint, tmp_path):
    first_state = torch.load(trained_checkpoint)['state_dict']
    runner = make_runner(
        tmp_path, max_iters=4, resume=True, load_from=str(trained_checkpoint))
    runner.train()
    assert runner.iter == 4
    resumed_history = runner.message_hub.get_scalar('train/loss')
    # 2 losses logged before the checkpoint + 2 after the resume.
    assert len(resumed_history.data[0]) == 4
    assert not torch.equal(first_state['linear.weight'],
                           runner.model.linear.weight.detach())


def test_checkpoint_loads_with_weights_only(trained_checkpoint):
    """torch's default (weights_only=True) loads the whole checkpoint,
    message hub included, once mmpading is imported."""
    checkpoint = torch.load(trained_checkpoint)
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert len(history.data[0]) == 2
    assert history.mean() == pytest.approx(history.data[0].mean())


def test_statistics_methods_survive_a_pickle_round_trip():
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer([1.0, 2.0, 3.0], [1, 1, 1])
    restored = pickle.loads(pickle.dumps(buffer))
    assert restored.statistics('max') == 3.0
    assert restored.statistics('mean', 2) == pytest.approx(2.5)


def test_load_from_initialises_weights(trained_checkpoint, tmp_path):
    saved = torch.load(trained_checkpoint)['state_dict']
    runner = make_runner(tmp_path, max_iters=2,
                         load_from=str(trained_checkpoint))
    runner.load_or_resume()
    assert runner.iter == 0
    assert torch.equal(saved['linear.weight'], runner.model.linear.weight)


class NotAllowListed:
    pass


def test_unknown_objects_are_still_refused(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'obj': NotAllowListed()}, path)
    # Code outside mmengine's loader keeps torch's safe default.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    with pytest.raises(RuntimeError, match=TRUST_ENV):
        load_from_local(str(path))


def test_trusted_opt_in_loads_anything(tmp_path, monkeypatch):
    path = tmp_path / 'foreign.pth'
    torch.save({'obj': NotAllowListed()}, path)
    monkeypatch.setenv(TRUST_ENV, '1')
    assert isinstance(load_from_local(str(path))['obj'], NotAllowListed)


def test_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_from_local(str(missing))


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'garbage',
                                    'foreign_zip'])
def test_unreadable_checkpoint_names_the_file_and_the_fix(
        trained_checkpoint, tmp_path, damage):
    data = trained_checkpoint.read_bytes()
    path = tmp_path / 'iter_2.pth'
    if damage == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    elif damage == 'empty':
        path.write_bytes(b'')
    elif damage == 'garbage':
        path.write_bytes(b'{"not": "a checkpoint"}\n' * 20)
    else:
        with zipfile.ZipFile(path, 'w') as archive:
            archive.writestr('notes.txt', 'hello')
    (tmp_path / 'iter_1.pth').write_bytes(data)
    for mmap in (False, True):
        with pytest.raises(CheckpointLoadError) as error:
            load_from_local(str(path), map_location='cpu', mmap=mmap)
        message = str(error.value)
        assert repr(str(path)) in message
        assert 'truncated' in message and 'not a PyTorch checkpoint' in \
            message
        # The fix: copy it again or take the other checkpoint beside it.
        assert 'Copy it again' in message and 'iter_1.pth' in message
        assert error.value.__cause__ is None and \
            error.value.__suppress_context__


def test_trusted_loading_of_garbage_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / 'garbage.pth'
    path.write_bytes(b'\x00\x01 not a pickle')
    monkeypatch.setenv(TRUST_ENV, '1')
    with pytest.raises(CheckpointLoadError, match='garbage.pth.*truncated'):
        load_from_local(str(path))


def test_weights_only_refusal_names_the_object(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'obj': NotAllowListed()}, path)
    with pytest.raises(CheckpointLoadError) as error:
        load_from_local(str(path))
    assert 'NotAllowListed' in str(error.value)
    assert 'truncated' not in str(error.value)


def test_other_load_errors_pass_through(trained_checkpoint, monkeypatch):
    """A RuntimeError that is not about the file is not called damage."""

    def cuda_only(*args, **kwargs):
        raise RuntimeError('Attempting to deserialize object on a CUDA '
                           'device but torch.cuda.is_available() is False')

    monkeypatch.setattr(torch, 'load', cuda_only)
    with pytest.raises(RuntimeError, match='CUDA device') as error:
        load_from_local(str(trained_checkpoint))
    assert not isinstance(error.value, CheckpointLoadError)


def test_mmap_loading_reads_the_keys(trained_checkpoint):
    checkpoint = load_from_local(str(trained_checkpoint), 'cpu', mmap=True)
    assert 'linear.weight' in checkpoint['state_dict']
