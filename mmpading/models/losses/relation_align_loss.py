"""Collaborative relationship alignment of PADing."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpading.models.utils.class_masks import (
    check_class_indices,
    unseen_class_mask,
)
from mmpading.registry import MODELS


def softmax_kl(prediction: Tensor, target: Tensor,
               temperature: float) -> Tensor:
    """KL(softmax(target / T) || softmax(prediction / T)) over rows, in fp32.

    Normalised by the number of entries (the sum of the row-wise KL
    divergences divided by rows x columns), as in the reference
    implementation whose loss weights PADing's configs use.

    Args:
        prediction (Tensor): Logits of the distribution being fitted, e.g.
            S_vis, shape (R, S).
        target (Tensor): Logits of the reference distribution, e.g. S_sem,
            shape (R, S).
        temperature (float): Softmax temperature T.

    Returns:
        Tensor: Scalar fp32 tensor.
    """
    log_p_pred = F.log_softmax(prediction.float() / temperature, dim=1)
    log_p_target = F.log_softmax(target.float() / temperature, dim=1)
    kl = F.kl_div(log_p_pred, log_p_target, reduction='sum', log_target=True)
    return kl / prediction.numel()


def _cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise cosine similarities of the rows of (R, C) and (S, C)."""
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()


@MODELS.register_module()
class RelationAlignLoss(nn.Module):
    """Align visual relations of features with semantic relations of labels.

    For features ``f_i`` with labels ``y_i`` and class embeddings ``e_k``:
    ``S_vis[i, j] = cos(f_i, f_j)`` and ``S_sem[i, j] = cos(e_{y_i},
    e_{y_j})``; each term is ``KL(softmax(S_sem / T) || softmax(S_vis / T))``
    (softmax over the columns) on a block of these matrices:

    - seen-seen: rows and columns are features of seen classes;
    - unseen-unseen: rows and columns are features of unseen classes;
    - seen-unseen: rows seen, columns unseen.

    The loss is the mean of the enabled terms whose blocks are non-empty
    (zero, still attached to the graph, when none is). Relations are
    computed per feature, as in the paper's reference implementation, not
    between class-mean features: PADing applies it to the
    semantic-related parts (from :class:`DisentangleHead`) of the synthetic
    seen features (one per matched segment) and the synthetic unseen
    features (one per unseen class).

    ``class_semantic_embeddings`` may be raw (e.g. 300-d word2vec) or
    projected; only cosine similarities are used, so any dimension works.
    PADing passes the generator's projected embeddings
    (``generator.semantic_proj(a)``), so the projection also receives this
    gradient; detach them to use the semantic relations as a fixed target.
    Softmax, log and KL run in fp32 with autocast disabled.

    Args:
        temperature (float): Softmax temperature T. Defaults to 0.1.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        use_seen_seen (bool): Include the seen-seen term.
        use_unseen_unseen (bool): Include the unseen-unseen term.
        use_seen_unseen (bool): Include the seen-unseen term.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 loss_weight: float = 1.0,
                 use_seen_seen: bool = True,
                 use_unseen_unseen: bool = True,
                 use_seen_unseen: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError('RelationAlignLoss: temperature must be > 0, '
                             f'got {temperature}')
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.use_seen_seen = use_seen_seen
        self.use_unseen_unseen = use_unseen_unseen
        self.use_seen_unseen = use_seen_unseen

    def forward(self,
                visual_features: Tensor,
                labels: Tensor,
                class_semantic_embeddings: Tensor,
                unseen_classes: Tensor | Sequence[int] | None = None
                ) -> Tensor:
        """Compute the loss.

        Args:
            visual_features (Tensor): Features, shape (N, C), e.g. the
                semantic-related parts of synthetic features.
            labels (Tensor): Class index of each feature, shape (N,), in
                [0, K).
            class_semantic_embeddings (Tensor): One embedding per class,
                shape (K, D).
            unseen_classes (Tensor | Sequence[int], optional): Ids of the
                unseen classes, or a bool mask of shape (K,). None: all
                classes are seen.

        Returns:
            Tensor: Scalar fp32 loss.
        """
        self._check_inputs(visual_features, labels, class_semantic_embeddings)
        device = visual_features.device
        num_classes = class_semantic_embeddings.shape[0]
        unseen_mask = unseen_class_mask(
            unseen_classes, num_classes, device, owner='RelationAlignLoss')
        labels = labels.to(device=device, dtype=torch.long)
        is_unseen = unseen_mask[labels]
        is_seen = ~is_unseen
        terms = []
        with torch.autocast(device_type=device.type, enabled=False):
            visual = visual_features.float()
            semantic = class_semantic_embeddings.float().to(device)[labels]
            # An empty group has no block: one device wait for both.
            has_seen, has_unseen = torch.stack(
                [is_seen.any(), is_unseen.any()]).tolist()
            blocks = (
                (self.use_seen_seen and has_seen, is_seen, is_seen),
                (self.use_unseen_unseen and has_unseen, is_unseen, is_unseen),
                (self.use_seen_unseen and has_seen and has_unseen, is_seen,
                 is_unseen),
            )
            for enabled, rows, cols in blocks:
                if not enabled:
                    continue
                terms.append(
                    softmax_kl(
                        _cosine_similarity(visual[rows], visual[cols]),
                        _cosine_similarity(semantic[rows], semantic[cols]),
                        self.temperature))
            if not terms:
                # Keeps the graph intact for callers that sum all losses.
                return visual.sum() * 0.0
            return self.loss_weight * torch.stack(terms).mean()

    @staticmethod
    def _check_inputs(visual_features: Tensor, labels: Tensor,
                      class_semantic_embeddings: Tensor) -> None:
        if visual_features.dim() != 2:
            raise ValueError(
                'RelationAlignLoss: visual_features must have shape (N, C), '
                f'got {tuple(visual_features.shape)}')
        if class_semantic_embeddings.dim() != 2:
            raise ValueError(
                'RelationAlignLoss: class_semantic_embeddings must have '
                f'shape (K, D), got {tuple(class_semantic_embeddings.shape)}')
        if labels.shape != (visual_features.shape[0], ):
            raise ValueError(
                'RelationAlignLoss: labels must have shape (N,) with N = '
                f'{visual_features.shape[0]} (one per feature), got '
                f'{tuple(labels.shape)}')
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError('RelationAlignLoss: labels must be integer class '
                            f'indices, got {labels.dtype}')
        # On the CPU only: no device wait in the training step.
        check_class_indices(
            labels, class_semantic_embeddings.shape[0],
            'RelationAlignLoss: labels',
            ' (one row of class_semantic_embeddings per class)')

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, '
                f'loss_weight={self.loss_weight}, '
                f'use_seen_seen={self.use_seen_seen}, '
                f'use_unseen_unseen={self.use_unseen_unseen}, '
                f'use_seen_unseen={self.use_seen_unseen}')
