"""New classes for a trained stage-2 model, without a new segmenter.

PADing's segmenter is class-agnostic and its classifier is trained on real
seen features and generated unseen ones. A class the model never met
needs only its name's embedding: the trained generator synthesises its
features, and the classifier, given a row for it, is trained again on the
feature cache's real features plus synthetic features of the unseen and
the new classes, with the same step (:meth:`ZeroShotLearner.
classifier_losses`) and optimizer (the config's ``classifier`` group) as
in stage 2. Nothing else is trained; the new classes are unseen ones.

:func:`add_classes` writes a checkpoint whose ``meta['dataset_meta']``
lists the new class set (old + new) and whose classifier (and stage 1's
``cls_embed``, which stage 2 only starts from) has a row per class, in the
class order of a data set that holds them all.
"""
from __future__ import annotations

import copy
import os.path as osp
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor, nn

from mmpading.datasets.class_embeddings import (
    load_class_embeddings,
    save_class_embeddings,
)
from mmpading.datasets.feature_cache import (
    file_sha256,
    load_complete_manifest,
    load_dataset_meta,
    open_rows,
)
from mmpading.datasets.splits import ZeroShotSplit
from mmpading.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmpading.utils.compat import load_from_local

CLASSIFIER_PREFIX = 'zero_shot.classifier.'
LEARNER_PREFIX = 'zero_shot.'
# Logit of a row that is switched off: exp() of it is exactly 0 in float32
# next to any real logit, so the other classes' probabilities are unchanged.
OFF_LOGIT = -1e4


class ClassExtensionError(ValueError):
    """Input that cannot extend the model: named, with the fix."""


@dataclass
class ClassExtension:
    """What :func:`add_classes` wrote.

    Attributes:
        checkpoint (str): The new checkpoint.
        class_embeddings (str): The embedding file of the new class set.
        classes (list[str]): The new class set, in label order.
        added (list[str]): The classes added.
        iterations (int): Classifier steps trained.
        seconds (float): Wall time of the extension, loading to saving.
    """
    checkpoint: str
    class_embeddings: str
    classes: list[str]
    added: list[str]
    iterations: int
    seconds: float


# ----------------------------------------------------------------- input
def read_new_class_embeddings(path: str, new_classes: Sequence[str],
                              known_classes: Sequence[str],
                              semantic_dim: int) -> np.ndarray:
    """The embeddings of the classes to add, checked.

    Args:
        path (str): A class embedding file that lists the new classes
            (others in it are ignored).
        new_classes (Sequence[str]): Names to add.
        known_classes (Sequence[str]): The model's classes.
        semantic_dim (int): The generator's embedding width D.

    Returns:
        np.ndarray: (N, D) float32, in ``new_classes`` order.

    Raises:
        ClassExtensionError: No name given, a name given twice or already
            a class of the model, a name missing from the file, or
            embeddings of another width than the generator's.
    """
    names = [str(name) for name in new_classes]
    if not names:
        raise ClassExtensionError('no class to add: give at least one name '
                                  '(--classes NAME ...)')
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ClassExtensionError(f'{twice} given more than once')
    known = sorted(set(names) & set(known_classes))
    if known:
        raise ClassExtensionError(
            f'{known} already are classes of the model; add only new '
            'names (the model has '
            f'{len(known_classes)}: {", ".join(known_classes[:5])}, ...)')
    embeddings, file_names = load_class_embeddings(path)
    missing = [name for name in names if name not in file_names]
    if missing:
        raise ClassExtensionError(
            f'the embedding file {path!r} has no rows for {missing} (it '
            f'lists {len(file_names)} classes: '
            f'{", ".join(file_names[:5])}, ...); build one that does '
            '(tools/misc/build_class_embeddings.py, docs/'
            'class_embeddings.md)')
    if embeddings.shape[1] != semantic_dim:
        raise ClassExtensionError(
            f'the embedding file {path!r} holds {embeddings.shape[1]}-d '
            f'embeddings but the generator takes {semantic_dim}-d ones (the '
            "model's class_embeddings); embed the new names with the same "
            'source (the same CLIP model or word2vec file)')
    return embeddings[[file_names.index(name) for name in names]]


