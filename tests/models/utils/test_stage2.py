"""Stage 2 on two DDP processes equals stage 2 on one (CPU, gloo).

A stub detector (a segmenter that hands over given query embeddings and
matched labels) runs PADing's own ``train_step`` and the stage-2 functions
it calls (``mmpading/models/utils/stage2.py``): on one process with the 12
images of an iteration, and on two gloo processes with 7 and 5 of them (an
uneven split, as 12 images on 8 GPUs give), the learner wrapped by
``MMSeparateDistributedDataParallel`` as the configs do. The random draws
are made equal: no generator noise, no dropout, zero noise for the
disentanglement KL; the unseen classes of the classifier step are drawn
from the same seed (on rank 0 under DDP).
"""
import json
import socket
from unittest import mock

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.model import BaseModel, MMSeparateDistributedDataParallel
from torch import nn

import mmpading  # noqa: F401  (registries)
from mmpading.datasets.class_embeddings import save_class_embeddings
from mmpading.datasets.splits import ZeroShotSplit, save_split
from mmpading.engine.optimizers import PADingOptimWrapperConstructor
from mmpading.models import PADing
from mmpading.models.learners.zero_shot_learner import unwrap_learner
from mmpading.models.utils.query_features import QueryFeatures
from mmpading.models.utils.stage2 import setup_stage2

CLASS_NAMES = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
SEEN = ('a', 'c', 'd', 'f', 'g')
UNSEEN = ('b', 'e')
SEEN_IDS = [0, 2, 3, 5, 6]
NUM_CLASSES = len(CLASS_NAMES)
NUM_QUERIES, FEAT_DIM, SEMANTIC_DIM = 5, 16, 6
IMAGES_PER_ITER, ITERS = 12, 2
# Images of an iteration per rank: uneven on purpose.
RANK_IMAGES = (7, 5)


class QueryHandover(nn.Module):
    """Stands in for the frozen head: only its ``cls_embed`` is used."""

    train_cfg = None  # the training assigner: no matching of its own

    def __init__(self) -> None:
        super().__init__()
        self.cls_embed = nn.Linear(FEAT_DIM, NUM_CLASSES + 1)


class StubDetector(BaseModel):
    """Set up as PADing is; the batch's data are the query features."""

    num_classes = NUM_CLASSES
    train_step = PADing.train_step

    def __init__(self, zero_shot: dict) -> None:
        super().__init__()
        self.panoptic_head = QueryHandover()
        setup_stage2(self, self.panoptic_head, zero_shot,
                     query_class_cost=None, segmenter_amp=True,
                     class_count_keys='NUM_CLASSES')
        self.stage1_checkpoint_loaded = True

    @property
    def learner(self):
        return unwrap_learner(self.zero_shot)

    def frozen_query_features(self, data: dict) -> QueryFeatures:
        return QueryFeatures(data['inputs'], data['data_samples'],
                             NUM_CLASSES)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        raise NotImplementedError('only train_step is used')


def learner_cfg(files: dict, cross_rank_losses: bool) -> dict:
    return dict(
        class_names=CLASS_NAMES,
        classifier=dict(type='Linear'),
        generator=dict(
            type='PrimitiveGenerator', num_primitives=8, num_heads=2,
            ffn_dim=32, dropout=0.0, with_noise=False),
        disentangle_head=dict(
            type='DisentangleHead', hidden_dim=16, dropout=0.0),
        relation_align_loss=dict(type='RelationAlignLoss'),
        # Large enough that A and D move the weights visibly.
        lambda_weight=0.5,
        num_unseen_per_iter=1,
        unseen_class_weight=3.0,
        no_object_weight=0.25,
        cross_rank_losses=cross_rank_losses,
        **files)


# SGD for the generator too (the configs use Adam): Adam divides by the
# gradient's running RMS, so a parameter whose true gradient is zero (the key
# biases of a softmax attention) moves by about lr on float noise, which
# differs between any two summation orders. SGD's updates are the gradients.
OPTIM = dict(
    generator=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
        modules=['zero_shot.generator', 'zero_shot.disentangle_head']),
    classifier=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
        modules=['zero_shot.classifier']))


def make_images():
    """Query embeddings (I, Q, C) and labels (I, Q) of all iterations."""
    rng = np.random.default_rng(0)
    num_images = IMAGES_PER_ITER * ITERS
    embeddings = rng.standard_normal(
        (num_images, NUM_QUERIES, FEAT_DIM)).astype(np.float32)
    labels = np.full((num_images, NUM_QUERIES), NUM_CLASSES)
    for image in range(num_images):
        # 0 to 3 matched segments; none in image 0, and none in rank 1's
        # images of the second iteration (an empty set on one rank).
        no_match = image == 0 or image >= 2 * IMAGES_PER_ITER - RANK_IMAGES[1]
        count = 0 if no_match else rng.integers(1, 4)
        queries = rng.choice(NUM_QUERIES, count, replace=False)
        labels[image, queries] = rng.choice(SEEN_IDS, count)
    return torch.from_numpy(embeddings), torch.from_numpy(labels)


