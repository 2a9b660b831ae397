"""The on-disk cache of stage 2's frozen query features.

Stage 2 trains only the learner; the frozen stage-1 segmenter gives the
same class embeddings for the same (augmented) image whatever the learner
does. :func:`~mmpading.apis.feature_cache_builder.build_feature_cache`
runs it once per image and epoch of augmentation and stores, per row, the
last decoder layer's query class embeddings (Q, C) and their matched labels
(Q, ), exactly what ``PADing.frozen_query_features`` gives online.

A cache folder holds:

- ``manifest.json``: :class:`FeatureCacheManifest` (what the rows depend
  on: hashes of the segmenter config, the training data set config, the
  stage-1 checkpoint and the annotation file; the epochs and sizes; how many
  rows are written, for resuming);
- ``embeddings.npy`` (R, Q, C) float16 (or float32) and ``labels.npy``
  (R, Q) int16, memory-mapped; row ``e * N + i`` is image ``i`` of epoch
  ``e``;
- ``cls_embed.npz``: stage 1's ``cls_embed`` (``weight`` (K + 1, C),
  ``bias`` (K + 1, )), which stage 2's classifier starts from;
- ``dataset_meta.json``: the training set's classes and split;
- with a validation pass (mmdet models): ``val_embeddings.npy`` (M, Q, C),
  ``val_mask_logits.npy`` (M, Q, h, w) (the head's last-layer mask logits
  at its output resolution) and ``val_input_shapes.npy`` (M, 4) (the
  batch's padded input size, to which upstream upsamples the masks, and
  the image's ``pad_shape``);
  :class:`CachedSegmenterOutputDataset` pairs them with the validation set's
  ground truth.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

CACHE_FORMAT = 'mmpading.feature_cache/v1'
MANIFEST_FILE = 'manifest.json'
EMBEDDINGS_FILE = 'embeddings.npy'
LABELS_FILE = 'labels.npy'
CLS_EMBED_FILE = 'cls_embed.npz'
DATASET_META_FILE = 'dataset_meta.json'
VAL_EMBEDDINGS_FILE = 'val_embeddings.npy'
VAL_MASK_LOGITS_FILE = 'val_mask_logits.npy'
VAL_INPUT_SHAPES_FILE = 'val_input_shapes.npy'
CACHE_DTYPES = ('float16', 'float32')
REBUILD_FIX = ('rebuild it with tools/misc/build_feature_cache.py into '
               'another folder (nothing is deleted)')


class FeatureCacheError(ValueError):
    """A cache folder that is missing, incomplete, foreign or stale."""


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def config_sha256(value: Any) -> str:
    """SHA-256 of a config fragment, independent of key order."""
    text = json.dumps(value, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class FeatureCacheManifest:
    """What a feature cache holds and what it was computed from.

    Attributes:
        format (str): :data:`CACHE_FORMAT`.
        config (str): The stage-2 config the cache was built for.
        segmenter_sha256 (str): Hash of the model config without the
            learner (``zero_shot``): the frozen forward and the matching.
        dataset_sha256 (str): Hash of the training data set config
            (annotation file, split, pipeline).
        checkpoint_sha256 (str): Hash of the stage-1 checkpoint file.
        annotations_sha256 (str): Hash of the training annotation file
            ('' when the data set has none).
        seed (int): Seed of the augmentation draws.
        epochs (int): Passes E over the training set.
        num_images (int): Images N per pass.
        num_queries (int): Queries Q per image.
        feat_dim (int): Class-embedding width C.
        num_classes (int): Classes K (label K: no-object).
        dtype (str): Storage type of the embeddings (:data:`CACHE_DTYPES`).
        val_dataset_sha256 (str): Hash of the validation data set config
            ('' without a validation pass).
        num_val_images (int): Validation images M (0: none cached).
        mask_size (list[int]): (h, w) of the cached mask logits.
        rows_done (int): Training rows written so far (E x N when
            complete).
        val_rows_done (int): Validation rows written so far.
    """
    format: str
    config: str
    segmenter_sha256: str
    dataset_sha256: str
    checkpoint_sha256: str
    annotations_sha256: str
    seed: int
    epochs: int
    num_images: int
    num_queries: int
    feat_dim: int
    num_classes: int
    dtype: str
    val_dataset_sha256: str = ''
    num_val_images: int = 0
    mask_size: list[int] = field(default_factory=list)
    rows_done: int = 0
    val_rows_done: int = 0

    @property
    def num_rows(self) -> int:
        """E x N."""
        return self.epochs * self.num_images

    @property
    def complete(self) -> bool:
        """All training and validation rows are written."""
        return self.rows_done == self.num_rows and \
            self.val_rows_done == self.num_val_images

    def save(self, folder: str) -> None:
        """Write ``manifest.json`` atomically (an interrupted write leaves
        the previous one)."""
        path = osp.join(folder, MANIFEST_FILE)
        with open(path + '.tmp', 'w') as f:
            json.dump(asdict(self), f, indent=1)
        os.replace(path + '.tmp', path)

    @classmethod
    def load(cls, folder: str) -> FeatureCacheManifest:
        """Read a cache folder's manifest.

        Raises:
            FeatureCacheError: No folder or manifest, a manifest of
                another format, or one that cannot be read.
        """
        path = osp.join(folder, MANIFEST_FILE)
        if not osp.isfile(path):
            raise FeatureCacheError(
                f'{folder!r} is not a feature cache (no {MANIFEST_FILE}); '
                'build one with tools/misc/build_feature_cache.py')
        try:
            with open(path) as f:
                content = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            raise FeatureCacheError(
                f'cannot read {path!r} ({error}); {REBUILD_FIX}') from None
        if not isinstance(content, dict) or \
                content.get('format') != CACHE_FORMAT:
            found = content.get('format') if isinstance(content,
                                                        dict) else None
            raise FeatureCacheError(
                f'{path!r} is not a {CACHE_FORMAT} manifest (format '
                f'{found!r}); {REBUILD_FIX}')
        names = {field.name for field in fields(cls)}
        missing = sorted(names - set(content) - OPTIONAL_FIELDS)
        if missing:
            raise FeatureCacheError(
                f'{path!r} lacks {", ".join(missing)}; {REBUILD_FIX}')
        return cls(**{key: content[key] for key in names if key in content})

    def differences(self, other: FeatureCacheManifest) -> list[str]:
        """The fields (other than ``rows_done``) in which two differ."""
        return [
            f'{field.name}: {getattr(self, field.name)!r} in the cache, '
            f'{getattr(other, field.name)!r} now' for field in fields(self)
            if field.name not in ('rows_done', 'val_rows_done')
            and getattr(self, field.name) != getattr(other, field.name)
        ]


# Fields a manifest may lack (they have defaults).
OPTIONAL_FIELDS = {
    'rows_done', 'val_rows_done', 'val_dataset_sha256', 'num_val_images',
    'mask_size'
}


def open_rows(folder: str, manifest: FeatureCacheManifest,
              mode: str) -> tuple[np.memmap, np.memmap]:
    """The cache's embedding and label arrays, memory-mapped.

    Args:
        folder (str): The cache folder.
        manifest (FeatureCacheManifest): Its manifest (gives the shapes).
        mode (str): ``'r'`` to read, ``'r+'`` to write into existing
            files, ``'w+'`` to create them.
    """
    embeddings_path = osp.join(folder, EMBEDDINGS_FILE)
    labels_path = osp.join(folder, LABELS_FILE)
    if mode == 'w+':
        shape = (manifest.num_rows, manifest.num_queries, manifest.feat_dim)
        embeddings = np.lib.format.open_memmap(
            embeddings_path, mode='w+', dtype=manifest.dtype, shape=shape)
        labels = np.lib.format.open_memmap(
            labels_path, mode='w+', dtype=np.int16, shape=shape[:2])
        return embeddings, labels
    for path in (embeddings_path, labels_path):
        if not osp.isfile(path):
            raise FeatureCacheError(f'{path!r} is missing; {REBUILD_FIX}')
    embeddings = np.load(embeddings_path, mmap_mode=mode)
    labels = np.load(labels_path, mmap_mode=mode)
    expected = (manifest.num_rows, manifest.num_queries, manifest.feat_dim)
    if embeddings.shape != expected or labels.shape != expected[:2]:
        raise FeatureCacheError(
            f'{folder!r}: arrays of shapes {embeddings.shape} and '
            f'{labels.shape}, but its manifest says {expected}; '
            f'{REBUILD_FIX}')
    return embeddings, labels


def open_val_rows(folder: str, manifest: FeatureCacheManifest,
                  mode: str) -> tuple[np.memmap, np.memmap, np.memmap]:
    """The validation embeddings, mask logits and input shapes.

    Args:
        folder (str): The cache folder.
        manifest (FeatureCacheManifest): Its manifest, with
            ``num_val_images`` and ``mask_size`` set.
        mode (str): As for :func:`open_rows`.
    """
    num, queries = manifest.num_val_images, manifest.num_queries
    shapes = {
        VAL_EMBEDDINGS_FILE: ((num, queries, manifest.feat_dim),
                              manifest.dtype),
        VAL_MASK_LOGITS_FILE: ((num, queries, *manifest.mask_size),
                               manifest.dtype),
        VAL_INPUT_SHAPES_FILE: ((num, 4), np.int32),
    }
    arrays = []
    for name, (shape, dtype) in shapes.items():
        path = osp.join(folder, name)
        if mode == 'w+':
            arrays.append(np.lib.format.open_memmap(
                path, mode='w+', dtype=dtype, shape=shape))
            continue
        if not osp.isfile(path):
            raise FeatureCacheError(f'{path!r} is missing; {REBUILD_FIX}')
        array = np.load(path, mmap_mode=mode)
        if array.shape != shape:
            raise FeatureCacheError(
                f'{path!r} has shape {array.shape}, its manifest says '
                f'{shape}; {REBUILD_FIX}')
        arrays.append(array)
    return tuple(arrays)


def load_cls_embed(folder: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1's ``cls_embed`` weight (K + 1, C) and bias (K + 1, )."""
    path = osp.join(folder, CLS_EMBED_FILE)
    if not osp.isfile(path):
        raise FeatureCacheError(f'{path!r} is missing; {REBUILD_FIX}')
    with np.load(path) as content:
        return (torch.from_numpy(content['weight'].copy()),
                torch.from_numpy(content['bias'].copy()))


