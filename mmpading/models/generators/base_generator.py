"""Interface shared by the feature generators of stage 2."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

from mmengine.model import BaseModule
from torch import Tensor, nn


class BaseFeatureGenerator(BaseModule, metaclass=ABCMeta):
    """Maps class semantic embeddings to synthetic class embeddings.

    Every generator shares this interface so that a config swaps one for
    another by changing ``type`` only: the input is a batch of semantic
    embeddings (one row per feature to synthesise, typically the embedding
    of each sample's class) and the output is one ``feat_dim`` feature per
    row. All generators start with a linear projection of the semantic
    embedding to ``feat_dim`` (``semantic_proj``), which the relation
    alignment of PADing also uses for the projected class embeddings.

    Args:
        semantic_dim (int): Dimension D_sem of the semantic embeddings,
            e.g. 512 (CLIP), 300 (word2vec) or the toy attribute dimension.
        feat_dim (int): Dimension of the synthesised features (the class
            embedding size of the segmenter). Defaults to 256.
        with_noise (bool): Whether ``forward`` draws Gaussian noise when
            its ``noise`` argument is None. Defaults to True.
        noise_std (float): Standard deviation of the noise. Defaults to 1.0.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 semantic_dim: int,
                 feat_dim: int = 256,
                 with_noise: bool = True,
                 noise_std: float = 1.0,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('semantic_dim', semantic_dim), ('feat_dim',
                                                             feat_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f'{type(self).__name__}: {name} must be a positive '
                    f'int, got {value!r}')
        if noise_std < 0:
            raise ValueError(f'{type(self).__name__}: noise_std must be >= 0,'
                             f' got {noise_std}')
        self.semantic_dim = semantic_dim
        self.feat_dim = feat_dim
        self.with_noise = with_noise
        self.noise_std = float(noise_std)
        self.semantic_proj = nn.Linear(semantic_dim, feat_dim)

    def _check_input(self, semantic_embeddings: Tensor) -> None:
        """Raise a ValueError naming the problem if the input is malformed."""
        if not isinstance(semantic_embeddings, Tensor):
            raise TypeError(
                f'{type(self).__name__} expects a Tensor of semantic '
                f'embeddings, got {type(semantic_embeddings).__name__}')
        if semantic_embeddings.dim() != 2:
            raise ValueError(
                f'{type(self).__name__} expects semantic embeddings of '
                f'shape (N, {self.semantic_dim}), got '
                f'{tuple(semantic_embeddings.shape)}; stack one embedding '
                'per feature to generate')
        found = semantic_embeddings.shape[-1]
        if found != self.semantic_dim:
            raise ValueError(
                f'{type(self).__name__} was built with '
                f'semantic_dim={self.semantic_dim} but the embeddings have '
                f'dimension {found}; set semantic_dim={found} in the config '
                'or pass embeddings of the configured source')
        if not semantic_embeddings.is_floating_point():
            raise TypeError(
                f'{type(self).__name__} expects floating-point embeddings, '
                f'got {semantic_embeddings.dtype}')

    def _resolve_noise(self, noise: bool | None) -> bool:
        """The effective noise switch: the argument wins over the default."""
        use_noise = self.with_noise if noise is None else bool(noise)
        return use_noise and self.noise_std > 0

    @abstractmethod
    def forward(self,
                semantic_embeddings: Tensor,
                noise: bool | None = None) -> Tensor:
        """Generate one feature per semantic embedding.

        Args:
            semantic_embeddings (Tensor): Shape (N, semantic_dim).
            noise (bool, optional): Draw noise (True), use none (False) or
                follow ``with_noise`` (None).

        Returns:
            Tensor: Synthetic features of shape (N, feat_dim).
        """
