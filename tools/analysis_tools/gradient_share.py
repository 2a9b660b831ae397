"""How much each generator loss term moves PADing's generator.

For a stage-2 config and a checkpoint (stage 1: the learner starts as
stage 2 starts, its classifier copied from ``cls_embed``; stage 2: the
trained learner), runs ``--batches`` batches of the config's training data
loader through the frozen segmenter (as a stage-2 step does: preprocessing,
features, Hungarian matching) and measures, on each batch, the gradient of
each generator loss term w.r.t. the generator's parameters
(:func:`mmpading.models.utils.gradient_share.generator_gradient_share`; the
learner in training mode, dropout on). It prints the mean over the batches
of each term's and each group's gradient L2 norm and share (norm over the
sum of norms) and of the ratio of gradient norms
lambda x (A + D) / (MMD + synthetic CE).

Without the config's data (e.g. COCO for ``configs/pading/zsp_r50.py``)
the tool says which file is missing. ``--synthetic`` then measures on
random images with random rectangular thing segments and striped stuff of
seen classes (PADing / mmdet configs), and ``--random-weights`` replaces
the checkpoint by seeded random weights; a missing class-embedding file is
replaced by random vectors. The output labels such figures as synthetic:
they show the learner's sizes (classes, feature width, images per batch,
lambda), not what a trained model gives.

Examples::

    # toy config, a trained toy stage-1 checkpoint, its data set
    python tools/analysis_tools/gradient_share.py \\
        configs/toy/pading_toy_stage2.py \\
        work_dirs/pading_toy_stage1/iter_600.pth --data-root data/toy
    # ZSP without COCO: synthetic images and random weights, 12 per batch
    python tools/analysis_tools/gradient_share.py configs/pading/zsp_r50.py \\
        --random-weights --synthetic --image-size 256 --batches 3
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint, set_random_seed

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import config_path, resolve_config
from mmpading.apis.checkpoint_checks import (
    check_config_checkpoint,
    config_stage,
)
from mmpading.apis.model_loading import config_dataset_meta
from mmpading.datasets.class_embeddings import (
    resolve_class_embeddings_path,
    save_class_embeddings,
)
from mmpading.models.utils.gradient_share import (
    GROUP_TITLES,
    generator_gradient_share,
    mean_gradient_share,
)
from mmpading.models.utils.stage2 import set_dataset_meta
from mmpading.registry import UPSTREAM_SCOPES
from mmpading.utils.benchmarking import print_table
from mmpading.utils.compat import CheckpointLoadError
from mmpading.utils.config_utils import DataRootError, check_data_root_folder

from benchmark_setup import (
    RANDOM_EMBEDDING_DIM,
    fixed_pad_size,
    quiet_init_weights,
    set_fixed_pad_size,
    strip_pretrained,
    synthetic_batches,
)

TOOL = osp.basename(__file__)


class MissingDataError(FileNotFoundError):
    """Files the measurement needs are not there: named, with the fix."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Each generator loss term\'s share of the gradient '
        'norm of PADing\'s generator, for a stage-2 config and a checkpoint.')
    parser.add_argument(
        'config', help='stage-2 config: a file, or a name in configs/toy')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='stage-1 or stage-2 checkpoint (or --random-weights)')
    parser.add_argument(
        '--batches', type=int, default=5, help='batches measured (mean)')
    parser.add_argument(
        '--batch-size',
        type=int,
        help='images per batch (default: the config\'s train_dataloader)')
    parser.add_argument(
        '--data-root',
        help='read the data set from this folder: every path of the config '
        'under its data_root is re-rooted here')
    parser.add_argument(
        '--synthetic',
        action='store_true',
        help='random images and segments of seen classes instead of the '
        'config\'s data (PADing / mmdet configs); figures labelled synthetic')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs='+',
        metavar='SIZE',
        help='height [width] of --synthetic images (default: the config\'s '
        'BatchFixedSizePad size, else 128)')
    parser.add_argument(
        '--random-weights',
        action='store_true',
        help='seeded random weights instead of a checkpoint')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--json', help='also write the figures to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='dotted overrides of the config, as tools/train.py takes them')
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error('--batches must be >= 1')
    if args.batch_size is not None and args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if (args.checkpoint is None) == (not args.random_weights):
        parser.error('give a CHECKPOINT or --random-weights (one of them)')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint!r} not found')
    if args.image_size is not None and (len(args.image_size) not in (1, 2)
                                        or min(args.image_size) < 32):
        parser.error('--image-size takes a height [and a width] of at least '
                     '32 pixels')
    if args.image_size is not None and not args.synthetic:
        parser.error('--image-size applies to --synthetic images only')
    try:
        config_path(args.config)
        if args.data_root is not None:
            check_data_root_folder(args.data_root)
    except (FileNotFoundError, DataRootError) as error:
        parser.error(str(error))
    return args


