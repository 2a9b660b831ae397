"""Build a feature cache, and the stage-2 config that trains from it.

:func:`build_feature_cache` runs the frozen stage-1 segmenter of a stage-2
config over its training set ``epochs`` times, with the training
pipeline's augmentation, and stores what ``PADing.frozen_query_features``
gives (:mod:`mmpading.datasets.feature_cache`). :func:`cached_stage2_config`
turns the stage-2 config (any learner variant of the same segmenter and
data) into one that trains the same learner from the cache
(:class:`~mmpading.models.PADingFromCache`), with the same optimizers,
schedule, hooks and Runner. :func:`merge_learner_checkpoint` puts the
trained learner next to the stage-1 segmenter, for ``tools/test.py`` with
the stage-2 config.
"""
from __future__ import annotations

import copy
import json
import os
import os.path as osp
import random
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint
from mmengine.utils import ProgressBar

from mmpading.datasets.class_count_checks import head_class_counts
from mmpading.datasets.feature_cache import (
    CACHE_DTYPES,
    CACHE_FORMAT,
    CLS_EMBED_FILE,
    DATASET_META_FILE,
    FeatureCacheError,
    FeatureCacheManifest,
    config_sha256,
    file_sha256,
    load_complete_manifest,
    open_rows,
    open_val_rows,
)
from mmpading.datasets.training_checks import check_zero_shot_training_data
from mmpading.models.utils.query_features import record_class_embeddings
from mmpading.models.utils.stage2 import set_dataset_meta
from mmpading.utils.compat import load_from_local

from .model_loading import _registries, config_dataset_meta


def cache_identity(cfg: Config, checkpoint: str) -> dict:
    """The manifest fields that tie a cache to a config and checkpoint.

    The learner (``model.zero_shot``) is left out: every learner variant
    of one segmenter and training set shares the cache.
    """
    return dict(config_identity(cfg),
                checkpoint_sha256=file_sha256(checkpoint))


def config_identity(cfg: Config) -> dict:
    """The config's part of :func:`cache_identity`: hashes of its segmenter,
    training set and annotation file (two configs with equal ones share a
    cache of one checkpoint)."""
    segmenter = {
        key: value
        for key, value in cfg.model.to_dict().items()
        if key not in ('zero_shot', 'type')
    }
    dataset = cfg.train_dataloader.dataset.to_dict()
    ann_file = dataset.get('ann_file') or ''
    if ann_file and not osp.isabs(ann_file):
        ann_file = osp.join(dataset.get('data_root') or '', ann_file)
    return dict(
        segmenter_sha256=config_sha256(segmenter),
        dataset_sha256=config_sha256(dataset),
        annotations_sha256=file_sha256(ann_file)
        if osp.isfile(ann_file) else '')


