"""A stage-2 model trained without one toy class, and its feature cache
(random learner weights and rows): what adding a class starts from."""
import json
import os.path as osp

import torch

from mmpading.datasets.held_out_classes import write_data_root_without
from mmpading.registry import MODELS
from mmpading.utils.config_utils import toy_class_count_options, toy_config

from .synthetic_cache import write_synthetic_cache

NEW = 'yellow square'
FEAT_DIM = 128


def write_held_out_model(toy_root: str, work) -> dict:
    """``toy_root`` without :data:`NEW`, a checkpoint of the toy stage-2
    model on it, and a synthetic cache whose validation rows are those of
    ``toy_root``'s (full) validation set.

    Returns:
        dict: ``work``, ``held`` (root), ``cfg`` (its stage-2 config),
        ``full_root``, ``cache``, ``checkpoint``, ``classes`` (the model's)
        and ``embeddings`` (the full root's file, which has ``NEW``).
    """
    held = str(work / 'data_without')
    write_data_root_without(toy_root, [NEW], held)
    cfg = toy_config('pading_toy_stage2', held,
                     **toy_class_count_options(held))
    cfg.train_dataloader.batch_size = 4
    full = toy_config('pading_toy_stage2', toy_root)
    with open(osp.join(held, 'metainfo.json')) as f:
        classes = json.load(f)['classes']
    with open(osp.join(held, 'split.json')) as f:
        split = json.load(f)
    meta = dict(classes=classes, zero_shot_split=split['name'],
                seen_classes=split['seen'], unseen_classes=split['unseen'])
    cache = write_synthetic_cache(
        str(work / 'cache'), meta, num_rows=8, num_queries=6,
        feat_dim=FEAT_DIM, val_dataset=full.test_dataloader.dataset,
        num_val_images=6)
    learner = MODELS.build(dict(cfg.model.zero_shot, num_classes=len(classes),
                                feat_dim=FEAT_DIM))
    learner.classifier_initialised.fill_(1)
    state = {f'zero_shot.{key}': value
             for key, value in learner.state_dict().items()}
    state['cls_embed.weight'] = torch.randn(len(classes) + 1, FEAT_DIM)
    state['cls_embed.bias'] = torch.zeros(len(classes) + 1)
    checkpoint = str(work / 'trained.pth')
    torch.save(dict(meta=dict(dataset_meta=meta), state_dict=state),
               checkpoint)
    return dict(work=work, held=held, cfg=cfg, full_root=toy_root,
                cache=cache, checkpoint=checkpoint, classes=classes,
                embeddings=osp.join(toy_root, 'class_embeddings.json'))
