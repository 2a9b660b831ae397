"""The feature cache holds what online stage 2 computes, and trains the same
learner the same way."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

import mmpading  # noqa: F401  (registers components)
from mmpading.apis.feature_cache_builder import (
    build_feature_cache,
    cached_stage2_config,
    merge_learner_checkpoint,
    seed_row,
)
from mmpading.datasets import CachedQueryFeatureDataset
from mmpading.datasets.feature_cache import (
    FeatureCacheError,
    FeatureCacheManifest,
    load_dataset_meta,
)
from mmpading.models.utils.query_features import QueryFeatures
from mmpading.registry import MODELS
from mmpading.utils.config_utils import toy_config

from _helpers import build_with_dataset_meta, tiny_run_options

CONFIG = 'pading_toy_stage2'


def stage2_config(root: str, work_dir: Path):
    init_default_scope('mmdet')
    return toy_config(CONFIG, root, str(work_dir), **tiny_run_options(2))


@pytest.fixture(scope='module')
def float32_cache(tiny_toy_root, stage1_checkpoint, tmp_path_factory):
    """Two epochs of the tiny toy set, float32 (exact)."""
    folder = tmp_path_factory.mktemp('cache') / 'float32'
    cfg = stage2_config(tiny_toy_root, tmp_path_factory.mktemp('work'))
    manifest = build_feature_cache(
        cfg, stage1_checkpoint, str(folder), epochs=2, seed=3,
        batch_size=4, dtype='float32', progress=False, config_name=CONFIG)
    return str(folder), manifest


def online_model(root, checkpoint, work_dir):
    cfg = stage2_config(root, work_dir)
    model = build_with_dataset_meta(cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    return cfg, model.eval()


def test_rows_are_the_online_frozen_features(tiny_toy_root,
                                             stage1_checkpoint, tmp_path,
                                             float32_cache):
    folder, manifest = float32_cache
    # 13 of the 16 images show no unseen class (drop_unseen).
    assert (manifest.num_images, manifest.num_rows) == (13, 26)
    assert manifest.complete
    cfg, model = online_model(tiny_toy_root, stage1_checkpoint, tmp_path)
    from mmdet.registry import DATASETS
    train = DATASETS.build(cfg.train_dataloader.dataset)
    cached = CachedQueryFeatureDataset(folder)
    assert len(cached) == manifest.num_rows
    # Rows 20-23: epoch 1, images 7-10, one batch of the build.
    rows = range(20, 24)
    samples = []
    for row in rows:
        seed_row(3, row)
        samples.append(train[row % manifest.num_images])
    seed_row(3, rows.start)
    online = model.frozen_query_features(
        model.data_preprocessor(pseudo_collate(samples), True))
    batch = default_collate([cached[row] for row in rows])
    assert torch.equal(batch['embeddings'], online.embeddings)
    assert torch.equal(batch['labels'], online.labels)
    # Matched queries carry seen classes only (the training set's).
    meta = load_dataset_meta(folder)
    seen = {meta['classes'].index(name) for name in meta['seen_classes']}
    matched = batch['labels'][batch['labels'] != manifest.num_classes]
    assert len(matched) and set(matched.tolist()) <= seen
    # The two epochs saw the images with their own augmentation draws.
    assert cached.metainfo['unseen_classes'] == meta['unseen_classes']


def test_float16_rows_are_the_float32_ones_rounded(
        tiny_toy_root, stage1_checkpoint, tmp_path, float32_cache):
    folder, _ = float32_cache
    half = tmp_path / 'float16'
    cfg = stage2_config(tiny_toy_root, tmp_path)
    build_feature_cache(cfg, stage1_checkpoint, str(half), epochs=2, seed=3,
                        batch_size=4, progress=False, config_name=CONFIG)
    exact = CachedQueryFeatureDataset(folder)
    rounded = CachedQueryFeatureDataset(str(half))
    for row in (0, 17, 25):
        assert torch.equal(rounded[row]['labels'], exact[row]['labels'])
        assert torch.equal(rounded[row]['embeddings'],
                           exact[row]['embeddings'].half().float())


def test_an_interrupted_build_resumes_to_the_same_rows(
        tiny_toy_root, stage1_checkpoint, tmp_path, float32_cache,
        monkeypatch):
    folder, _ = float32_cache
    cfg = stage2_config(tiny_toy_root, tmp_path)
    resumed = tmp_path / 'resumed'
    saves = []
    original = FeatureCacheManifest.save

    def save_then_stop(self, where):
        original(self, where)
        saves.append(self.rows_done)
        if self.rows_done == 12:
            raise KeyboardInterrupt

    monkeypatch.setattr(FeatureCacheManifest, 'save', save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        build_feature_cache(cfg, stage1_checkpoint, str(resumed), epochs=2,
                            seed=3, batch_size=4, dtype='float32',
                            progress=False, config_name=CONFIG)
    monkeypatch.setattr(FeatureCacheManifest, 'save', original)
    assert FeatureCacheManifest.load(str(resumed)).rows_done == 12
    with pytest.raises(FeatureCacheError, match='unfinished'):
        CachedQueryFeatureDataset(str(resumed))
    with pytest.raises(FeatureCacheError, match='batch_size 4'):
        build_feature_cache(cfg, stage1_checkpoint, str(resumed), epochs=2,
                            seed=3, batch_size=8, dtype='float32',
                            progress=False, config_name=CONFIG)
    build_feature_cache(cfg, stage1_checkpoint, str(resumed), epochs=2,
                        seed=3, batch_size=4, dtype='float32',
                        progress=False, config_name=CONFIG)
    for name in ('embeddings.npy', 'labels.npy'):
        assert np.array_equal(np.load(resumed / name),
                              np.load(Path(folder) / name)), name


def test_a_cache_of_something_else_is_refused(tiny_toy_root,
                                              stage1_checkpoint, tmp_path,
                                              float32_cache):
    folder, _ = float32_cache
    cfg = stage2_config(tiny_toy_root, tmp_path)
    # Another seed (or config, checkpoint, data) into the same folder.
    with pytest.raises(FeatureCacheError, match='seed: 3 in the cache, 4'):
        build_feature_cache(cfg, stage1_checkpoint, folder, epochs=2,
                            seed=4, batch_size=4, dtype='float32',
                            progress=False, config_name=CONFIG)
    # Training from it with another segmenter config is refused.
    other = copy.deepcopy(cfg)
    other.model.query_class_cost = 7.0
    cached_cfg = cached_stage2_config(other, folder, stage1_checkpoint)
    with pytest.raises(FeatureCacheError, match='segmenter_sha256'):
        CachedQueryFeatureDataset(**{
            key: value for key, value in
            cached_cfg.train_dataloader.dataset.items() if key != 'type'
        })
    # A folder with other files is not written into.
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('mine')
    with pytest.raises(FeatureCacheError, match='holds files'):
        build_feature_cache(cfg, stage1_checkpoint, str(foreign),
                            progress=False)
    assert (foreign / 'notes.txt').read_text() == 'mine'
    with pytest.raises(FeatureCacheError, match='not a feature cache'):
        CachedQueryFeatureDataset(str(tmp_path / 'nowhere'))


def test_a_cached_iteration_equals_the_online_one(
        tiny_toy_root, stage1_checkpoint, tmp_path, float32_cache,
        monkeypatch):
    """The same learner, optimizers and seed on the same features: the same
    losses and updated weights."""
    folder, manifest = float32_cache
    cfg, online = online_model(tiny_toy_root, stage1_checkpoint, tmp_path)
    cached_cfg = cached_stage2_config(cfg, folder, stage1_checkpoint)
    cached = MODELS.build(cached_cfg.model)
    cached_data = CachedQueryFeatureDataset(folder)
    cached.learner.set_dataset_meta(cached_data.metainfo)
    cached.learner.load_state_dict(online.learner.state_dict())
    rows = [0, 5, 9, 25]
    batch = default_collate([cached_data[row] for row in rows])
    features = copy.deepcopy(batch)
    # Online: PADing.train_step on a real batch, its frozen forward giving
    # these rows.
    monkeypatch.setattr(
        type(online), 'frozen_query_features',
        lambda self, data: QueryFeatures(features['embeddings'],
                                         features['labels'],
                                         self.num_classes))
    from mmdet.registry import DATASETS
    train = DATASETS.build(cfg.train_dataloader.dataset)
    images = pseudo_collate([train[index] for index in range(len(rows))])
    logs = []
    for model, data in ((online, images), (cached, batch)):
        model.train()
        optim_wrapper = build_optim_wrapper(model, copy.deepcopy(
            cfg.optim_wrapper))
        torch.manual_seed(11)
        logs.append(model.train_step(data, optim_wrapper))
    online_log, cached_log = logs
    assert online_log.keys() == cached_log.keys()
    for key in online_log:
        assert torch.equal(online_log[key], cached_log[key]), key
    for (name, a), (_, b) in zip(online.learner.state_dict().items(),
                                 cached.learner.state_dict().items()):
        assert torch.equal(a, b), name
    assert bool(cached.learner.classifier_initialised)


def test_the_runner_trains_from_the_cache_and_merges(
        tiny_toy_root, stage1_checkpoint, tmp_path, float32_cache):
    folder, _ = float32_cache
    cfg = stage2_config(tiny_toy_root, tmp_path / 'work')
    cached_cfg = cached_stage2_config(cfg, folder, stage1_checkpoint)
    cached_cfg.experiment_name = f'cache_{tmp_path.name}'
    cached_cfg.visualizer.name = cached_cfg.experiment_name
    runner = Runner.from_cfg(cached_cfg)
    runner.train()
    checkpoint = tmp_path / 'work' / 'iter_2.pth'
    assert checkpoint.is_file()
    merged = merge_learner_checkpoint(stage1_checkpoint, str(checkpoint),
                                      str(tmp_path / 'merged.pth'))
    with pytest.raises(FileExistsError):
        merge_learner_checkpoint(stage1_checkpoint, str(checkpoint), merged)
    # The merged file is a stage-2 checkpoint of the stage-2 config.
    _, online = online_model(tiny_toy_root, merged, tmp_path)
    assert bool(online.learner.classifier_initialised)
    trained = torch.load(checkpoint, weights_only=False)['state_dict']
    assert torch.equal(online.learner.classifier.weight,
                       trained['zero_shot.classifier.weight'])
    stage1 = torch.load(stage1_checkpoint, weights_only=False)['state_dict']
    assert torch.equal(online.panoptic_head.cls_embed.weight,
                       stage1['panoptic_head.cls_embed.weight'])
    record = json.loads((Path(folder) / 'manifest.json').read_text())
    assert record['epochs'] == 2


@torch.no_grad()
def evaluate(model, loader, cfg) -> dict:
    """What the Runner's test loop computes."""
    from mmengine.evaluator import Evaluator
    evaluator = Evaluator(copy.deepcopy(cfg.val_evaluator))
    evaluator.dataset_meta = loader.dataset.metainfo
    model.eval()
    for data in loader:
        evaluator.process(data_samples=model.test_step(data),
                          data_batch=data)
    return evaluator.evaluate(len(loader.dataset))


