"""The GMMN baseline generator (ZS3Net-style MLP on embedding + noise)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpading.registry import MODELS

from .base_generator import BaseFeatureGenerator


@MODELS.register_module()
class GMMNGenerator(BaseFeatureGenerator):
    """Generative moment matching network, the baseline of PADing's Table 1.

    ``feature = MLP(concat(semantic_proj(a), z))`` with ``z ~ N(0, I)`` of
    ``noise_dim`` channels (zeros when noise is off) and the MLP
    ``Linear(feat_dim + noise_dim, hidden_dim) - LeakyReLU(0.2) - Dropout -
    Linear(hidden_dim, feat_dim)``. It shares the interface of
    :class:`PrimitiveGenerator`, so a config swaps one for the other by
    ``type``.

    Args:
        semantic_dim (int): Dimension D_sem of the semantic embeddings.
        feat_dim (int): Output dimension. Defaults to 256.
        hidden_dim (int): Hidden channels of the MLP. Defaults to 256.
        noise_dim (int): Channels of the noise vector. Defaults to 256.
        dropout (float): Dropout after the hidden layer. Defaults to 0.4,
            the value of the reference GMMN.
        with_noise (bool): Draw noise when ``forward(noise=None)``.
            Defaults to True.
        noise_std (float): Standard deviation of the noise. Defaults to 1.0.
        init_cfg (dict | list[dict], optional): Initialisation config; by
            default linear weights are Xavier-uniform.
    """

    def __init__(self,
                 semantic_dim: int,
                 feat_dim: int = 256,
                 hidden_dim: int = 256,
                 noise_dim: int = 256,
                 dropout: float = 0.4,
                 with_noise: bool = True,
                 noise_std: float = 1.0,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(
            semantic_dim=semantic_dim,
            feat_dim=feat_dim,
            with_noise=with_noise,
            noise_std=noise_std,
            init_cfg=init_cfg)
        for name, value in (('hidden_dim', hidden_dim), ('noise_dim',
                                                         noise_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'GMMNGenerator: {name} must be a positive '
                                 f'int, got {value!r}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f'GMMNGenerator: dropout must be in [0, 1), got {dropout}')
        self.noise_dim = noise_dim
        self.mlp = nn.Sequential(
            nn.Linear(feat_dim + noise_dim, hidden_dim),
            nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_dim, feat_dim))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self,
                semantic_embeddings: Tensor,
                noise: bool | None = None) -> Tensor:
        """Generate one synthetic feature per semantic embedding.

        Args:
            semantic_embeddings (Tensor): Shape (N, semantic_dim).
            noise (bool, optional): Draw noise (True), use zeros (False), or
                follow ``with_noise`` (None).

        Returns:
            Tensor: Features of shape (N, feat_dim).
        """
        self._check_input(semantic_embeddings)
        projected = self.semantic_proj(semantic_embeddings)
        shape = (projected.shape[0], self.noise_dim)
        if self._resolve_noise(noise):
            z = self.noise_std * torch.randn(
                shape, dtype=projected.dtype, device=projected.device)
        else:
            z = projected.new_zeros(shape)
        return self.mlp(torch.cat([projected, z], dim=1))