# ------------------------------------------------------------------ config
def _leaf_datasets(dataset: dict) -> Iterator[dict]:
    """The data sets inside wrappers (``dataset`` / ``datasets`` keys)."""
    if 'datasets' in dataset:
        for item in dataset['datasets']:
            yield from _leaf_datasets(item)
    elif isinstance(dataset.get('dataset'), dict):
        yield from _leaf_datasets(dataset['dataset'])
    else:
        yield dataset


def missing_training_files(cfg: Config) -> list[str]:
    """Annotation files and image / map folders of the training set that
    do not exist."""
    missing = []
    for dataset in _leaf_datasets(cfg.train_dataloader.dataset):
        root = dataset.get('data_root') or ''
        paths = [dataset.get('ann_file') or '']
        paths += list((dataset.get('data_prefix') or {}).values())
        for path in paths:
            if not path:
                continue
            full = path if osp.isabs(path) else osp.join(root, path)
            if not osp.exists(full):
                missing.append(full)
    return missing


def load_config(args: argparse.Namespace, tmp_dir: str) -> tuple[Config,
                                                                  list[str]]:
    """The stage-2 config, ready to build; and notes on what was replaced.

    Raises:
        ValueError: Not a stage-2 config, or no generator.
        MissingDataError: The training data or class embeddings are missing
            and ``--synthetic`` was not given.
    """
    cfg = resolve_config(args.config, args.data_root, args.cfg_options)
    name = cfg.filename or args.config
    if config_stage(cfg) != 2 or 'zero_shot' not in cfg.model:
        raise ValueError(
            f'{name} is a stage-1 config; give the stage-2 config (e.g. '
            'configs/toy/pading_toy_stage2.py, configs/pading/zsp_r50.py): '
            'its learner holds the generator')
    zero_shot = cfg.model.zero_shot
    # Not stated: the learner's default generator.
    if 'generator' in zero_shot and zero_shot.generator is None:
        raise ValueError(f'{name}: the learner has no generator (the '
                         'projection baseline): there is no generator '
                         'gradient to share')
    notes = []
    if args.random_weights:
        strip_pretrained(cfg.model)  # nothing downloads
    if args.image_size:
        # The size measured at: not padded up to the config's.
        set_fixed_pad_size(cfg, args.image_size)
    embeddings = resolve_class_embeddings_path(zero_shot.class_embeddings)
    missing = [] if osp.isfile(embeddings) else [
        f'class embeddings {embeddings} (docs/class_embeddings.md)']
    if not args.synthetic:
        missing += [f'training data {path}'
                    for path in missing_training_files(cfg)]
        if missing:
            shown = '; '.join(missing[:4]) + (' ...' if len(missing) > 4
                                              else '')
            raise MissingDataError(
                f'{name}: not found: {shown}. Prepare the data set '
                '(docs/data_preparation.md), pass --data-root DIR, or '
                'measure on synthetic inputs with --synthetic '
                '(and --random-weights without a checkpoint)')
    elif missing:
        random_file = osp.join(tmp_dir, 'random_class_embeddings.json')
        names = list(config_dataset_meta(cfg, 'train')['classes'])
        vectors = np.random.default_rng(args.seed).standard_normal(
            (len(names), RANDOM_EMBEDDING_DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        save_class_embeddings(random_file, names, vectors,
                              'random unit vectors (gradient_share.py)')
        zero_shot.class_embeddings = random_file
        notes.append(f'class embeddings: {embeddings} not found, random '
                     f'unit {RANDOM_EMBEDDING_DIM}-d vectors instead')
    return cfg, notes


# ------------------------------------------------------------------- model
def build_model(cfg: Config, args: argparse.Namespace) -> tuple[Any, str]:
    """The stage-2 model in training mode, and where its weights come from.

    Raises:
        ValueError: The checkpoint does not fit or cannot be loaded.
    """
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    torch.manual_seed(args.seed)
    model = UPSTREAM_SCOPES[scope].MODELS.build(cfg.model)
    set_dataset_meta(model, config_dataset_meta(cfg, 'train'))
    learner = model.learner
    if args.random_weights:
        quiet_init_weights(model)
        source = f'random weights (seed {args.seed})'
    else:
        try:
            # Either stage fits (its note speaks of training: not shown).
            check_config_checkpoint(cfg, args.checkpoint, 'load_from')
        except CheckpointLoadError as error:
            raise ValueError(str(error)) from None
        try:
            loaded = load_checkpoint(model, args.checkpoint,
                                     map_location='cpu', logger='silent')
        except (RuntimeError, EOFError, OSError, KeyError) as error:
            raise ValueError(f'cannot load checkpoint {args.checkpoint!r}: '
                             f'{error}') from error
        stage = 2 if bool(learner.classifier_initialised) else 1
        if stage == 2:
            # A stage-2 checkpoint of another learner layout would leave
            # parts random without a word (the load is not strict).
            saved = set(loaded.get('state_dict', loaded))
            absent = [key for key in model.state_dict()
                      if key.startswith('zero_shot.') and key not in saved]
            if absent:
                raise ValueError(
                    f'{args.checkpoint} lacks learner weights of this '
                    f'config: {", ".join(absent[:5])}'
                    f'{" ..." if len(absent) > 5 else ""}; give a checkpoint '
                    'of this config')
        source = f'{args.checkpoint} (stage {stage})'
        if stage == 1 and not model.stage1_checkpoint_loaded:
            raise ValueError(
                f'{args.checkpoint} holds no stage-1 classifier '
                f'(the segmenter head\'s cls_embed): give the stage-1 '
                'checkpoint of this config (load_from) or a stage-2 one')
    if not bool(learner.classifier_initialised):
        # As stage 2 starts: the classifier is stage 1's cls_embed.
        learner.init_classifier_from(model.segmenter_head.cls_embed)
    # The learner trains (dropout on); the segmenter stays frozen in eval.
    return model.to(args.device).train(), source


def batches(cfg: Config, model: Any, args: argparse.Namespace
            ) -> tuple[Iterator, str]:
    """Training batches, and a description of them."""
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    if args.synthetic:
        if not hasattr(model, 'panoptic_head'):
            raise ValueError('--synthetic makes panoptic ground truth for '
                             'PADing (mmdet) configs only; for '
                             f'{type(model).__name__} give the data set')
        size = args.image_size or fixed_pad_size(cfg) or (128, )
        height, width = (list(size) * 2)[:2]
        description = (f'SYNTHETIC: random {height}x{width} images with '
                       'random segments of seen classes')
        return synthetic_batches(model, batch_size, height, width,
                                 args.seed), description
    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.update(batch_size=batch_size, num_workers=0,
                      persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
    roots = sorted({d.get('data_root', '') for d in
                    _leaf_datasets(cfg.train_dataloader.dataset)})
    return iter(loader), f'training data of {", ".join(roots)}'


# ----------------------------------------------------------------- measure
def measure(model: Any, source: Iterator, num_batches: int) -> dict:
    """The gradient shares of ``num_batches`` batches and their mean."""
    shares, skipped = [], 0
    for _ in range(num_batches):
        data = model.data_preprocessor(next(source), True)
        query_features = model.frozen_query_features(data)
        share = generator_gradient_share(model.learner,
                                         query_features.embeddings,
                                         query_features.labels)
        if share is None:
            skipped += 1
        else:
            shares.append(share)
        print(f'batch {len(shares) + skipped}/{num_batches}: '
              + (share.summary() if share else 'no matched query, skipped'),
              flush=True)
    if not shares:
        raise ValueError(f'no query was matched in {num_batches} batches: '
                         'nothing to measure')
    result = mean_gradient_share(shares)
    result['skipped'] = skipped
    result['num_parameters'] = shares[0].num_parameters
    result['per_batch'] = [
        dict(term_norms=s.term_norms, group_norms=s.group_norms,
             total_norm=s.total_norm, ad_ratio=s.ad_ratio,
             num_matched=s.num_matched) for s in shares
    ]
    return result


def print_result(result: dict, header: str) -> None:
    print(f'\n{header}')
    shares, norms = result['term_shares'], result['term_norms']
    print_table('Per loss term (mean over batches; share = norm / sum of '
                'the terms\' norms)', ['term', 'gradient norm', 'share'],
                [[key, f'{norms[key]:.4g}', f'{shares[key]:.4g}']
                 for key in norms])
    shares, norms = result['group_shares'], result['group_norms']
    print_table('Per group (norm of the group\'s summed gradient; share = '
                'norm / sum of the groups\' norms)',
                ['group', 'gradient norm', 'share'],
                [[GROUP_TITLES.get(key, key), f'{norms[key]:.4g}',
                  f'{shares[key]:.4g}'] for key in norms])
    print(f'\nnorm of the total gradient: {result["total_norm"]:.4g}')
    if result['ad_ratio'] is None:
        print('lambda x (A + D) / (MMD + synthetic CE): undefined (no A or '
              'D term)')
    else:
        print('lambda x (A + D) / (MMD + synthetic CE), ratio of gradient '
              f'norms: {result["ad_ratio"]:.3g} (mean of {result["batches"]}'
              f' batches; min {result["ad_ratio_min"]:.3g}, max '
              f'{result["ad_ratio_max"]:.3g})')


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_dir:
        try:
            cfg, notes = load_config(args, tmp_dir)
            model, weights = build_model(cfg, args)
            source, data = batches(cfg, model, args)
            for note in notes:
                print(note)
            # The data pipeline's draws (flips, crops) and the dropout.
            set_random_seed(args.seed)
            result = measure(model, source, args.batches)
        except (FileNotFoundError, ValueError) as error:
            sys.exit(f'{TOOL}: error: {error}')
    learner = model.learner
    synthetic = args.synthetic or args.random_weights or bool(notes)
    info = dict(
        config=cfg.filename or args.config,
        weights=weights,
        data=data,
        synthetic=synthetic,
        notes=notes,
        batch_size=args.batch_size or cfg.train_dataloader.batch_size,
        num_classes=len(learner.class_names),
        num_unseen=len(learner.unseen_ids),
        feat_dim=learner.feat_dim,
        semantic_dim=int(learner.class_semantic_embeddings.shape[1]),
        lambda_weight=learner.lambda_weight,
        seed=args.seed)
    header = '\n'.join([
        ('SYNTHETIC INPUTS / RANDOM WEIGHTS (not a trained model\'s '
         'figures)' if synthetic else 'Generator gradient share'),
        f'config: {info["config"]}',
        f'weights: {weights}',
        f'data: {data}',
        f'{result["batches"]} batches of {info["batch_size"]} images '
        f'measured ({result["skipped"]} skipped: no matched query)',
        f'learner: {info["num_classes"]} classes ({info["num_unseen"]} '
        f'unseen), {info["feat_dim"]}-d features, {info["semantic_dim"]}-d '
        f'class embeddings, lambda = {info["lambda_weight"]:g}; gradients '
        f'w.r.t. the generator\'s {result["num_parameters"]} parameters',
    ])
    print_result(result, header)
    result.update(info)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(result, file, indent=2)
        print(f'\nfigures written to {args.json}')
    return result


if __name__ == '__main__':
    main()
