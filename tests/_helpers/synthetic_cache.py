"""A feature cache written directly, without a segmenter (random rows)."""
from __future__ import annotations

import json
import os
import os.path as osp

import numpy as np

from mmpading.datasets.feature_cache import (
    CACHE_FORMAT,
    CLS_EMBED_FILE,
    DATASET_META_FILE,
    FeatureCacheManifest,
    config_sha256,
    open_rows,
    open_val_rows,
)


def write_synthetic_cache(folder: str, dataset_meta: dict,
                          num_rows: int = 6, num_queries: int = 5,
                          feat_dim: int = 128, seed: int = 0,
                          val_dataset: dict | None = None,
                          num_val_images: int = 0) -> str:
    """A finished cache of random features; seen-class labels only. With
    ``val_dataset`` (a data set config of ``num_val_images`` images),
    random validation outputs too (4 x 4 mask logits)."""
    os.makedirs(folder, exist_ok=True)
    classes = list(dataset_meta['classes'])
    num_classes = len(classes)
    manifest = FeatureCacheManifest(
        format=CACHE_FORMAT, config='synthetic', segmenter_sha256='',
        dataset_sha256='', checkpoint_sha256='', annotations_sha256='',
        seed=seed, epochs=1, num_images=num_rows, num_queries=num_queries,
        feat_dim=feat_dim, num_classes=num_classes, dtype='float16')
    if val_dataset is not None:
        manifest.val_dataset_sha256 = config_sha256(val_dataset)
        manifest.num_val_images = num_val_images
        manifest.mask_size = [4, 4]
    rng = np.random.default_rng(seed)
    embeddings, labels = open_rows(folder, manifest, 'w+')
    embeddings[:] = rng.standard_normal(embeddings.shape)
    seen = [classes.index(name) for name in dataset_meta['seen_classes']]
    labels[:] = rng.choice(seen + [num_classes], size=labels.shape)
    embeddings.flush()
    labels.flush()
    np.savez(osp.join(folder, CLS_EMBED_FILE),
             weight=rng.standard_normal((num_classes + 1, feat_dim)),
             bias=np.zeros(num_classes + 1))
    with open(osp.join(folder, DATASET_META_FILE), 'w') as f:
        json.dump(dict(dataset_meta), f)
    if val_dataset is not None:
        embeddings, mask_logits, shapes = open_val_rows(
            folder, manifest, 'w+')
        embeddings[:] = rng.standard_normal(embeddings.shape)
        mask_logits[:] = rng.standard_normal(mask_logits.shape)
        shapes[:] = 16
        for array in (embeddings, mask_logits, shapes):
            array.flush()
    manifest.rows_done = manifest.num_rows
    manifest.val_rows_done = manifest.num_val_images
    manifest.save(folder)
    return folder