def schedule_epochs(cfg: Config, num_images: int) -> int:
    """Passes over the training set that the config's schedule makes:
    ceil(max_iters x batch size / N) (ZSP: 20,000 x 12 over 45,617
    images, 6)."""
    draws = cfg.train_cfg.max_iters * cfg.train_dataloader.batch_size
    return max(1, -(-draws // num_images))


def seed_row(seed: int, row: int) -> None:
    """Seed the global generators for one row's augmentation (and one
    batch's matching), so that a resumed build repeats an uninterrupted
    one."""
    value = (seed * 1_000_003 + row) % (2**32)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def build_feature_cache(cfg: Config,
                        checkpoint: str,
                        cache_dir: str,
                        epochs: int | None = None,
                        seed: int = 0,
                        batch_size: int = 8,
                        dtype: str = 'float16',
                        device: str = 'cpu',
                        amp: bool = False,
                        progress: bool = True,
                        config_name: str = '',
                        val: bool = True) -> FeatureCacheManifest:
    """Cache the frozen query features of a stage-2 config's training set.

    Row ``e * N + i`` holds image ``i`` of pass ``e`` through the training
    pipeline (its random augmentation seeded by the row); a batch of rows
    is matched as one batch of online training (toy and COCO configs pad
    to a fixed size, so a batch's neighbours do not change an image's
    features). An unfinished cache with the same manifest resumes where it
    stopped; one built from another config, checkpoint or data is refused.

    Args:
        cfg (Config): A stage-2 config (``PADing`` or ``PADingSegmentor``).
        checkpoint (str): Its stage-1 checkpoint (or a stage-2 one: the
            segmenter is the same).
        cache_dir (str): Output folder.
        epochs (int, optional): Passes E over the training set. None: as
            many as the config's schedule draws images
            (:func:`schedule_epochs`).
        seed (int): Seed of the augmentation draws.
        batch_size (int): Images per frozen forward.
        dtype (str): ``'float16'`` (half the disk) or ``'float32'``.
        device (str): Device of the frozen forward.
        amp (bool): Run the frozen forward under autocast (as ``--amp``
            training does).
        progress (bool): Show a progress bar.
        config_name (str): Recorded in the manifest.
        val (bool): Also cache the frozen segmenter's outputs on the
            validation set (``val_dataloader``; mmdet models), for
            evaluation from the cache.

    Returns:
        FeatureCacheManifest: The finished cache's manifest.

    Raises:
        FeatureCacheError: ``cache_dir`` holds another cache, or a
            non-cache folder with files.
    """
    if (epochs is not None and epochs < 1) or batch_size < 1:
        raise ValueError(f'epochs and batch_size must be >= 1, got '
                         f'{epochs} and {batch_size}')
    if dtype not in CACHE_DTYPES:
        raise ValueError(f'dtype must be one of {CACHE_DTYPES}, got '
                         f'{dtype!r}')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} not found')
    check_zero_shot_training_data(cfg)
    registries = _registries(cfg)
    model = registries.MODELS.build(cfg.model)
    if not hasattr(model, 'frozen_query_features'):
        raise ValueError(
            f'{config_name or "the config"} is not a stage-2 config (its '
            f"model {cfg.model.type!r} is not PADing's): build the cache "
            'from the stage-2 config')
    dataset_meta = config_dataset_meta(cfg, 'train')
    set_dataset_meta(model, dataset_meta)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    if not model.stage1_checkpoint_loaded:
        raise ValueError(f'{checkpoint!r} holds no segmenter weights of '
                         'this config')
    model.to(device).eval()
    dataset = registries.DATASETS.build(cfg.train_dataloader.dataset)
    head = model.segmenter_head
    if epochs is None:
        epochs = schedule_epochs(cfg, len(dataset))
    val_set, val_fields = None, {}
    if val:
        if not hasattr(model, 'panoptic_head'):
            raise ValueError(
                'a validation pass is cached for mmdet models (PADing) '
                'only; build the cache of this config with val=False '
                '(--no-val)')
        val_set = registries.DATASETS.build(cfg.val_dataloader.dataset)
        probe = _segmenter_outputs(model, [val_set[0]], amp, device)
        val_fields = dict(
            val_dataset_sha256=config_sha256(
                cfg.val_dataloader.dataset.to_dict()),
            num_val_images=len(val_set),
            mask_size=list(probe[1].shape[-2:]))
    manifest = FeatureCacheManifest(
        format=CACHE_FORMAT,
        config=config_name,
        seed=seed,
        epochs=epochs,
        num_images=len(dataset),
        num_queries=head.num_queries,
        feat_dim=head.cls_embed.in_features,
        num_classes=model.learner.num_classes,
        dtype=dtype,
        **val_fields,
        **cache_identity(cfg, checkpoint))
    manifest = _start_or_resume(cache_dir, manifest, batch_size)
    if manifest.complete:
        return manifest
    fresh = manifest.rows_done == 0 and manifest.val_rows_done == 0
    if fresh:
        _write_side_files(cache_dir, head.cls_embed, dataset_meta)
    embeddings, labels = open_rows(cache_dir, manifest,
                                   'w+' if fresh else 'r+')
    val_arrays = None if val_set is None else open_val_rows(
        cache_dir, manifest, 'w+' if fresh else 'r+')
    autocast = (torch.autocast(torch.device(device).type)
                if amp else nullcontext())
    bar = ProgressBar(manifest.num_rows - manifest.rows_done +
                      manifest.num_val_images - manifest.val_rows_done) \
        if progress else None

    def advance(count: int) -> None:
        for _ in range(count if bar is not None else 0):
            bar.update()

    for start in range(manifest.rows_done, manifest.num_rows, batch_size):
        rows = range(start, min(start + batch_size, manifest.num_rows))
        samples = []
        for row in rows:
            seed_row(seed, row)
            samples.append(dataset[row % manifest.num_images])
        seed_row(seed, start)
        data = model.data_preprocessor(pseudo_collate(samples), True)
        with autocast:
            features = model.frozen_query_features(data)
        embeddings[rows.start:rows.stop] = \
            features.embeddings.float().cpu().numpy().astype(dtype)
        labels[rows.start:rows.stop] = features.labels.cpu().numpy()
        embeddings.flush()
        labels.flush()
        manifest.rows_done = rows.stop
        manifest.save(cache_dir)
        advance(len(rows))
    if val_arrays is not None:
        val_batch = cfg.val_dataloader.get('batch_size', 1)
        for start in range(manifest.val_rows_done, manifest.num_val_images,
                           val_batch):
            rows = range(start,
                         min(start + val_batch, manifest.num_val_images))
            outputs = _segmenter_outputs(
                model, [val_set[row] for row in rows], amp, device)
            if list(outputs[1].shape[-2:]) != manifest.mask_size:
                raise FeatureCacheError(
                    f'validation images {rows.start}-{rows.stop - 1} give '
                    f'mask logits of {tuple(outputs[1].shape[-2:])}, the '
                    f'first {tuple(manifest.mask_size)}: a cache holds '
                    'validation outputs of one size only; build it with '
                    '--no-val (val=False) and evaluate online')
            for array, values in zip(val_arrays, outputs):
                array[rows.start:rows.stop] = values
                array.flush()
            manifest.val_rows_done = rows.stop
            manifest.save(cache_dir)
            advance(len(rows))
    if bar is not None:
        print(flush=True)
    return manifest


@torch.no_grad()
def _segmenter_outputs(model: torch.nn.Module, samples: list[dict],
                       amp: bool,
                       device: str) -> tuple[np.ndarray, np.ndarray,
                                             np.ndarray]:
    """What evaluation needs of the frozen segmenter, for one batch.

    Returns:
        tuple: last-layer class embeddings (B, Q, C) and mask logits
        (B, Q, h, w), both float32, and per image its batch's input size
        and its pad shape (B, 4).
    """
    data = model.data_preprocessor(pseudo_collate(samples), False)
    head = model.panoptic_head
    with (torch.autocast(torch.device(device).type) if amp else
          nullcontext()):
        feats = model.extract_feat(data['inputs'])
        with record_class_embeddings(head.cls_embed) as embeddings:
            _, mask_preds = head(feats, data['data_samples'])
    shapes = np.array([
        [*sample.metainfo['batch_input_shape'], *sample.metainfo['pad_shape']]
        for sample in data['data_samples']
    ], dtype=np.int32)
    return (embeddings[-1].float().cpu().numpy(),
            mask_preds[-1].float().cpu().numpy(), shapes)


def _start_or_resume(cache_dir: str, manifest: FeatureCacheManifest,
                     batch_size: int) -> FeatureCacheManifest:
    """The manifest to continue from: a new one, or the folder's own."""
    batch_file = osp.join(cache_dir, 'build_batch_size.txt')
    if osp.isfile(osp.join(cache_dir, 'manifest.json')):
        existing = FeatureCacheManifest.load(cache_dir)
        differences = existing.differences(manifest)
        if differences:
            raise FeatureCacheError(
                f'{cache_dir!r} holds a cache of something else: '
                + '; '.join(differences) + '. Build into another folder '
                '(nothing is deleted).')
        with open(batch_file) as f:
            built_with = int(f.read())
        if not existing.complete and built_with != batch_size:
            raise FeatureCacheError(
                f'{cache_dir!r} was started with batch_size {built_with}; '
                f'resume it with the same (got {batch_size})')
        return existing
    if osp.isdir(cache_dir) and os.listdir(cache_dir):
        raise FeatureCacheError(
            f'{cache_dir!r} holds files but no feature cache; build into '
            'an empty or new folder (nothing is deleted)')
    os.makedirs(cache_dir, exist_ok=True)
    with open(batch_file, 'w') as f:
        f.write(str(batch_size))
    manifest.save(cache_dir)
    return manifest


def _write_side_files(cache_dir: str, cls_embed: torch.nn.Linear,
                      dataset_meta: dict) -> None:
    np.savez(
        osp.join(cache_dir, CLS_EMBED_FILE),
        weight=cls_embed.weight.detach().float().cpu().numpy(),
        bias=cls_embed.bias.detach().float().cpu().numpy())
    with open(osp.join(cache_dir, DATASET_META_FILE), 'w') as f:
        json.dump({
            key: dataset_meta[key]
            for key in ('classes', 'zero_shot_split', 'seen_classes',
                        'unseen_classes') if key in dataset_meta
        }, f, indent=1, default=list)


def cached_stage2_config(cfg: Config, cache_dir: str,
                         checkpoint: str | None = None) -> Config:
    """The stage-2 config, trained and evaluated from a feature cache.

    The learner, optimizers, schedule, hooks, training loop, fusion head
    and metrics stay the config's; the model becomes
    :class:`~mmpading.models.PADingFromCache`, the training set the cache's
    rows (shuffled, the config's batch size) and, when the cache has a
    validation pass, the validation and test sets its outputs on the
    validation set (without one, evaluation is left out: merge the trained
    learner with the stage-1 checkpoint, :func:`merge_learner_checkpoint`,
    and test it with the stage-2 config).

    Args:
        cfg (Config): A stage-2 config.
        cache_dir (str): A finished cache of this config.
        checkpoint (str, optional): The stage-1 checkpoint; when given,
            the cache must have been built from it (and from this config's
            segmenter and data).

    Raises:
        FeatureCacheError: The cache is unfinished, or was built from
            something else.
    """
    cfg = copy.deepcopy(cfg)
    model_cfg = cfg.model
    manifest = load_complete_manifest(cache_dir)
    expected = None
    if checkpoint is not None:
        expected = cache_identity(cfg, checkpoint)
    # The data preprocessor is stated: mmengine's Runner would give the
    # model the config's top-level (image) one.
    cfg.model = dict(
        type='PADingFromCache', cache_dir=cache_dir,
        zero_shot=cfg.model.zero_shot,
        panoptic_fusion_head=cfg.model.get('panoptic_fusion_head'),
        test_cfg=cfg.model.get('test_cfg'),
        data_preprocessor=dict(type='BaseDataPreprocessor'))
    head_counts = head_class_counts(model_cfg)[1]
    if head_counts and sum(head_counts.values()) != manifest.num_classes:
        # A class set extended after training (mmpading.apis.
        # class_extension): evaluated on the cache, never trained on it.
        cfg.model['num_classes'] = sum(head_counts.values())
    cfg.train_dataloader = dict(
        batch_size=cfg.train_dataloader.batch_size,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='CachedQueryFeatureDataset', cache_dir=cache_dir,
                     expected=expected))
    cfg.load_from = None
    if manifest.num_val_images == 0:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
        return cfg
    for key in ('val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is None:
            continue
        cfg[key] = dict(
            batch_size=loader.get('batch_size', 1),
            num_workers=0,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            dataset=dict(type='CachedSegmenterOutputDataset',
                         cache_dir=cache_dir, dataset=loader.dataset))
    return cfg


def merge_learner_checkpoint(stage1_checkpoint: str, cached_checkpoint: str,
                             out: str,
                             saver: Callable | None = None) -> str:
    """The stage-1 segmenter with the learner trained from the cache.

    Args:
        stage1_checkpoint (str): The checkpoint the cache was built from.
        cached_checkpoint (str): A checkpoint of a
            :class:`~mmpading.models.PADingFromCache` run.
        out (str): The merged checkpoint, a stage-2 checkpoint of the
            stage-2 config (it must not exist: nothing is overwritten).
        saver (Callable, optional): ``torch.save`` by default.

    Returns:
        str: ``out``.
    """
    if osp.exists(out):
        raise FileExistsError(f'{out!r} exists; nothing is overwritten')
    stage1 = load_from_local(stage1_checkpoint, map_location='cpu')
    cached = load_from_local(cached_checkpoint, map_location='cpu')
    state = dict(stage1.get('state_dict', stage1))
    if not any(key.startswith('backbone.') for key in state):
        raise ValueError(f'{stage1_checkpoint!r} holds no segmenter weights '
                         '(backbone.*): pass the stage-1 checkpoint the '
                         'cache was built from')
    learner = {
        key: value
        for key, value in cached['state_dict'].items()
        if key.startswith('zero_shot.')
    }
    if not learner:
        raise ValueError(f'{cached_checkpoint!r} holds no learner weights '
                         '(zero_shot.*)')
    state.update(learner)
    merged = dict(meta=cached.get('meta', {}), state_dict=state)
    (saver or torch.save)(merged, out)
    return out
