"""Training rows of a feature cache, as a data set."""
from __future__ import annotations

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from mmpading.registry import DATASETS

from .feature_cache import (
    check_cache_matches,
    load_complete_manifest,
    load_dataset_meta,
    open_rows,
)


@DATASETS.register_module()
class CachedQueryFeatureDataset(BaseDataset):
    """Rows of a feature cache: one (augmented) training image each.

    Each item is ``dict(embeddings=Tensor (Q, C) float32, labels=Tensor
    (Q, ) int64)``; mmengine's ``default_collate`` stacks a batch into
    (B, Q, C) and (B, Q), as ``PADing.frozen_query_features`` returns
    them. ``metainfo`` is the training set's (classes and split), which
    ``DatasetMetaHook`` gives the learner.

    Args:
        cache_dir (str): A finished cache folder.
        expected (dict, optional): Manifest fields the cache must have
            (:func:`check_cache_matches`).
    """

    def __init__(self, cache_dir: str,
                 expected: dict | None = None, **kwargs) -> None:
        self.cache_dir = cache_dir
        self.manifest = load_complete_manifest(cache_dir)
        if expected:
            check_cache_matches(cache_dir, expected)
        kwargs.setdefault('metainfo', load_dataset_meta(cache_dir))
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', data_root='', pipeline=[], **kwargs)
        self._embeddings: np.memmap | None = None
        self._labels: np.memmap | None = None

    def __getstate__(self) -> dict:
        # Data-loader workers open their own maps (a pickled memmap would
        # be a copy of the whole array).
        state = self.__dict__.copy()
        state['_embeddings'] = state['_labels'] = None
        return state

    def load_data_list(self) -> list[dict]:
        return [dict(row=row) for row in range(self.manifest.num_rows)]

    def _arrays(self) -> tuple[np.memmap, np.memmap]:
        # Opened lazily, so that data-loader workers open their own maps.
        if self._embeddings is None:
            self._embeddings, self._labels = open_rows(
                self.cache_dir, self.manifest, 'r')
        return self._embeddings, self._labels

    def prepare_data(self, idx: int) -> dict:
        embeddings, labels = self._arrays()
        row = self.get_data_info(idx)['row']
        return dict(
            embeddings=torch.from_numpy(
                np.array(embeddings[row], dtype=np.float32)),
            labels=torch.from_numpy(np.array(labels[row],
                                               dtype=np.int64)))
