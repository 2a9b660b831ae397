"""Validation rows of a feature cache, with the validation set's ground
truth."""
from __future__ import annotations

import copy

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from mmpading.registry import DATASETS

from .feature_cache import (
    FeatureCacheError,
    config_sha256,
    load_complete_manifest,
    open_val_rows,
)


@DATASETS.register_module()
class CachedSegmenterOutputDataset(BaseDataset):
    """The frozen segmenter's validation outputs, read from a cache.

    Item ``i`` is the validation set's item ``i`` (its data sample, ground
    truth and metainfo included, so the GZSL metrics score it as online)
    without the image, plus what the frozen segmenter computed for it:
    ``embeddings`` (Q, C), the last decoder layer's class embeddings, and
    ``mask_logits`` (Q, h, w), its mask logits at the head's output
    resolution; the data sample gets the batch's padded input size
    (``batch_input_shape``, ``pad_shape``), as the data preprocessor sets
    it online.

    Args:
        cache_dir (str): A finished cache with a validation pass.
        dataset (dict): The validation data set config the cache was built
            from (the stage-2 config's ``val_dataloader.dataset``).
    """

    def __init__(self, cache_dir: str, dataset: dict, **kwargs) -> None:
        self.cache_dir = cache_dir
        self.manifest = load_complete_manifest(cache_dir)
        if self.manifest.num_val_images == 0:
            raise FeatureCacheError(
                f'{cache_dir!r} holds no validation outputs; build it with '
                'a validation pass (tools/misc/build_feature_cache.py '
                'without --no-val)')
        if config_sha256(dataset) != self.manifest.val_dataset_sha256:
            raise FeatureCacheError(
                f'the validation outputs of {cache_dir!r} were computed for '
                'another validation data set config; use the cache of this '
                'config, or rebuild it')
        self.source = DATASETS.build(copy.deepcopy(dataset))
        if len(self.source) != self.manifest.num_val_images:
            raise FeatureCacheError(
                f'the validation set has {len(self.source)} images, the '
                f'cache {self.manifest.num_val_images}; rebuild the cache')
        kwargs.setdefault('metainfo', self.source.metainfo)
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', data_root='', pipeline=[],
                         test_mode=True, **kwargs)
        self._arrays: tuple[np.memmap, ...] | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_arrays'] = None
        return state

    def load_data_list(self) -> list[dict]:
        return [dict(row=row) for row in range(self.manifest.num_val_images)]

    def prepare_data(self, idx: int) -> dict:
        if self._arrays is None:
            self._arrays = open_val_rows(self.cache_dir, self.manifest, 'r')
        embeddings, mask_logits, input_shapes = self._arrays
        item = self.source[idx]
        sample = item['data_samples']
        sizes = [int(size) for size in input_shapes[idx]]
        sample.set_metainfo(dict(batch_input_shape=tuple(sizes[:2]),
                                 pad_shape=tuple(sizes[2:])))
        return dict(
            data_samples=sample,
            embeddings=torch.from_numpy(
                np.array(embeddings[idx], dtype=np.float32)),
            mask_logits=torch.from_numpy(
                np.array(mask_logits[idx], dtype=np.float32)))