def extended_class_order(old_classes: Sequence[str],
                         new_classes: Sequence[str],
                         num_things: int | None = None,
                         new_stuff: Sequence[str] = (),
                         class_order: Sequence[str] | None = None
                         ) -> list[str]:
    """The label order of the new class set.

    Panoptic heads number things before stuff, so by default the new
    things follow the old things and the new stuff the old stuff; other
    models append the new classes.

    Args:
        old_classes (Sequence[str]): The model's classes, in label order.
        new_classes (Sequence[str]): The classes to add.
        num_things (int, optional): How many of ``old_classes`` are things
            (the first ones); None: no thing / stuff distinction.
        new_stuff (Sequence[str]): The new classes that are stuff.
        class_order (Sequence[str], optional): The order to use instead,
            e.g. that of a data set with every class (its metainfo);
            must hold each old and new class once, things first.

    Raises:
        ClassExtensionError: ``new_stuff`` names a class that is not added,
            or ``class_order`` is not such an order.
    """
    old, new = list(old_classes), list(new_classes)
    stray = sorted(set(new_stuff) - set(new))
    if stray:
        raise ClassExtensionError(f'--stuff names {stray}, which are not '
                                  'classes to add')
    new_things = [name for name in new if name not in set(new_stuff)]
    if num_things is None:
        default = old + new
        things = None
    else:
        things = old[:num_things] + new_things
        default = things + old[num_things:] + list(new_stuff)
    if class_order is None:
        return default
    order = list(class_order)
    if sorted(order) != sorted(default):
        missing = sorted(set(default) - set(order))
        extra = sorted(set(order) - set(default))
        raise ClassExtensionError(
            'the class order must list every old and new class once; '
            f'missing: {missing}, not a class: {extra}')
    if things is not None and set(order[:len(things)]) != set(things):
        raise ClassExtensionError(
            'the class order must put the things first (panoptic heads '
            f'number them first): its first {len(things)} classes are not '
            'the old and new things (mark the new stuff with --stuff)')
    return order


def insert_class_rows(weight: Tensor, bias: Tensor,
                      old_classes: Sequence[str], classes: Sequence[str],
                      init_from: Sequence[int] | None = None
                      ) -> tuple[Tensor, Tensor]:
    """A classification layer of ``classes`` from one of ``old_classes``.

    Rows of old classes move to their new label; no-object stays last.

    Args:
        weight (Tensor): (K + 1, C), rows in ``old_classes`` order.
        bias (Tensor): (K + 1, ).
        old_classes (Sequence[str]): K names.
        classes (Sequence[str]): K' names, every old one among them.
        init_from (Sequence[int], optional): Old rows whose mean starts the
            new rows (e.g. the unseen classes', rows the classifier learnt
            for classes without real features). None: the new rows are
            switched off (weight 0, bias :data:`OFF_LOGIT`), and the layer
            scores every old class as before.

    Returns:
        tuple[Tensor, Tensor]: (K' + 1, C) and (K' + 1, ).
    """
    old_row = {name: row for row, name in enumerate(old_classes)}
    new_weight = weight.new_zeros((len(classes) + 1, weight.shape[1]))
    new_bias = bias.new_full((len(classes) + 1, ), OFF_LOGIT)
    if init_from is not None:
        rows = list(init_from) or list(range(len(old_classes)))
        new_weight[:] = weight[rows].mean(0)
        new_bias[:] = bias[rows].mean()
    for row, name in enumerate(classes):
        if name in old_row:
            new_weight[row] = weight[old_row[name]]
            new_bias[row] = bias[old_row[name]]
    new_weight[-1], new_bias[-1] = weight[-1], bias[-1]
    return new_weight, new_bias