def train(rank: int, world_size: int, port: int, files: dict,
          out_dir: str) -> None:
    """Two stage-2 iterations on this rank's images; results to out_dir."""
    torch.set_num_threads(1)
    if world_size > 1:
        dist.init_process_group(
            'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
            world_size=world_size)
    embeddings, labels = make_images()
    if world_size == 1:
        first, count = 0, IMAGES_PER_ITER
    else:
        first, count = sum(RANK_IMAGES[:rank]), RANK_IMAGES[rank]
    results = {}
    try:
        # Zero noise for the disentanglement KL on every rank.
        with mock.patch('torch.randn_like', torch.zeros_like):
            for cross_rank_losses in (True, False):
                torch.manual_seed(0)
                model = StubDetector(learner_cfg(files, cross_rank_losses))
                model.train()
                wrapped = model
                if world_size > 1:
                    wrapped = MMSeparateDistributedDataParallel(
                        model, broadcast_buffers=False,
                        find_unused_parameters=True)
                optim_wrapper = PADingOptimWrapperConstructor(OPTIM)(wrapped)
                initial = {k: v.tolist() for k, v in
                           model.learner.state_dict().items()}
                logs = []
                for iteration in range(ITERS):
                    start = iteration * IMAGES_PER_ITER + first
                    data = dict(
                        inputs=embeddings[start:start + count],
                        data_samples=labels[start:start + count])
                    log = wrapped.train_step(data, optim_wrapper)
                    logs.append({k: v.item() for k, v in log.items()})
                results[str(cross_rank_losses)] = dict(
                    logs=logs,
                    initial=initial,
                    weights={k: v.tolist() for k, v in
                             model.learner.state_dict().items()})
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    with open(f'{out_dir}/rank{rank}_of{world_size}.json', 'w') as file:
        json.dump(results, file)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Results of 1 process and of each of 2 processes."""
    tmp = tmp_path_factory.mktemp('ddp_stage2')
    split = str(tmp / 'split.json')
    save_split(ZeroShotSplit(name='ddp', seen=SEEN, unseen=UNSEEN), split)
    rng = np.random.default_rng(1)
    embeddings = str(tmp / 'embeddings.json')
    save_class_embeddings(
        embeddings, CLASS_NAMES,
        rng.standard_normal((NUM_CLASSES, SEMANTIC_DIM)).astype(np.float32),
        source='test vectors')
    files = dict(split=split, class_embeddings=embeddings)
    train(0, 1, 0, files, str(tmp))
    mp.spawn(train, args=(2, free_port(), files, str(tmp)), nprocs=2)

    def load(name):
        with open(tmp / f'{name}.json') as file:
            return json.load(file)

    return dict(single=load('rank0_of1'),
                ranks=[load('rank0_of2'), load('rank1_of2')])


def assert_close_dicts(actual: dict, expected: dict, **tolerance) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(
            torch.tensor(actual[key]), torch.tensor(expected[key]),
            msg=lambda message, key=key: f'{key}: {message}', **tolerance)


def test_two_processes_log_the_single_process_losses(runs):
    single = runs['single']['True']['logs']
    assert {'gen.loss_mmd', 'gen.loss_synthetic_cls', 'gen.loss_recon',
            'gen.loss_unrelated_kl', 'gen.loss_relation', 'gen.loss_align',
            'cls.loss_cls'} <= single[0].keys()
    for rank in runs['ranks']:
        for logs, expected in zip(rank['True']['logs'], single):
            assert_close_dicts(logs, expected, rtol=1e-5, atol=1e-6)


def test_two_processes_update_the_weights_as_one(runs):
    single = runs['single']['True']
    for rank in runs['ranks']:
        assert_close_dicts(rank['True']['weights'], single['weights'],
                           rtol=1e-5, atol=1e-6)
    # The comparison has teeth: both optimizers moved their weights, and
    # per-rank losses (cross_rank_losses=False) end elsewhere.
    moved = [key for key, value in single['weights'].items()
             if not np.allclose(value, single['initial'][key])]
    assert 'classifier.weight' in moved
    assert any(key.startswith('generator.') for key in moved)
    assert any(key.startswith('disentangle_head.') for key in moved)
    per_rank = runs['ranks'][0]['False']['weights']
    assert not np.allclose(per_rank['generator.primitives'],
                           single['weights']['generator.primitives'],
                           rtol=1e-5, atol=1e-6)


def test_per_rank_losses_differ_from_the_single_process(runs):
    """With cross_rank_losses=False each rank sees only its own images."""
    single = runs['single']['False']['logs'][0]
    assert runs['single']['True']['logs'][0] == single
    for rank in runs['ranks']:
        own = rank['False']['logs'][0]
        assert abs(own['gen.loss_mmd'] - single['gen.loss_mmd']) > 1e-3
        assert abs(own['cls.loss_cls'] - single['cls.loss_cls']) > 1e-4
