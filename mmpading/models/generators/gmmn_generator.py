"""The GMMN baseline generator (ZS3Net-style MLP on embedding + noise)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpading.registry import MODELS

from .base_generator import BaseFeatureGenerator

GMMN_INIT_MODES = ('reference', 'xavier')
# GMMNnetwork.init_weights fills every bias of the MLP with 0.01
# (PADing/utils/network_utils.py:25).
GMMN_REFERENCE_BIAS = 0.01


@MODELS.register_module()
class GMMNGenerator(BaseFeatureGenerator):
    """Generative moment matching network, the baseline of PADing's Table 1.

    ``feature = MLP(concat(semantic_proj(a), z))`` with ``z ~ N(0, I)`` of
    ``noise_dim`` channels (zeros when noise is off) and the MLP
    ``Linear(feat_dim + noise_dim, hidden_dim) - LeakyReLU(0.2) - Dropout -
    Linear(hidden_dim, feat_dim)``. It shares the interface of
    :class:`PrimitiveGenerator`, so a config swaps one for the other by
    ``type``.

    The MLP is the reference's ``GMMNnetwork``
    (``PADing/utils/network_utils.py:5-48`` in heshuting555/PADing, which
    defines it but does not build it): ``cat((embedding, noise))``, one
    hidden block ``Linear - LeakyReLU(0.2) - Dropout(0.4)``, then a linear,
    Xavier-uniform weights and biases filled with 0.01. The semantic
    projection in front of it plays the role of the reference's
    ``fc_projection`` (``PADing/PADing_model.py:146``), a plain nn.Linear.

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
        init_mode (str): ``'reference'`` (default): the MLP's linears
            Xavier-uniform with biases 0.01 (``GMMNnetwork.init_weights``,
            ``network_utils.py:22-25``) and ``semantic_proj`` as PyTorch
            initialises nn.Linear (kaiming-uniform weight, uniform bias).
            ``'xavier'``: every linear, ``semantic_proj`` included,
            Xavier-uniform with zero bias (the former init).
        init_cfg (dict | list[dict], optional): Initialisation config of
            mmengine, applied by ``init_weights`` on top of ``init_mode``.
    """

    def __init__(self,
                 semantic_dim: int,
                 feat_dim: int = 256,
                 hidden_dim: int = 256,
                 noise_dim: int = 256,
                 dropout: float = 0.4,
                 with_noise: bool = True,
                 noise_std: float = 1.0,
                 init_mode: str = 'reference',
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
        if init_mode not in GMMN_INIT_MODES:
            raise ValueError(f'GMMNGenerator: init_mode must be one of '
                             f'{GMMN_INIT_MODES}, got {init_mode!r}')
        self.noise_dim = noise_dim
        self.init_mode = init_mode
        self.mlp = nn.Sequential(
            nn.Linear(feat_dim + noise_dim, hidden_dim),
            nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_dim, feat_dim))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self.init_mode == 'xavier':
            mlp_bias, modules = 0.0, list(self.modules())
        else:
            # network_utils.py:22-25 initialises the MLP only; the
            # projection stays a default nn.Linear like fc_projection.
            self.semantic_proj.reset_parameters()
            mlp_bias, modules = GMMN_REFERENCE_BIAS, list(self.mlp.modules())
        for module in modules:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.constant_(module.bias, mlp_bias)

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
