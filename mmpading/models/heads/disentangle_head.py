"""Feature disentanglement of PADing."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..losses.relation_align_loss import softmax_kl


def _encoder(feat_dim: int, hidden_dim: int, dropout: float) -> nn.Module:
    """Linear - Linear - LeakyReLU(0.2) - Dropout, (N, C) -> (N, C)."""
    return nn.Sequential(
        nn.Linear(feat_dim, hidden_dim), nn.Linear(hidden_dim, feat_dim),
        nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout))


@MODELS.register_module()
class DisentangleHead(BaseModule):
    """Split features into semantic-related and -unrelated parts.

    Two encoders map a feature ``x`` to its semantic-related part ``r`` and
    its semantic-unrelated part ``u`` (both ``feat_dim``); a decoder maps
    ``concat(r, u)`` back to ``x``. A relation module scores every
    (related feature, class embedding) pair:
    ``sigmoid(Linear(hidden, 1)(ReLU(Linear(feat + sem, hidden)(concat))))``.

    Losses (:meth:`loss`, already weighted as in PADing):

    - ``loss_recon``: ``0.5 * L1(decoder(concat(r, u)), x)``;
    - ``loss_unrelated_kl``: ``0.5 * KL(softmax(z / T) || softmax(u / T))``
      over the channels, ``z ~ N(0, I)`` drawn afresh on every call, the
      same KL form as the relation alignment (see
      :func:`~mmpading.models.losses.softmax_kl`);
    - ``loss_relation``: ``0.2 * CE(scores, labels)``, the (N, K) relation
      scores used as logits over the K classes.

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
            module. Defaults to 256.
        dropout (float): Dropout of encoders and decoder. Defaults to 0.1.
        kl_temperature (float): Temperature T of the unrelated-part KL.
            Defaults to 0.1.
        loss_recon_weight (float): Defaults to 0.5.
        loss_unrelated_kl_weight (float): Defaults to 0.5.
        loss_relation_weight (float): Defaults to 0.2.
        init_cfg (dict | list[dict], optional): Initialisation config.

    Note:
        The decoder is ``Linear(2C, hidden) - LeakyReLU(0.2) - Dropout -
        Linear(hidden, C)``: it ends with a linear layer so that it can
        reproduce signed, LayerNorm'd class embeddings.
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
        self.feat_dim = feat_dim
        self.semantic_dim = semantic_dim
        self.kl_temperature = kl_temperature
        self.loss_recon_weight = loss_recon_weight
        self.loss_unrelated_kl_weight = loss_unrelated_kl_weight
        self.loss_relation_weight = loss_relation_weight

        self.related_encoder = _encoder(feat_dim, hidden_dim, dropout)
        self.unrelated_encoder = _encoder(feat_dim, hidden_dim, dropout)
        self.decoder = nn.Sequential(
            nn.Linear(2 * feat_dim, hidden_dim),
            nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_dim, feat_dim))
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
             unrelated: Tensor | None = None) -> dict[str, Tensor]:
        """Disentanglement losses, weighted.

        Args:
            features (Tensor): Features to disentangle (synthetic in
                PADing), shape (N, feat_dim).
            labels (Tensor): Class index of each feature in [0, K), (N,).
            class_semantic_embeddings (Tensor): Shape (K, semantic_dim); the
                relation CE runs over these K classes.
            related (Tensor, optional): ``forward(features)[0]``, to reuse.
            unrelated (Tensor, optional): ``forward(features)[1]``; give
                both or neither.

        Returns:
            dict[str, Tensor]: ``loss_recon``, ``loss_unrelated_kl`` and
            ``loss_relation``, fp32 scalars (zeros attached to the graph
            when N = 0).
        """
        self._check_features(features)
        self._check_semantic(class_semantic_embeddings)
        self._check_labels(labels, features.shape[0],
                           class_semantic_embeddings.shape[0])
        if (related is None) != (unrelated is None):
            raise ValueError('DisentangleHead.loss: pass both related and '
                             'unrelated (the output of forward) or neither')
        if related is None:
            related, unrelated = self(features)
        if features.shape[0] == 0:
            zero = (features.sum() + related.sum() + unrelated.sum()).float()
            return dict(
                loss_recon=zero * 0.0,
                loss_unrelated_kl=zero * 0.0,
                loss_relation=zero * 0.0)

        reconstructed = self.reconstruct(related, unrelated)
        scores = self.relation_scores(related, class_semantic_embeddings)
        with torch.autocast(device_type=features.device.type, enabled=False):
            loss_recon = F.l1_loss(reconstructed.float(), features.float())
            unrelated = unrelated.float()
            loss_unrelated_kl = softmax_kl(unrelated,
                                           torch.randn_like(unrelated),
                                           self.kl_temperature)
            loss_relation = F.cross_entropy(scores, labels.long())
        return dict(
            loss_recon=self.loss_recon_weight * loss_recon,
            loss_unrelated_kl=self.loss_unrelated_kl_weight *
            loss_unrelated_kl,
            loss_relation=self.loss_relation_weight * loss_relation)

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
        if labels.numel() and (labels.min() < 0
                               or labels.max() >= num_classes):
            raise ValueError(
                f'DisentangleHead.loss: labels must be in [0, {num_classes})'
                f' (one row of class_semantic_embeddings per class), got '
                f'values in [{int(labels.min())}, {int(labels.max())}]')