# ---------------------------------------------------------------- helpers
def _old_classes(cache_dir: str, checkpoint_meta: Mapping) -> dict:
    """The classes and split the model was trained on: the cache's, which
    must be the checkpoint's."""
    meta = load_dataset_meta(cache_dir)
    trained = checkpoint_meta.get('dataset_meta') or {}
    if trained.get('classes') is not None and \
            list(trained['classes']) != list(meta['classes']):
        raise ClassExtensionError(
            f"the checkpoint's classes ({len(trained['classes'])}: "
            f"{', '.join(list(trained['classes'])[:3])}, ...) are not the "
            f"feature cache's ({len(meta['classes'])}: "
            f"{', '.join(list(meta['classes'])[:3])}, ...); give the cache "
            'the model was trained from')
    for key in ('seen_classes', 'unseen_classes'):
        if meta.get(key) is None:
            raise ClassExtensionError(
                f'{cache_dir!r}: its dataset_meta.json has no {key}; '
                'rebuild the cache with this version')
    return meta


def _num_things(cfg: Config) -> int | None:
    head = cfg.model.get('panoptic_head') or {}
    return head.get('num_things_classes')


def _learner_state(state: Mapping[str, Tensor],
                   checkpoint: str) -> dict[str, Tensor]:
    learner = {
        key[len(LEARNER_PREFIX):]: value
        for key, value in state.items() if key.startswith(LEARNER_PREFIX)
    }
    if not any(key.startswith('classifier.') for key in learner):
        raise ClassExtensionError(
            f'{checkpoint!r} holds no stage-2 learner (zero_shot.*): give '
            'a stage-2 checkpoint (trained online or from a feature cache)')
    if not any(key.startswith('generator.') for key in learner):
        raise ClassExtensionError(
            f'{checkpoint!r} has no generator (zero_shot.generator.*): the '
            'projection baseline scores classes by their embeddings and '
            'synthesises no features; extend a model with a generator')
    return learner


def _class_dataset_meta(classes: list[str], num_things: int | None,
                        split: ZeroShotSplit, old_meta: Mapping) -> dict:
    meta = dict(classes=tuple(classes), zero_shot_split=split.name,
                seen_classes=tuple(
                    name for name in classes if name in set(split.seen)),
                unseen_classes=tuple(
                    name for name in classes if name in set(split.unseen)))
    if num_things is not None:
        meta.update(thing_classes=tuple(classes[:num_things]),
                    stuff_classes=tuple(classes[num_things:]))
    palette = old_meta.get('palette')
    if palette is not None:
        colour_of = dict(zip(old_meta['classes'], palette))
        rng = np.random.default_rng(len(classes))
        meta['palette'] = [
            list(colour_of[name]) if name in colour_of else
            rng.integers(0, 256, 3).tolist() for name in classes
        ]
    return meta


class _LearnerHolder(nn.Module):
    """The learner as a stage-2 model holds it (``zero_shot``), so that the
    config's optimizer constructor finds its groups."""

    def __init__(self, learner: nn.Module) -> None:
        super().__init__()
        self.zero_shot = learner


def classifier_optim_wrapper(cfg: Config, learner: nn.Module):
    """The config's ``classifier`` optimizer (stage 2's) over the learner's
    classifier."""
    optim_cfg = copy.deepcopy(cfg.optim_wrapper.to_dict() if hasattr(
        cfg.optim_wrapper, 'to_dict') else dict(cfg.optim_wrapper))
    optim_cfg.pop('_delete_', None)
    constructor = optim_cfg.pop('constructor', 'PADingOptimWrapperConstructor')
    paramwise_cfg = optim_cfg.pop('paramwise_cfg', None)
    wrappers = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=constructor, optim_wrapper_cfg=optim_cfg,
             paramwise_cfg=paramwise_cfg))(_LearnerHolder(learner))
    return wrappers['classifier']


