"""The trainable part of PADing's stage 2: generator, losses, classifier."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size, is_distributed
from mmengine.model import BaseModule
from mmengine.model.wrappers import is_model_wrapper
from torch import Tensor, nn

from mmpading.datasets.class_embeddings import load_class_embeddings
from mmpading.datasets.splits import ZeroShotSplit, resolve_split
from mmpading.models.utils.rank_gather import RowGather, rows_on_this_rank
from mmpading.registry import MODELS

if TYPE_CHECKING:
    from mmpading.models.utils.gradient_share import GradientShare

# PADing's parts in the paper's panoptic setting: the learner's defaults.
# Each part's own hyperparameters are the defaults of its class
# (PrimitiveGenerator: 400 primitives, 3 layers, 8 heads, FFN 1024, dropout
# 0.1; MMDLoss: kernels 2-80; RelationAlignLoss: T = 0.1; docs/parity.md).
DEFAULT_CLASSIFIER = dict(type='Linear')
DEFAULT_GENERATOR = dict(type='PrimitiveGenerator')
DEFAULT_MMD_LOSS = dict(type='MMDLoss')
DEFAULT_DISENTANGLE_HEAD = dict(type='DisentangleHead')
DEFAULT_RELATION_ALIGN_LOSS = dict(type='RelationAlignLoss')


def component_cfg(name: str, given: Mapping | None,
                  default: Mapping) -> dict | None:
    """The config one part of the learner is built from.

    Args:
        name (str): The argument, for messages.
        given (Mapping, optional): What the config says. None switches the
            part off; a dict with ``type`` (or mmengine's ``_delete_=True``,
            which a config keeps when its base states no such part)
            replaces the default; a dict without ``type`` changes fields of
            the default (e.g. ``generator=dict(dropout=0.3)``).
        default (Mapping): The part's default config.

    Returns:
        dict | None: A new dict (the default is never changed), or None.
    """
    if given is None:
        return None
    if not isinstance(given, Mapping):
        raise TypeError(f'ZeroShotLearner: {name} is a config dict or None, '
                        f'got {type(given).__name__} {given!r}')
    given = dict(given)
    if given.pop('_delete_', False) or 'type' in given:
        return given
    return {**default, **given}


@MODELS.register_module()
class ZeroShotLearner(BaseModule):
    """Synthesises unseen-class features and trains the new classifier.

    Holds every module stage 2 trains, so that the detector's frozen
    segmenter and these parts can be wrapped for DDP separately
    (``MMSeparateDistributedDataParallel``). :meth:`forward` computes the
    losses of one of the two alternating steps (docs/method.md):

    - ``step='generator'``: MMD between synthetic and real seen features,
      a small CE of the current classifier on the synthetic seen features,
      and lambda x (relation alignment + disentanglement losses);
    - ``step='classifier'``: weighted CE of the classifier on all real
      query features plus synthetic features of unseen classes.

    The classes and the split come from the data set: the model passes its
    ``dataset_meta`` (``classes``, ``seen_classes``, ``unseen_classes``) to
    :meth:`set_dataset_meta` before the first step (``DatasetMetaHook`` in
    a runner, :func:`~mmpading.models.utils.stage2.set_dataset_meta`
    elsewhere). Until then the learner knows only the class count.

    Args:
        class_names (Sequence[str], optional): The data set's classes, in
            label order. None (the default): from ``dataset_meta``. Given
            only with ``split``.
        split (str | ZeroShotSplit, optional): Split name or split file
            path; with ``class_names``. None: from ``dataset_meta``.
        class_embeddings (str): Embedding file; rows are matched to the
            classes by name (a mismatch raises). Required.
        classifier (dict): Config of the classifier (..., C) ->
            (..., K + 1). For ``type='Linear'`` the sizes are filled in.
            Defaults to ``dict(type='Linear')``.
        generator (dict, optional): Feature generator config
            (``semantic_dim`` and ``feat_dim`` are filled in). None: no
            synthetic features (the projection baseline; then
            ``disentangle_head`` and ``relation_align_loss`` must be None
            too). Defaults to ``dict(type='PrimitiveGenerator')``.
        mmd_loss (dict, optional): Distribution-matching loss config; None
            only without a generator. Defaults to ``dict(type='MMDLoss')``.
        synthetic_cls_weight (float): Weight of the classifier's CE on
            synthetic seen features in the generator step.
        synthetic_cls_logits (str): The logits of that CE. ``'all'``: all
            K + 1 (no-object included), as the reference does for ZSP and
            ZSI; ``'seen'``: the seen classes' only, the targets renumbered
            among them, as the reference does for ZSS (its
            ``new_fc(...)[:, :156]`` with the 156 seen classes first,
            ``PADing/PADing_model.py:353``; for 133 or 65 / 80 classes the
            slice keeps every logit). Defaults to ``'all'``.
        disentangle_head (dict, optional): PADing's D; None: off (the
            ablations P and P+A). Defaults to ``dict(type='DisentangleHead')``.
        relation_align_loss (dict, optional): PADing's A; None: off.
            Defaults to ``dict(type='RelationAlignLoss')``.
        lambda_weight (float): lambda of docs/method.md (1e-4 panoptic, 1e-3
            instance / semantic). Defaults to 1e-4.
        num_unseen_per_iter (int, optional): Unseen synthetic features per
            classifier step; None: one per unseen class. Defaults to 5.
        unseen_with_replacement (bool): How those classes are drawn.
            False: without replacement, as the reference's
            ``randperm(U)[:n]`` (``PADing/PADing_model.py:434``): n distinct
            classes, all U once in random order when n >= U. True: n
            uniform draws with replacement. Defaults to False.
        seen_class_weight (float): CE weight of seen classes.
        unseen_class_weight (float): CE weight of unseen classes.
        no_object_weight (float): CE weight of the no-object class.
        feat_dim (int, optional): Class-embedding dimension C of the
            segmenter (its head's ``cls_embed.in_features``). Required;
            None (the default) means the model building the learner gives
            it.
        num_classes (int, optional): The class count K of the segmenter;
            None: ``len(class_names)``, or the model building the learner
            gives it.
        cross_rank_losses (bool): Under DDP (``forward(...,
            cross_rank=True)``), compute the losses over the features of
            all ranks, as one process computes them over the whole batch:
            MMD, the synthetic CE, the alignment and the disentanglement
            means over the gathered features, the classifier's weighted CE
            over all ranks' queries, the U unseen features of the generator
            step and the unseen draw of the classifier step made once (on
            rank 0). False: each rank computes them on its own images (the
            former behaviour). Defaults to True.
        init_cfg (dict, optional): Initialisation config.

    The parts (``classifier``, ``generator``, ``mmd_loss``,
    ``disentangle_head``, ``relation_align_loss``) are configs: None
    switches one off, a dict with ``type`` replaces the default, a dict
    without ``type`` changes fields of the default
    (:func:`component_cfg`).
    """

    def __init__(self,
                 class_names: Sequence[str] | None = None,
                 split: str | ZeroShotSplit | None = None,
                 class_embeddings: str | None = None,
                 classifier: dict = DEFAULT_CLASSIFIER,
                 generator: dict | None = DEFAULT_GENERATOR,
                 mmd_loss: dict | None = DEFAULT_MMD_LOSS,
                 synthetic_cls_weight: float = 0.001,
                 synthetic_cls_logits: str = 'all',
                 disentangle_head: dict | None = DEFAULT_DISENTANGLE_HEAD,
                 relation_align_loss: dict | None = (
                     DEFAULT_RELATION_ALIGN_LOSS),
                 lambda_weight: float = 1e-4,
                 num_unseen_per_iter: int | None = 5,
                 unseen_with_replacement: bool = False,
                 seen_class_weight: float = 1.0,
                 unseen_class_weight: float = 5.0,
                 no_object_weight: float = 0.1,
                 feat_dim: int | None = None,
                 num_classes: int | None = None,
                 cross_rank_losses: bool = True,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if feat_dim is None:
            raise ValueError(
                'ZeroShotLearner: feat_dim is not set; give the class-'
                "embedding size C of the segmenter (its head's "
                'cls_embed.in_features, e.g. feat_dim=256).')
        if not isinstance(feat_dim, int) or feat_dim <= 0:
            raise ValueError('ZeroShotLearner: feat_dim must be a positive '
                             f'int, got {feat_dim!r}')
        self.feat_dim = feat_dim
        classifier = component_cfg('classifier', classifier,
                                   DEFAULT_CLASSIFIER)
        if classifier is None:
            raise ValueError('ZeroShotLearner: classifier=None; the learner '
                             "needs one (default dict(type='Linear')).")
        generator = component_cfg('generator', generator, DEFAULT_GENERATOR)
        mmd_loss = component_cfg('mmd_loss', mmd_loss, DEFAULT_MMD_LOSS)
        disentangle_head = component_cfg('disentangle_head',
                                         disentangle_head,
                                         DEFAULT_DISENTANGLE_HEAD)
        relation_align_loss = component_cfg('relation_align_loss',
                                            relation_align_loss,
                                            DEFAULT_RELATION_ALIGN_LOSS)
        if class_embeddings is None:
            raise ValueError(
                'ZeroShotLearner: class_embeddings is not set; give the '
                'embedding file of the classes (docs/class_embeddings.md).')
        if (class_names is None) != (split is None):
            raise ValueError(
                'ZeroShotLearner: give class_names and split together, or '
                'neither (then both come from the data set\'s dataset_meta)')
        if class_names is not None:
            if num_classes is not None and num_classes != len(class_names):
                raise ValueError(
                    f'ZeroShotLearner: class_names lists {len(class_names)} '
                    f'classes but num_classes is {num_classes}')
            num_classes = len(class_names)
        if not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(
                'ZeroShotLearner: num_classes is not set; give class_names '
                'or the class count K of the segmenter (the stage-2 model '
                f'sets it), got {num_classes!r}')
        self.num_classes = num_classes
        self.class_embeddings_file = class_embeddings
        # The file's own row order: only its width D is needed before the
        # classes are known.
        file_embeddings, _ = load_class_embeddings(class_embeddings)
        semantic_dim = file_embeddings.shape[1]
        self.class_weights = (float(seen_class_weight),
                              float(unseen_class_weight),
                              float(no_object_weight))
        # The split's buffers, filled by set_classes (placeholders of the
        # right class count until then, so that .to(device) moves them).
        self.class_names: list[str] | None = None
        self.split_name: str | None = None
        self.register_buffer(
            'seen_ids', torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer(
            'unseen_ids', torch.zeros(0, dtype=torch.long), persistent=False)
        # Class index -> its column among the seen logits (-1: not seen).
        self.register_buffer(
            'seen_position', torch.full((num_classes + 1, ), -1),
            persistent=False)
        self.register_buffer(
            'class_semantic_embeddings',
            torch.zeros(num_classes, semantic_dim),
            persistent=False)
        self.register_buffer(
            'class_weight', torch.zeros(num_classes + 1), persistent=False)

        if classifier.get('type') == 'Linear':
            # torch's Linear in any scope (mmseg registers none).
            classifier.pop('type')
            classifier.setdefault('in_features', feat_dim)
            classifier.setdefault('out_features', num_classes + 1)
            self.classifier = nn.Linear(**classifier)
        else:
            if getattr(MODELS.get(classifier.get('type')),
                       'needs_class_semantic_embeddings', False):
                classifier.setdefault('class_semantic_embeddings',
                                      self.class_semantic_embeddings)
                classifier.setdefault('in_channels', feat_dim)
            self.classifier = MODELS.build(classifier)

        self.generator = None
        if generator is not None:
            generator.setdefault('semantic_dim', semantic_dim)
            generator.setdefault('feat_dim', feat_dim)
            self.generator = MODELS.build(generator)
        if mmd_loss is None and self.generator is not None:
            raise ValueError('ZeroShotLearner: mmd_loss=None, but the '
                             'generator is trained with it; keep the '
                             "default or give dict(type='MMDLoss', ...).")
        self.mmd_loss = None if mmd_loss is None else MODELS.build(mmd_loss)
        self.synthetic_cls_weight = synthetic_cls_weight
        if synthetic_cls_logits not in ('all', 'seen'):
            raise ValueError("synthetic_cls_logits must be 'all' or 'seen', "
                             f'got {synthetic_cls_logits!r}')
        self.synthetic_cls_logits = synthetic_cls_logits
        self.disentangle_head = None
        if disentangle_head is not None:
            # Its relation module pairs features with the projected
            # semantic embeddings, as the alignment does.
            disentangle_head.setdefault('semantic_dim', feat_dim)
            disentangle_head.setdefault('feat_dim', feat_dim)
            self.disentangle_head = MODELS.build(disentangle_head)
        self.relation_align_loss = None
        if relation_align_loss is not None:
            self.relation_align_loss = MODELS.build(relation_align_loss)
        if (self.disentangle_head or self.relation_align_loss) and \
                self.generator is None:
            raise ValueError('disentangle_head and relation_align_loss act '
                             'on synthetic features: they need a generator '
                             '(without one, set both to None)')
        self.lambda_weight = lambda_weight
        self.num_unseen_per_iter = num_unseen_per_iter
        self.unseen_with_replacement = unseen_with_replacement
        self.cross_rank_losses = cross_rank_losses

        # 0 until the classifier was initialised from stage 1's cls_embed;
        # persistent so that a resumed run does not initialise it again.
        self.register_buffer('classifier_initialised', torch.tensor(0))
        if class_names is not None:
            self.set_classes(class_names, resolve_split(split))

    # ------------------------------------------------- classes and split
    def set_dataset_meta(self, dataset_meta: Mapping) -> None:
        """Take the classes and the split from a data set's metainfo.

        Args:
            dataset_meta (Mapping): The data set's ``metainfo``: its
                ``classes`` and, from a ``zero_shot_split``,
                ``seen_classes`` and ``unseen_classes`` (the ZeroShot*
                data sets put them there).

        Raises:
            ValueError: The metainfo has no split, or a class list other
                than the one the learner already has.
        """
        missing = [
            key for key in ('classes', 'seen_classes', 'unseen_classes')
            if not dataset_meta.get(key)
        ]
        if missing:
            raise ValueError(
                f'ZeroShotLearner: the data set\'s dataset_meta has no '
                f'{" / ".join(missing)}: stage 2 needs a zero-shot data set '
                "with a split, e.g. dict(type='ZeroShotCocoPanopticDataset', "
                "zero_shot_split='zsp_coco', ...)")
        split = ZeroShotSplit(
            dataset_meta.get('zero_shot_split') or 'dataset_meta',
            seen=dataset_meta['seen_classes'],
            unseen=dataset_meta['unseen_classes'])
        self.set_classes(dataset_meta['classes'], split)

    def set_classes(self, class_names: Sequence[str],
                    split: ZeroShotSplit) -> None:
        """Fill the split's buffers: class ids, class weights, embeddings.

        A second call with the same classes and split does nothing; one
        with others raises (the training and the evaluation data must
        agree).

        Args:
            class_names (Sequence[str]): The data set's classes, in label
                order; K of them.
            split (ZeroShotSplit): The seen and unseen classes.
        """
        class_names = list(class_names)
        if len(class_names) != self.num_classes:
            raise ValueError(
                f'ZeroShotLearner: the data set has {len(class_names)} '
                f'classes but the segmenter {self.num_classes}: the model\'s '
                'class count and the data set\'s classes must agree')
        split.check_against(class_names)
        seen_ids = split.seen_ids(class_names)
        unseen_ids = split.unseen_ids(class_names)
        if self.class_names is not None:
            if (self.class_names, self.seen_ids.tolist(),
                    self.unseen_ids.tolist()) == (class_names, seen_ids,
                                                  unseen_ids):
                return
            raise ValueError(
                'ZeroShotLearner: given the classes and split of two data '
                f'sets that disagree: first {self.split_name!r} '
                f'({len(self.seen_ids)} seen / {len(self.unseen_ids)} '
                f'unseen of {self.class_names[:3]}...), now {split.name!r} '
                f'({len(seen_ids)} seen / {len(unseen_ids)} unseen of '
                f'{class_names[:3]}...); train and evaluate on one split')
        device = self.class_weight.device
        embeddings, _ = load_class_embeddings(
            self.class_embeddings_file, class_names=class_names)
        self.class_semantic_embeddings = torch.as_tensor(
            embeddings, dtype=torch.float32, device=device)
        self.seen_ids = torch.tensor(seen_ids, dtype=torch.long,
                                     device=device)
        self.unseen_ids = torch.tensor(unseen_ids, dtype=torch.long,
                                       device=device)
        seen_position = torch.full((self.num_classes + 1, ), -1,
                                   device=device)
        seen_position[self.seen_ids] = torch.arange(
            len(seen_ids), device=device)
        self.seen_position = seen_position
        seen_weight, unseen_weight, no_object_weight = self.class_weights
        class_weight = torch.full((self.num_classes + 1, ), seen_weight,
                                  device=device)
        class_weight[self.unseen_ids] = unseen_weight
        class_weight[-1] = no_object_weight
        self.class_weight = class_weight
        if hasattr(self.classifier, 'set_class_semantic_embeddings'):
            self.classifier.set_class_semantic_embeddings(
                self.class_semantic_embeddings)
        self.class_names = class_names
        self.split_name = split.name

    def require_classes(self) -> None:
        """Raise unless :meth:`set_classes` ran (the buffers it fills are
        placeholders until then)."""
        if self.class_names is None:
            raise RuntimeError(
                'ZeroShotLearner: the classes and split are not set. In a '
                "runner, set default_hooks.dataset_meta=dict(type="
                "'DatasetMetaHook') (the stage-2 configs of configs/ do); "
                'elsewhere call '
                'mmpading.models.utils.stage2.set_dataset_meta(model, '
                'dataset.metainfo) before training.')

    # --------------------------------------------------- gradient share
    #: Whether the next stage-2 step measures the generator's gradient
    #: share (set by GradientShareHook every N iterations).
    gradient_share_requested: bool = False
    #: The last measurement, until popped.
    gradient_share: GradientShare | None = None

    def request_gradient_share(self) -> None:
        """Measure the generator's gradient share in the next step
        (:func:`~mmpading.models.utils.stage2.train_learner_steps`)."""
        self.gradient_share_requested = True

    def pop_gradient_share(self) -> GradientShare | None:
        """The last measurement (None if none since the last pop; also
        None for a batch without matched queries), then forget it."""
        share, self.gradient_share = self.gradient_share, None
        return share

    # ------------------------------------------------------------ set-up
    def optimizer_groups(self) -> dict[str, list[nn.Module]]:
        """The modules each of stage 2's optimizers trains.

        ``PADingOptimWrapperConstructor`` reads it for a group that names
        no ``modules``.

        Returns:
            dict[str, list[nn.Module]]: ``'generator'``: the generator and
            the disentanglement head (those that are built; empty for the
            projection baseline), ``'classifier'``: the classifier.
        """
        return dict(
            generator=[
                module for module in (self.generator, self.disentangle_head)
                if module is not None
            ],
            classifier=[self.classifier])

    def init_classifier_from(self, cls_embed: nn.Linear) -> None:
        """Copy stage 1's ``cls_embed`` into the classifier, once."""
        if bool(self.classifier_initialised):
            return
        with torch.no_grad():
            if hasattr(self.classifier, 'init_from_linear'):
                self.classifier.init_from_linear(cls_embed)
            elif isinstance(self.classifier, nn.Linear) and \
                    self.classifier.weight.shape == cls_embed.weight.shape:
                self.classifier.weight.copy_(cls_embed.weight)
                self.classifier.bias.copy_(cls_embed.bias)
            else:
                raise TypeError(
                    f'Cannot initialise {type(self.classifier).__name__} '
                    f'{tuple(self.classifier.weight.shape)} from '
                    f'cls_embed {tuple(cls_embed.weight.shape)}: use a '
                    'Linear of the same shape or give the classifier an '
                    '`init_from_linear` method')
        self.classifier_initialised.fill_(1)

    # ----------------------------------------------------------- forward
    def forward(self,
                embeddings: Tensor,
                labels: Tensor,
                step: str,
                cross_rank: bool = False) -> dict[str, Tensor]:
        """Losses of one training step.

        Args:
            embeddings (Tensor): Frozen class embeddings of all queries of
                this process's images, shape (B, Q, C).
            labels (Tensor): Matched class per query, K for no-object,
                shape (B, Q).
            step (str): ``'generator'`` or ``'classifier'``.
            cross_rank (bool): The learner runs under DDP, which averages
                its gradients over the ranks: with ``cross_rank_losses``
                the losses are computed over the features of all ranks
                (every rank returns the same values), with gradients such
                that DDP's average is the gradient of the loss over the
                whole batch (:mod:`mmpading.models.utils.rank_gather`).
                No effect on one process.

        Returns:
            dict[str, Tensor]: Weighted losses of the step.
        """
        self.require_classes()
        gather = cross_rank and self.cross_rank_losses
        if step == 'generator':
            return self.generator_losses(embeddings, labels, gather)
        if step == 'classifier':
            return self.classifier_losses(embeddings, labels, gather)
        raise ValueError(
            f"step must be 'generator' or 'classifier', got {step!r}")

    def generator_losses(self,
                         embeddings: Tensor,
                         labels: Tensor,
                         cross_rank: bool = False) -> dict[str, Tensor]:
        """Generator-step losses (see :meth:`forward` for the arguments)."""
        if self.generator is None:
            raise RuntimeError('this learner has no generator')
        matched = labels != self.num_classes
        real_seen = embeddings[matched].detach().float()
        seen_labels = labels[matched]
        device = embeddings.device
        # One process: identities. Under DDP: the rows of all ranks.
        gather_seen = RowGather(len(seen_labels), device, enabled=cross_rank)
        if gather_seen.total == 0:
            # Nothing matched in this batch; keep the graph connected.
            zero = sum(p.sum() for p in self.generator.parameters()) * 0
            return dict(loss_mmd=zero)
        semantic = self.class_semantic_embeddings
        with_unseen = self.disentangle_head is not None or \
            self.relation_align_loss is not None
        # A and D also need unseen features, one per unseen class: one
        # generator call for both (rows are generated independently; one
        # call costs half of two). Under DDP rank 0 alone makes them, once
        # per step as one process does.
        unseen_labels = self.unseen_ids if with_unseen and \
            rows_on_this_rank(cross_rank) else self.unseen_ids[:0]
        gather_unseen = RowGather.from_rank0(
            len(self.unseen_ids) if with_unseen else 0, device,
            enabled=cross_rank)
        num_seen = len(seen_labels)

        def gather_synthetic(rows: Tensor) -> Tensor:
            """Per-synthetic-feature rows: [all seen; all unseen]."""
            if not cross_rank:
                return rows
            return torch.cat([gather_seen(rows[:num_seen]),
                              gather_unseen(rows[num_seen:])])

        synthetic_labels = torch.cat([seen_labels, unseen_labels])
        synthetic = self.generator(semantic[synthetic_labels])
        synthetic_seen = gather_seen(synthetic[:num_seen])
        all_seen_labels = gather_seen(seen_labels)
        losses = dict(
            loss_mmd=self.mmd_loss(synthetic_seen, gather_seen(real_seen)))
        # The classifier only scores here; its weights are not trained.
        logits = F.linear(synthetic_seen, *self._frozen_linear_params()) \
            if isinstance(self.classifier, nn.Linear) else \
            self._score_without_weight_grads(synthetic_seen)
        targets = all_seen_labels
        if self.synthetic_cls_logits == 'seen':
            # (N, K + 1) -> (N, S); labels -> their column among the seen.
            logits = logits[:, self.seen_ids]
            targets = self.seen_position[all_seen_labels]
        losses['loss_synthetic_cls'] = self.synthetic_cls_weight * \
            F.cross_entropy(logits.float(), targets)

        if not with_unseen:
            return losses
        projected = self.generator.semantic_proj(semantic)
        all_synthetic_labels = gather_synthetic(synthetic_labels)
        related = synthetic
        if self.disentangle_head is not None:
            # Per-feature terms here, the set means over all ranks' rows.
            related, unrelated = self.disentangle_head(synthetic)
            per_feature = self.disentangle_head.per_feature_losses(
                synthetic, synthetic_labels, projected, related, unrelated,
                self.unseen_ids)
            for name, value in self.disentangle_head.reduce_losses(
                    {key: gather_synthetic(rows)
                     for key, rows in per_feature.items()},
                    all_synthetic_labels, self.num_classes,
                    self.unseen_ids).items():
                losses[name] = self.lambda_weight * value
        if self.relation_align_loss is not None:
            losses['loss_align'] = self.lambda_weight * \
                self.relation_align_loss(gather_synthetic(related),
                                         all_synthetic_labels, projected,
                                         self.unseen_ids)
        return losses

    def classifier_losses(self,
                          embeddings: Tensor,
                          labels: Tensor,
                          cross_rank: bool = False) -> dict[str, Tensor]:
        """Classifier-step loss (see :meth:`forward` for the arguments)."""
        features = embeddings.flatten(0, 1).detach()
        labels = labels.flatten()
        gather = cross_rank and is_distributed()
        # Under DDP rank 0 alone draws the unseen classes, once per step.
        if self.generator is not None and len(self.unseen_ids) > 0 and \
                rows_on_this_rank(gather):
            unseen_labels = self._draw_unseen_labels()
            with torch.no_grad():
                synthetic = self.generator(
                    self.class_semantic_embeddings[unseen_labels])
            features = torch.cat([features, synthetic.to(features.dtype)])
            labels = torch.cat([labels, unseen_labels])
        logits = self.classifier(features)
        if not gather:
            return dict(loss_cls=F.cross_entropy(
                logits.float(), labels, weight=self.class_weight))
        # The weighted mean over all ranks' samples: sum(w * CE) / sum(w).
        weighted_ce = F.cross_entropy(
            logits.float(), labels, weight=self.class_weight,
            reduction='sum')
        one_per_rank = RowGather(
            1, features.device, row_counts=[1] * get_world_size())
        total_weight = one_per_rank(self.class_weight[labels].sum()[None])
        return dict(loss_cls=one_per_rank(weighted_ce[None]).sum() /
                    total_weight.sum())

    # ----------------------------------------------------------- helpers
    def _draw_unseen_labels(self) -> Tensor:
        """Unseen classes of one classifier step, shape (n, ) or (U, )."""
        if self.num_unseen_per_iter is None:
            return self.unseen_ids.clone()
        num_unseen = len(self.unseen_ids)
        if self.unseen_with_replacement:
            picks = torch.randint(
                num_unseen, (self.num_unseen_per_iter, ),
                device=self.unseen_ids.device)
        else:
            # As the reference: a CPU permutation, min(n, U) classes.
            picks = torch.randperm(num_unseen)[:self.num_unseen_per_iter]
        return self.unseen_ids[picks.to(self.unseen_ids.device)]

    def _frozen_linear_params(self) -> tuple[Tensor, Tensor]:
        return self.classifier.weight.detach(), self.classifier.bias.detach()

    def _score_without_weight_grads(self, features: Tensor) -> Tensor:
        params = [p for p in self.classifier.parameters() if p.requires_grad]
        for param in params:
            param.requires_grad_(False)
        try:
            return self.classifier(features)
        finally:
            for param in params:
                param.requires_grad_(True)


def unwrap_learner(module: nn.Module) -> ZeroShotLearner:
    """The learner inside a DDP wrapper, or the module itself."""
    return module.module if is_model_wrapper(module) else module
