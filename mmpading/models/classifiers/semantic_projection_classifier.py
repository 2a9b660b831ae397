"""Classifier whose class weights are fixed semantic embeddings."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpading.registry import MODELS


@MODELS.register_module()
class SemanticProjectionClassifier(nn.Module):
    """The projection baseline: score queries against class embeddings.

    A learned linear map takes a class embedding of the segmenter into the
    semantic space; the logit of class k is the scaled cosine similarity to
    the fixed semantic embedding of class k. The no-object logit comes from
    a linear head on the query itself. Unseen classes get logits for free,
    but the map is fitted on seen classes only, which is what PADing's
    generator is meant to fix.

    Args:
        class_semantic_embeddings (Tensor): Fixed class weights, (K, D).
        in_channels (int): Query dimension C. Defaults to 256.
        logit_scale (float): Initial scale of the cosine similarities
            (learned). Defaults to 10, i.e. temperature 0.1.
    """

    needs_class_semantic_embeddings = True

    def __init__(self,
                 class_semantic_embeddings: Tensor,
                 in_channels: int = 256,
                 logit_scale: float = 10.0) -> None:
        super().__init__()
        # A fixed table: no gradient may flow back to the caller's tensor.
        embeddings = torch.as_tensor(
            class_semantic_embeddings, dtype=torch.float32).detach()
        if embeddings.dim() != 2:
            raise ValueError('class_semantic_embeddings must be (K, D), got '
                             f'shape {tuple(embeddings.shape)}')
        self.register_buffer(
            'class_weights', F.normalize(embeddings, dim=-1), persistent=False)
        self.projection = nn.Linear(in_channels, embeddings.shape[1])
        self.no_object = nn.Linear(in_channels, 1)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)))

    def set_class_semantic_embeddings(self, embeddings: Tensor) -> None:
        """Replace the fixed class weights (the learner calls it once the
        data set's classes are known).

        Args:
            embeddings (Tensor): Class embeddings, (K, D), as at
                construction.
        """
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        if embeddings.shape != self.class_weights.shape:
            raise ValueError(
                'SemanticProjectionClassifier: class embeddings of shape '
                f'{tuple(embeddings.shape)} replace ones of shape '
                f'{tuple(self.class_weights.shape)}')
        self.class_weights = F.normalize(
            embeddings.detach().to(self.class_weights.device), dim=-1)

    def init_from_linear(self, linear: nn.Linear) -> None:
        """Start the no-object head from a (C -> K + 1) classifier's."""
        with torch.no_grad():
            self.no_object.weight.copy_(linear.weight[-1:])
            self.no_object.bias.copy_(linear.bias[-1:])

    def forward(self, queries: Tensor) -> Tensor:
        """Logits of queries (..., C) -> (..., K + 1)."""
        projected = F.normalize(self.projection(queries).float(), dim=-1)
        class_logits = self.logit_scale * projected @ self.class_weights.t()
        return torch.cat(
            [class_logits, self.no_object(queries).float()],
            dim=-1).to(queries.dtype)