def test_cached_evaluation_equals_the_online_one(
        tiny_toy_root, stage1_checkpoint, tmp_path, float32_cache):
    """The same classifier on the cached validation outputs: the same
    panoptic, instance and semantic metrics as online evaluation."""
    folder, manifest = float32_cache
    assert manifest.num_val_images == 6
    cfg, online = online_model(tiny_toy_root, stage1_checkpoint, tmp_path)
    # A classifier that is not stage 1's: its own random weights (seeded),
    # with unseen classes scored too.
    online.learner.init_classifier_from(online.panoptic_head.cls_embed)
    with torch.no_grad():
        torch.manual_seed(5)
        online.learner.classifier.weight.add_(
            0.5 * torch.randn_like(online.learner.classifier.weight))
    cached_cfg = cached_stage2_config(cfg, folder, stage1_checkpoint)
    cached = MODELS.build(cached_cfg.model)
    cached.learner.load_state_dict(online.learner.state_dict())
    online_metrics = evaluate(
        online, Runner.build_dataloader(cfg.val_dataloader), cfg)
    cached_metrics = evaluate(
        cached, Runner.build_dataloader(cached_cfg.val_dataloader), cfg)
    assert online_metrics.keys() == cached_metrics.keys()
    assert any(key.endswith('PQ_unseen') for key in online_metrics)
    for key, value in online_metrics.items():
        assert cached_metrics[key] == value, key
    # The metrics of a 2-iteration segmenter may all be 0, so the outputs
    # they come from are compared too: the same labels, scores and maps.
    labels = set()
    for online_batch, cached_batch in zip(
            Runner.build_dataloader(cfg.val_dataloader),
            Runner.build_dataloader(cached_cfg.val_dataloader)):
        with torch.no_grad():
            pairs = zip(online.test_step(online_batch),
                        cached.test_step(cached_batch))
            for online_sample, cached_sample in pairs:
                for name in ('pred_panoptic_seg', 'pred_sem_seg'):
                    assert torch.equal(online_sample.get(name).sem_seg,
                                       cached_sample.get(name).sem_seg)
                ours, theirs = (online_sample.pred_instances,
                                cached_sample.pred_instances)
                assert torch.equal(ours.labels, theirs.labels)
                assert torch.equal(ours.scores, theirs.scores)
                assert torch.equal(ours.masks, theirs.masks)
                labels.update(ours.labels.tolist())
    assert len(labels) > 1  # the random classifier labels queries apart
