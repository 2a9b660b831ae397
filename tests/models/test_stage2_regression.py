"""Stage 2 keeps its behaviour across refactors: on a fixed batch, the same
losses and the same updated learner weights as the code that wrote
``tests/data/stage2_regression/<config>.json``.

Each case builds a toy stage-2 model from its config, loads a seeded random
stage-1 model into it, builds the optimizers from the config and runs two
``train_step`` calls on one fixed batch of the tiny toy set. The expected
values (every logged loss, and per learner tensor its shape, float64 sum and
L2 norm) were written by the code of commit b5c4ebe, before the stage-2
redesign, with::

    MMPADING_WRITE_EXPECTED=1 python -m pytest \
        tests/models/test_stage2_regression.py

Write them again only for an intended change of behaviour, and say so in
the commit. They were recorded on the classic toy classes (10 things, 5
stuff), the toy default then: the cases run on a tiny toy set of those
classes with the heads sized for them (:data:`CLASSIC_HEADS`).
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import mmpading  # noqa: F401  (registers components)
from mmpading.datasets.toy_generator import (
    CLASSIC_STUFF_CLASSES,
    CLASSIC_THING_CLASSES,
    generate_toy_dataset,
)
from mmpading.utils.config_utils import toy_config

from _helpers import build_with_dataset_meta, tiny_run_options

EXPECTED_DIR = Path(__file__).parents[1] / 'data' / 'stage2_regression'
WRITE = os.environ.get('MMPADING_WRITE_EXPECTED') == '1'
CASES = ['pading_toy_stage2', 'pading_toy_stage2_gmmn',
         'pading_toy_stage2_projection']
BATCH_INDICES = (0, 1, 2, 3)
STEPS = 2
# Float noise of another BLAS, CPU or memory layout, far below any change
# of behaviour: relative for losses and norms; absolute floors for exact
# zeros (losses) and for tensors that hold only noise: the attention key
# biases get an analytically zero gradient (the softmax ignores a shift
# shared by all keys), so after Adam's steps they hold its normalised
# rounding noise, ~1e-6 in norm and different from run to run, where one
# real Adam step moves a tensor by about lr = 5e-4 per element (~1e-2).
RTOL, LOSS_ATOL, TENSOR_ATOL = 1e-5, 1e-9, 1e-4


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# The toy configs' heads for the classic classes (10 + 5, + no-object).
CLASSIC_HEADS = {
    'model.panoptic_head.num_things_classes': len(CLASSIC_THING_CLASSES),
    'model.panoptic_head.num_stuff_classes': len(CLASSIC_STUFF_CLASSES),
    'model.panoptic_head.loss_cls.class_weight':
    [1.0] * (len(CLASSIC_THING_CLASSES) + len(CLASSIC_STUFF_CLASSES)) +
    [0.1],
    'model.panoptic_fusion_head.num_things_classes':
    len(CLASSIC_THING_CLASSES),
    'model.panoptic_fusion_head.num_stuff_classes':
    len(CLASSIC_STUFF_CLASSES),
}


@pytest.fixture(scope='module')
def classic_toy_root(tmp_path_factory) -> str:
    """The tiny toy set of tests/conftest.py with the classic classes."""
    root = tmp_path_factory.mktemp('classic_tiny_toy')
    generate_toy_dataset(
        str(root), seed=0, num_train=16, num_val=6, image_size=64,
        thing_classes=CLASSIC_THING_CLASSES,
        stuff_classes=CLASSIC_STUFF_CLASSES)
    return str(root)


def classic_config(name: str, data_root: str, work_dir: Path):
    return toy_config(name, data_root, str(work_dir), **CLASSIC_HEADS,
                      **tiny_run_options(1))


def run_fixed_batch(name: str, data_root: str, tmp_path: Path) -> dict:
    """Losses and learner statistics after two steps on one batch."""
    from mmdet.registry import DATASETS, MODELS
    init_default_scope('mmdet')
    cfg = classic_config(name, data_root, tmp_path)
    stage1_cfg = classic_config('pading_toy_stage1', data_root, tmp_path)
    seed_everything(0)
    stage1 = MODELS.build(stage1_cfg.model)
    stage1_path = tmp_path / 'stage1.pth'
    torch.save({'state_dict': stage1.state_dict()}, stage1_path)

    seed_everything(1)
    model = build_with_dataset_meta(cfg)
    load_checkpoint(model, str(stage1_path), map_location='cpu',
                    logger='silent')
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)

    seed_everything(2)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in BATCH_INDICES])

    seed_everything(3)
    losses = []
    for _ in range(STEPS):
        log_vars = model.train_step(batch, optim_wrapper)
        losses.append({key: float(value.detach())
                       for key, value in log_vars.items()
                       if not key.startswith('grad_share')})
    tensors = {
        key: [list(value.shape),
              float(value.double().sum()),
              float(value.double().norm())]
        for key, value in model.learner.state_dict().items()
        if value.is_floating_point()
    }
    return dict(losses=losses, tensors=tensors)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize('name', CASES)
def test_stage2_step_matches_the_recorded_behaviour(name, classic_toy_root,
                                                    tmp_path):
    result = run_fixed_batch(name, classic_toy_root, tmp_path)
    expected_file = EXPECTED_DIR / f'{name}.json'
    if WRITE:
        EXPECTED_DIR.mkdir(parents=True, exist_ok=True)
        expected_file.write_text(json.dumps(result, indent=1) + '\n')
    expected = json.loads(expected_file.read_text())

    assert len(result['losses']) == len(expected['losses']) == STEPS
    for step, (got, want) in enumerate(zip(result['losses'],
                                           expected['losses'])):
        assert set(got) == set(want), f'step {step}: logged keys'
        for key in want:
            assert got[key] == pytest.approx(
                want[key], rel=RTOL, abs=LOSS_ATOL), f'step {step}: {key}'
    assert set(result['tensors']) == set(expected['tensors'])
    for key, (shape, total, norm) in expected['tensors'].items():
        got_shape, got_total, got_norm = result['tensors'][key]
        assert got_shape == shape, key
        assert got_total == pytest.approx(total, rel=RTOL,
                                          abs=TENSOR_ATOL), key
        assert got_norm == pytest.approx(norm, rel=RTOL,
                                         abs=TENSOR_ATOL), key


def test_the_recorded_steps_move_the_learner(classic_toy_root, tmp_path):
    """The comparison could fail: the steps change the weights they
    record (a zero learning rate would leave them at the seeded init)."""
    init_default_scope('mmdet')
    cfg = classic_config(CASES[0], classic_toy_root, tmp_path)
    seed_everything(1)
    model = build_with_dataset_meta(cfg)
    initial = {key: float(value.double().norm())
               for key, value in model.learner.state_dict().items()
               if value.is_floating_point()}
    expected = json.loads((EXPECTED_DIR / f'{CASES[0]}.json').read_text())
    moved = [key for key, (_, _, norm) in expected['tensors'].items()
             if key.startswith('generator.')
             and norm != pytest.approx(initial[key], rel=1e-4)]
    assert moved, 'no generator tensor moved in the recorded steps'