# ------------------------------------------------------------------ main
def add_classes(cfg: Config,
                checkpoint: str,
                cache_dir: str,
                new_classes: Sequence[str],
                embeddings_file: str,
                out: str,
                new_stuff: Sequence[str] = (),
                class_order: Sequence[str] | None = None,
                iterations: int | None = None,
                seed: int = 0,
                train_new_rows: bool = True) -> ClassExtension:
    """Add classes to a trained stage-2 model; train only its classifier.

    Args:
        cfg (Config): The model's stage-2 config (its learner, optimizer
            and batch size).
        checkpoint (str): A stage-2 checkpoint of it: trained online, from
            the cache, or merged.
        cache_dir (str): The feature cache of the model's segmenter (the
            real features the classifier is trained on again).
        new_classes (Sequence[str]): Names to add; they become unseen
            classes.
        embeddings_file (str): A class embedding file with their rows, of
            the source the model's own embeddings come from.
        out (str): The new checkpoint; must not exist. The new class set's
            embedding file is written beside it
            (``<out stem>.class_embeddings.json``).
        new_stuff (Sequence[str]): The new classes that are stuff.
        class_order (Sequence[str], optional): Label order of the new
            class set (:func:`extended_class_order`).
        iterations (int, optional): Classifier steps; None: the config's
            stage-2 ``max_iters``.
        seed (int): Seed of the batch order, the unseen draws and the
            generator's noise.
        train_new_rows (bool): False: write the new class rows switched
            off and train nothing (``iterations`` must be 0): the model
            then predicts exactly as before, in the new class set's
            labels (a baseline to compare with).

    Returns:
        ClassExtension: What was written, and the wall time.
    """
    start = time.perf_counter()
    out_stem = osp.splitext(out)[0]
    embeddings_out = f'{out_stem}.class_embeddings.json'
    for path in (out, embeddings_out):
        if osp.exists(path):
            raise FileExistsError(f'{path!r} exists; nothing is overwritten '
                                  '(choose another --out)')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} not found')
    manifest = load_complete_manifest(cache_dir)
    loaded = load_from_local(checkpoint, map_location='cpu')
    state = dict(loaded.get('state_dict', loaded))
    learner_state = _learner_state(state, checkpoint)
    old_meta = _old_classes(cache_dir, loaded.get('meta', {}))
    old_classes = list(old_meta['classes'])
    if learner_state['classifier.weight'].shape[0] != len(old_classes) + 1:
        raise ClassExtensionError(
            f"{checkpoint!r}: its classifier has "
            f"{learner_state['classifier.weight'].shape[0]} rows, not the "
            f"cache's {len(old_classes)} classes + no-object")
    learner_cfg = dict(copy.deepcopy(cfg.model.zero_shot))
    learner_cfg.setdefault('type', 'ZeroShotLearner')
    if learner_cfg.get('classifier', dict(type='Linear')).get(
            'type', 'Linear') != 'Linear':
        raise ClassExtensionError(
            'only a Linear classifier (the default) gets new rows; this '
            f"config's is {learner_cfg['classifier']['type']}")
    semantic_dim = learner_state['generator.semantic_proj.weight'].shape[1] \
        if 'generator.semantic_proj.weight' in learner_state else \
        load_class_embeddings(learner_cfg['class_embeddings'])[0].shape[1]
    new_embeddings = read_new_class_embeddings(
        embeddings_file, new_classes, old_classes, semantic_dim)
    num_things = _num_things(cfg)
    classes = extended_class_order(old_classes, new_classes, num_things,
                                   new_stuff, class_order)
    if num_things is not None:
        num_things += len(new_classes) - len(new_stuff)
    split = ZeroShotSplit(
        name=f"{old_meta.get('zero_shot_split', 'split')}+new",
        seen=tuple(old_meta['seen_classes']),
        unseen=tuple(old_meta['unseen_classes']) + tuple(new_classes))
    # The new class set's embedding file: the model's rows and the new ones.
    old_embeddings = load_class_embeddings(
        learner_cfg['class_embeddings'], class_names=old_classes)[0]
    row_of = {name: old_embeddings[i] for i, name in enumerate(old_classes)}
    row_of.update(zip(new_classes, new_embeddings))
    save_class_embeddings(
        embeddings_out, classes, np.stack([row_of[name] for name in classes]),
        source=f'{learner_cfg["class_embeddings"]} + {embeddings_file}')

    learner_cfg.update(class_names=classes, split=split,
                       class_embeddings=embeddings_out,
                       num_classes=len(classes), feat_dim=manifest.feat_dim)
    learner = MODELS.build(learner_cfg)
    unseen_rows = [old_classes.index(name)
                   for name in old_meta['unseen_classes']]
    weight, bias = insert_class_rows(
        learner_state['classifier.weight'], learner_state['classifier.bias'],
        old_classes, classes, unseen_rows if train_new_rows else None)
    learner_state = {
        key: value for key, value in learner_state.items()
        if not key.startswith('classifier.')
    }
    learner_state.update({'classifier.weight': weight,
                          'classifier.bias': bias})
    learner.load_state_dict(learner_state)
    if iterations is None:
        iterations = int(cfg.train_cfg.max_iters)
    if not train_new_rows and iterations:
        raise ClassExtensionError('with the new rows switched off nothing '
                                  'is trained: give iterations=0')
    if iterations:
        _train_classifier(learner, cfg, cache_dir, manifest, old_classes,
                          classes, iterations, seed)

    new_state = {
        key: value for key, value in state.items()
        if not key.startswith(LEARNER_PREFIX)
    }
    for key in [key for key in new_state if key.endswith('cls_embed.weight')]:
        bias_key = key[:-len('weight')] + 'bias'
        new_state[key], new_state[bias_key] = insert_class_rows(
            new_state[key], new_state[bias_key], old_classes, classes,
            unseen_rows)
    new_state.update({LEARNER_PREFIX + key: value.detach().clone()
                      for key, value in learner.state_dict().items()})
    meta = dict(loaded.get('meta', {}))
    meta['dataset_meta'] = _class_dataset_meta(classes, num_things, split,
                                               old_meta)
    meta['class_extension'] = dict(
        base_checkpoint=osp.abspath(checkpoint),
        base_checkpoint_sha256=file_sha256(checkpoint),
        feature_cache=osp.abspath(cache_dir), added=list(new_classes),
        new_stuff=list(new_stuff), embeddings_file=osp.abspath(
            embeddings_file), class_embeddings=osp.abspath(embeddings_out),
        iterations=iterations, seed=seed, train_new_rows=train_new_rows)
    # An inference checkpoint: no optimizer state of the old shapes.
    torch.save(dict(meta=meta, state_dict=new_state), out)
    return ClassExtension(
        checkpoint=out, class_embeddings=embeddings_out, classes=classes,
        added=list(new_classes), iterations=iterations,
        seconds=time.perf_counter() - start)