def load_dataset_meta(folder: str) -> dict:
    """The training set's metainfo (classes, split) the cache was built
    from."""
    path = osp.join(folder, DATASET_META_FILE)
    if not osp.isfile(path):
        raise FeatureCacheError(f'{path!r} is missing; {REBUILD_FIX}')
    with open(path) as f:
        meta = json.load(f)
    # JSON has no tuples; metainfo keeps class lists as tuples.
    return {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in meta.items()
    }


def load_complete_manifest(folder: str) -> FeatureCacheManifest:
    """The manifest of a finished cache.

    Raises:
        FeatureCacheError: The cache is unreadable or unfinished.
    """
    manifest = FeatureCacheManifest.load(folder)
    if not manifest.complete:
        raise FeatureCacheError(
            f'{folder!r} is unfinished ({manifest.rows_done} of '
            f'{manifest.num_rows} rows): run tools/misc/build_feature_'
            'cache.py again with the same arguments to complete it')
    return manifest


def check_cache_matches(folder: str, expected: Mapping[str, Any]) -> None:
    """Refuse a cache built from another segmenter, checkpoint or data.

    Args:
        folder (str): The cache folder.
        expected (Mapping): Manifest fields the cache must have, e.g.
            ``segmenter_sha256`` and ``checkpoint_sha256`` computed from
            the config and checkpoint at hand.

    Raises:
        FeatureCacheError: Naming each field that differs.
    """
    manifest = load_complete_manifest(folder)
    stale = [
        f'{key}: {getattr(manifest, key)!r} in the cache, {value!r} now'
        for key, value in expected.items() if getattr(manifest, key) != value
    ]
    if stale:
        raise FeatureCacheError(
            f'the feature cache {folder!r} was built from something else: '
            + '; '.join(stale) + f'. Use the cache of this config, or '
            f'{REBUILD_FIX}.')
