"""Feature disentanglement of PADing."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpading.models.utils.class_masks import (
    check_class_indices,
    unseen_class_mask,
)
from mmpading.registry import MODELS

_SET_REDUCTIONS = ('per_set', 'pooled')
_SEEN_RELATION_CLASSES = ('all', 'seen')
_UNSEEN_RELATION_CLASSES = ('unseen', 'all')


def _encoder(feat_dim: int, hidden_dim: int, dropout: float) -> nn.Module:
    """Linear - Linear - LeakyReLU(0.2) - Dropout, (N, C) -> (N, C).

    As the reference's ``Encoder`` (PADing/utils/network_utils.py:118-126).
    """
    return nn.Sequential(
        nn.Linear(feat_dim, hidden_dim), nn.Linear(hidden_dim, feat_dim),
        nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout))


def _decoder(feat_dim: int, hidden_dim: int, dropout: float,
             final_act: bool) -> nn.Module:
    """(N, 2C) -> (N, C); see ``DisentangleHead`` for the two endings."""
    layers = [
        nn.Linear(2 * feat_dim, hidden_dim),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, feat_dim)
    ]
    if final_act:
        # The reference's Decoder (network_utils.py:102-112) ends with
        # LeakyReLU(0.2) - Dropout after its last Linear.
        layers += [nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


@MODELS.register_module()
class DisentangleHead(BaseModule):
    """Split features into semantic-related and -unrelated parts.

    Two encoders map a feature ``x`` to its semantic-related part ``r`` and
    its semantic-unrelated part ``u`` (both ``feat_dim``); a decoder maps
    ``concat(r, u)`` back to ``x``. A relation module scores every
    (related feature, class embedding) pair:
    ``sigmoid(Linear(hidden, 1)(ReLU(Linear(feat + sem, hidden)(concat))))``.
    The layers keep PyTorch's default initialisation, as in the reference
    (PADing/utils/network_utils.py:85-129 applies no init of its own).

    Losses (:meth:`loss`, already weighted as in PADing,
    PADing/PADing_model.py:356-397 with the configs' WEIGHT_1 = WEIGHT_2 =
    1, WEIGHT_3 = 0.5):

    - ``loss_recon``: ``0.5 * L1(decoder(concat(r, u)), x)``, the mean over
      the entries of a set;
    - ``loss_unrelated_kl``: ``0.5 * KL(softmax(z / T) || softmax(u / T))``
      over the channels, normalised by the entries of a set, ``z ~ N(0,
      I)`` drawn afresh on every call, the same KL form as the relation
      alignment (see :func:`~mmpading.models.losses.softmax_kl`);
    - ``loss_relation``: ``0.2 * CE(scores, labels)``, the relation scores
      used as logits: for the seen set over all K classes
      (``seen_relation_classes='all'``) or the seen ones (``'seen'``), for
      the unseen set over the U unseen classes only
      (``unseen_relation_classes='unseen'``).

    With ``set_reduction='per_set'`` (the reference) each loss is averaged
    over the features of seen classes and over those of unseen classes
    separately and the two means are averaged 50/50 (only the non-empty
    sets count); ``'pooled'`` takes one mean over all features.

    The detector multiplies these by PADing's lambda; the relation
    alignment (:class:`~mmpading.models.losses.RelationAlignLoss`) is a
    separate module applied to the related parts, which :meth:`forward`
    returns and :meth:`loss` accepts to avoid a second forward pass.

    Args:
        feat_dim (int): Channels of the features and of both parts.
            Defaults to 256.
        semantic_dim (int): Channels of the class embeddings given to the
            relation module; PADing uses the projected embeddings (256).
            Defaults to 256.
        hidden_dim (int): Hidden channels of encoders, decoder and relation
            module (the reference uses ``feat_dim``). Defaults to 256.
        dropout (float): Dropout of encoders and decoder (the reference's
            DROP_OUT_ED: 0.1 in its panoptic and instance configs, 0.2 in
            the semantic one). Defaults to 0.1.
        kl_temperature (float): Temperature T of the unrelated-part KL.
            Defaults to 0.1.
        loss_recon_weight (float): Defaults to 0.5.
        loss_unrelated_kl_weight (float): Defaults to 0.5.
        loss_relation_weight (float): Defaults to 0.2.
        decoder_final_act (bool): End the decoder with LeakyReLU(0.2) -
            Dropout after its last Linear, as the reference. False: end
            with the Linear, so that the decoder can reproduce signed
            values exactly (mmpading's earlier head). Defaults to True.
        set_reduction (str): ``'per_set'`` (50/50 mean of the seen-set and
            unseen-set means, the reference) or ``'pooled'`` (one mean over
            all features). Defaults to ``'per_set'``.
        seen_relation_classes (str): Columns of the relation CE of the seen
            set: ``'all'`` K classes (the reference's panoptic and semantic
            settings, CLIP embeddings of every class) or ``'seen'`` (its
            instance setting, whose word2vec file holds the seen classes,
            PADing_model.py:134-139). Defaults to ``'all'``.
        unseen_relation_classes (str): Columns of the relation CE of the
            unseen set: ``'unseen'`` (the reference,
            PADing_model.py:383-385) or ``'all'`` K classes. Defaults to
            ``'unseen'``.
        init_cfg (dict | list[dict], optional): Initialisation config.

    Note:
        Without ``unseen_classes`` in :meth:`loss` every feature belongs to
        the seen set; with ``decoder_final_act=False`` as well, the losses
        are exactly those of mmpading's earlier head.
    """

    def __init__(self,
                 feat_dim: int = 256,
                 semantic_dim: int = 256,
                 hidden_dim: int = 256,
                 dropout: float = 0.1,
                 kl_temperature: float = 0.1,
                 loss_recon_weight: float = 0.5,
                 loss_unrelated_kl_weight: float = 0.5,
                 loss_relation_weight: float = 0.2,
                 decoder_final_act: bool = True,
                 set_reduction: str = 'per_set',
                 seen_relation_classes: str = 'all',
                 unseen_relation_classes: str = 'unseen',
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('feat_dim', feat_dim), ('semantic_dim',
                                                     semantic_dim),
                            ('hidden_dim', hidden_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'DisentangleHead: {name} must be a '
                                 f'positive int, got {value!r}')
        if kl_temperature <= 0:
            raise ValueError('DisentangleHead: kl_temperature must be > 0, '
                             f'got {kl_temperature}')
        for name, value, allowed in (
            ('set_reduction', set_reduction, _SET_REDUCTIONS),
            ('seen_relation_classes', seen_relation_classes,
             _SEEN_RELATION_CLASSES),
            ('unseen_relation_classes', unseen_relation_classes,
             _UNSEEN_RELATION_CLASSES)):
            if value not in allowed:
                raise ValueError(f'DisentangleHead: {name} must be one of '
                                 f'{allowed}, got {value!r}')
        self.feat_dim = feat_dim
        self.semantic_dim = semantic_dim
        self.kl_temperature = kl_temperature
        self.loss_recon_weight = loss_recon_weight
        self.loss_unrelated_kl_weight = loss_unrelated_kl_weight
        self.loss_relation_weight = loss_relation_weight
        self.set_reduction = set_reduction
        self.seen_relation_classes = seen_relation_classes
        self.unseen_relation_classes = unseen_relation_classes

        self.related_encoder = _encoder(feat_dim, hidden_dim, dropout)
        self.unrelated_encoder = _encoder(feat_dim, hidden_dim, dropout)
        self.decoder = _decoder(feat_dim, hidden_dim, dropout,
                                decoder_final_act)
        self.relation_fc = nn.Linear(feat_dim + semantic_dim, hidden_dim)
        self.relation_out = nn.Linear(hidden_dim, 1)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Split features.

        Args:
            features (Tensor): Shape (N, feat_dim).

        Returns:
            tuple[Tensor, Tensor]: Semantic-related and semantic-unrelated
            parts, each (N, feat_dim).
        """
        self._check_features(features)
        return self.related_encoder(features), self.unrelated_encoder(
            features)

    def reconstruct(self, related: Tensor, unrelated: Tensor) -> Tensor:
        """Decode ``concat(related, unrelated)``: (N, C) x 2 -> (N, C)."""
        return self.decoder(torch.cat([related, unrelated], dim=1))

    def relation_scores(self, related: Tensor,
                        class_semantic_embeddings: Tensor) -> Tensor:
        """Score every (feature, class) pair.

        Equal to applying the relation module to all N x K concatenated
        pairs, but the first layer is split into its feature and semantic
        halves and broadcast, so no (N * K, C + D) input is built.

        Args:
            related (Tensor): Related parts, shape (N, feat_dim).
            class_semantic_embeddings (Tensor): Shape (K, semantic_dim).

        Returns:
            Tensor: Sigmoid scores in (0, 1), shape (N, K), fp32.
        """
        self._check_semantic(class_semantic_embeddings)
        weight_feat, weight_sem = self.relation_fc.weight.split(
            [self.feat_dim, self.semantic_dim], dim=1)
        feat_term = F.linear(related, weight_feat, self.relation_fc.bias)
        sem_term = F.linear(
            class_semantic_embeddings.to(related.device), weight_sem)
        hidden = F.relu(feat_term[:, None, :] + sem_term[None, :, :])
        return self.relation_out(hidden).squeeze(-1).float().sigmoid()

    def loss(self,
             features: Tensor,
             labels: Tensor,
             class_semantic_embeddings: Tensor,
             related: Tensor | None = None,
             unrelated: Tensor | None = None,
             unseen_classes: Tensor | Sequence[int] | None = None
             ) -> dict[str, Tensor]:
        """Disentanglement losses, weighted.

        :meth:`per_feature_losses` followed by :meth:`reduce_losses`; a
        caller that gathers features over several processes calls the two
        with the gather in between.

        Args:
            features (Tensor): Features to disentangle (synthetic in
                PADing: one per matched seen segment and one per unseen
                class), shape (N, feat_dim).
            labels (Tensor): Class index of each feature in [0, K), (N,).
            class_semantic_embeddings (Tensor): Shape (K, semantic_dim).
            related (Tensor, optional): ``forward(features)[0]``, to reuse.
            unrelated (Tensor, optional): ``forward(features)[1]``; give
                both or neither.
            unseen_classes (Tensor | Sequence[int], optional): Ids of the
                unseen classes, or a bool mask of shape (K,): features of
                these classes form the unseen set. None: all features are
                in the seen set.

        Returns:
            dict[str, Tensor]: ``loss_recon``, ``loss_unrelated_kl`` and
            ``loss_relation``, fp32 scalars (zeros attached to the graph
            when N = 0).
        """
        if (related is None) != (unrelated is None):
            raise ValueError('DisentangleHead.loss: pass both related and '
                             'unrelated (the output of forward) or neither')
        if related is None:
            self._check_features(features)
            related, unrelated = self(features)
        if features.shape[0] == 0:
            self._check_features(features)
            self._check_semantic(class_semantic_embeddings)
            zero = (features.sum() + related.sum() + unrelated.sum()).float()
            return dict(
                loss_recon=zero * 0.0,
                loss_unrelated_kl=zero * 0.0,
                loss_relation=zero * 0.0)
        per_feature = self.per_feature_losses(
            features, labels, class_semantic_embeddings, related, unrelated,
            unseen_classes)
        return self.reduce_losses(per_feature, labels,
                                  class_semantic_embeddings.shape[0],
                                  unseen_classes)

    def per_feature_losses(
            self,
            features: Tensor,
            labels: Tensor,
            class_semantic_embeddings: Tensor,
            related: Tensor,
            unrelated: Tensor,
            unseen_classes: Tensor | Sequence[int] | None = None
    ) -> dict[str, Tensor]:
        """The unweighted terms of every feature, before any mean.

        Each term depends on its feature alone (and on a fresh noise draw
        for the unrelated-part KL), so the features may be split over
        processes; :meth:`reduce_losses` takes the means over the sets.
        Arguments as :meth:`loss` (``related`` and ``unrelated`` given);
        N = 0 is allowed.

        Returns:
            dict[str, Tensor]: ``recon`` (L1 over the channels),
            ``unrelated_kl`` (KL sum over the channels / C) and
            ``relation`` (CE over the set's columns), fp32, each (N,).
        """
        self._check_features(features)
        self._check_semantic(class_semantic_embeddings)
        num_classes = class_semantic_embeddings.shape[0]
        self._check_labels(labels, features.shape[0], num_classes)
        device = features.device
        labels = labels.to(device=device, dtype=torch.long)
        unseen_mask = unseen_class_mask(
            unseen_classes, num_classes, device, owner='DisentangleHead.loss')
        reconstructed = self.reconstruct(related, unrelated)
        scores = self.relation_scores(related, class_semantic_embeddings)
        with torch.autocast(device_type=device.type, enabled=False):
            # Per-feature terms; a set's mean of them is the reference's
            # per-set loss (L1 'mean', KL sum / numel, CE 'mean').
            recon = (reconstructed.float() -
                     features.float()).abs().mean(dim=1)
            unrelated = unrelated.float()
            noise = torch.randn_like(unrelated)
            kl = F.kl_div(
                F.log_softmax(unrelated / self.kl_temperature, dim=1),
                F.log_softmax(noise / self.kl_temperature, dim=1),
                reduction='none',
                log_target=True).mean(dim=1)
            is_unseen = unseen_mask[labels]
            sets = [~is_unseen, is_unseen]
            columns = [
                None if self.seen_relation_classes == 'all' else
                ~unseen_mask,
                None if self.unseen_relation_classes == 'all' else
                unseen_mask
            ]
            relation = scores.new_zeros(labels.shape)
            for rows, cols in zip(sets, columns):
                # No `if rows.any()` (a device wait): the CE of no rows is
                # empty and writes nothing.
                relation[rows] = self._relation_ce(scores[rows],
                                                   labels[rows], cols)
        return dict(recon=recon, unrelated_kl=kl, relation=relation)

    def reduce_losses(
            self,
            per_feature: dict[str, Tensor],
            labels: Tensor,
            num_classes: int,
            unseen_classes: Tensor | Sequence[int] | None = None
    ) -> dict[str, Tensor]:
        """Weighted losses from :meth:`per_feature_losses`' terms.

        Args:
            per_feature (dict[str, Tensor]): ``recon``, ``unrelated_kl``,
                ``relation``, each (N,), N > 0.
            labels (Tensor): Class of each feature, (N,).
            num_classes (int): K.
            unseen_classes (Tensor | Sequence[int], optional): As in
                :meth:`loss`.

        Returns:
            dict[str, Tensor]: ``loss_recon``, ``loss_unrelated_kl`` and
            ``loss_relation``, fp32 scalars.
        """
        device = labels.device
        unseen_mask = unseen_class_mask(
            unseen_classes, num_classes, device, owner='DisentangleHead.loss')
        is_unseen = unseen_mask[labels.long()]
        sets = [~is_unseen, is_unseen]
        if self.set_reduction != 'pooled':
            # The mean of an empty set is NaN: drop empty sets, with one
            # device wait for the three losses.
            present = torch.stack([rows.any() for rows in sets]).tolist()
            sets = [rows for rows, kept in zip(sets, present) if kept]
        with torch.autocast(device_type=device.type, enabled=False):
            loss_recon, loss_kl, loss_relation = (
                self._reduce(per_feature[name], sets)
                for name in ('recon', 'unrelated_kl', 'relation'))
        return dict(
            loss_recon=self.loss_recon_weight * loss_recon,
            loss_unrelated_kl=self.loss_unrelated_kl_weight * loss_kl,
            loss_relation=self.loss_relation_weight * loss_relation)

    @staticmethod
    def _relation_ce(scores: Tensor, labels: Tensor,
                     columns: Tensor | None) -> Tensor:
        """Per-row CE of (n, K) scores over the classes in ``columns``.

        ``columns``: a (K,) bool mask, None for all K; ``labels`` must lie
        in it. The targets are the labels' positions among the columns.
        """
        if columns is None:
            return F.cross_entropy(scores, labels, reduction='none')
        position = columns.long().cumsum(0) - 1
        return F.cross_entropy(
            scores[:, columns], position[labels], reduction='none')

    def _reduce(self, values: Tensor, sets: list[Tensor]) -> Tensor:
        """Per-feature (N,) values -> scalar, per ``set_reduction``; ``sets``
        are the non-empty sets."""
        if self.set_reduction == 'pooled':
            return values.mean()
        return torch.stack([values[rows].mean() for rows in sets]).mean()

    def _check_features(self, features: Tensor) -> None:
        if features.dim() != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(
                f'DisentangleHead expects features of shape '
                f'(N, {self.feat_dim}), got {tuple(features.shape)}')

    def _check_semantic(self, class_semantic_embeddings: Tensor) -> None:
        shape = tuple(class_semantic_embeddings.shape)
        if len(shape) != 2 or shape[1] != self.semantic_dim:
            raise ValueError(
                f'DisentangleHead was built with semantic_dim='
                f'{self.semantic_dim}; class_semantic_embeddings must have '
                f'shape (K, {self.semantic_dim}), got {shape} (pass the '
                'projected embeddings or change semantic_dim)')

    @staticmethod
    def _check_labels(labels: Tensor, num_features: int,
                      num_classes: int) -> None:
        if labels.shape != (num_features, ):
            raise ValueError(
                'DisentangleHead.loss: labels must have shape (N,) with '
                f'N = {num_features}, got {tuple(labels.shape)}')
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError('DisentangleHead.loss: labels must be integer '
                            f'class indices, got {labels.dtype}')
        # On the CPU only: no device wait in the training step.
        check_class_indices(
            labels, num_classes, 'DisentangleHead.loss: labels',
            ' (one row of class_semantic_embeddings per class)')

    def extra_repr(self) -> str:
        return (f'set_reduction={self.set_reduction!r}, '
                f'seen_relation_classes={self.seen_relation_classes!r}, '
                f'unseen_relation_classes={self.unseen_relation_classes!r}')