def _train_classifier(learner: nn.Module, cfg: Config, cache_dir: str,
                      manifest, old_classes: list[str], classes: list[str],
                      iterations: int, seed: int) -> None:
    """Stage 2's classifier step on the cache's rows, ``iterations`` times.

    The cache's labels are the old class indices (K: no-object); they are
    renumbered into the new class set.
    """
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    embeddings, labels = open_rows(cache_dir, manifest, 'r')
    relabel = torch.tensor(
        [classes.index(name) for name in old_classes] + [len(classes)])
    batch_size = int(cfg.train_dataloader.batch_size)
    optim_wrapper = classifier_optim_wrapper(cfg, learner)
    learner.train()
    permutation = torch.randperm(manifest.num_rows, generator=order)
    position = 0
    for _ in range(iterations):
        if position + batch_size > len(permutation):
            permutation = torch.randperm(manifest.num_rows, generator=order)
            position = 0
        rows = np.sort(permutation[position:position + batch_size].numpy())
        position += batch_size
        batch = torch.from_numpy(np.asarray(embeddings[rows],
                                            dtype=np.float32))
        batch_labels = relabel[torch.from_numpy(
            np.asarray(labels[rows], dtype=np.int64))]
        loss = learner.classifier_losses(batch, batch_labels)['loss_cls']
        optim_wrapper.update_params(loss)
    learner.eval()
