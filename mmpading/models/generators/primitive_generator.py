"""The primitive generator of PADing.

A synthetic class embedding is assembled from a bank of learned primitives:
the projected semantic embedding queries the bank through a small post-norm
transformer decoder, and Gaussian noise injected in every layer makes the
generator produce a distribution of features per class rather than a point.

The layer follows the reference's ``TransformerDecoderLayer.forward_post``
(``PADing/modeling/transformer_decoder/transformer.py:262-293`` in
heshuting555/PADing), built by ``PADing/PADing_model.py:146-150``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmpading.registry import MODELS

from .base_generator import BaseFeatureGenerator

INIT_MODES = ('reference', 'torch_default', 'xavier')


def mha_in_proj_bound(embed_dim: int) -> float:
    """Bound of the uniform init of ``nn.MultiheadAttention``'s in-projection.

    PyTorch initialises the packed (3C, C) ``in_proj_weight`` with
    ``xavier_uniform_`` (fan_in C, fan_out 3C), so each of the q/k/v slices
    is uniform on (-b, b) with ``b = sqrt(6 / (C + 3C))``.

    Args:
        embed_dim (int): Channels C.

    Returns:
        float: The bound b.
    """
    return math.sqrt(6.0 / (embed_dim + 3 * embed_dim))


def _init_like_mha_in_proj(linear: nn.Linear) -> None:
    """One q/k/v slice of ``nn.MultiheadAttention``: Xavier on (3C, C), 0."""
    bound = mha_in_proj_bound(linear.in_features)
    nn.init.uniform_(linear.weight, -bound, bound)
    nn.init.zeros_(linear.bias)


def _init_like_mha_out_proj(linear: nn.Linear) -> None:
    """``nn.MultiheadAttention.out_proj``: nn.Linear's weight, zero bias."""
    linear.reset_parameters()
    nn.init.zeros_(linear.bias)


def _init_xavier(module: nn.Module) -> None:
    """The former init of mmpading: Xavier-uniform linears, zero biases."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            nn.init.xavier_uniform_(child.weight)
            nn.init.zeros_(child.bias)


class PrimitiveCrossAttention(nn.Module):
    """Multi-head attention of N queries over a shared bank of P primitives.

    Every query attends to the same primitives, so keys and values are
    projected once, (P, C), instead of once per query as a batched
    ``nn.MultiheadAttention`` would require; memory stays O(N * H * P) for
    the assembly weights. The softmax runs in fp32 even under autocast. The
    returned weights are taken before attention dropout, so each row is a
    distribution over the primitives.

    Apart from sharing the projected bank, this is the reference's
    ``multihead_attn`` (``nn.MultiheadAttention(C, H, dropout)``,
    ``transformer.py:243,279-285``): queries scaled by ``1/sqrt(C/H)``,
    softmax over the bank, dropout on the weights, ``out_proj``.

    Args:
        embed_dim (int): Channels C of queries and primitives.
        num_heads (int): Number of heads H; must divide ``embed_dim``.
        dropout (float): Dropout on the assembly weights.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f'feat_dim ({embed_dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.attn_drop = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        """Initialise like ``nn.MultiheadAttention._reset_parameters``.

        q/k/v weights uniform on (-b, b), ``b = sqrt(6 / 4C)`` (Xavier on the
        packed (3C, C) in-projection), in-projection biases 0; ``out_proj``
        weight as nn.Linear (kaiming-uniform, bound ``1/sqrt(C)``), bias 0.
        """
        for linear in (self.q_proj, self.k_proj, self.v_proj):
            _init_like_mha_in_proj(linear)
        _init_like_mha_out_proj(self.out_proj)

    def forward(self, query: Tensor, primitives: Tensor) -> tuple[Tensor,
                                                                   Tensor]:
        """Assemble primitives for every query.

        Args:
            query (Tensor): Shape (N, C).
            primitives (Tensor): Shape (P, C).

        Returns:
            tuple[Tensor, Tensor]: The assembled features, shape (N, C), and
            the assembly weights, shape (N, H, P), fp32, rows summing to 1.
        """
        num_queries, num_primitives = query.shape[0], primitives.shape[0]
        scale = 1.0 / math.sqrt(self.head_dim)
        q = (self.q_proj(query) * scale).view(num_queries, self.num_heads,
                                              self.head_dim)
        k = self.k_proj(primitives).view(num_primitives, self.num_heads,
                                         self.head_dim)
        v = self.v_proj(primitives).view(num_primitives, self.num_heads,
                                         self.head_dim)
        logits = torch.einsum('nhd,phd->nhp', q, k)
        weights = logits.float().softmax(dim=-1)
        assembled = torch.einsum('nhp,phd->nhd',
                                 self.attn_drop(weights).to(v.dtype), v)
        return self.out_proj(assembled.reshape(num_queries,
                                               self.embed_dim)), weights


class PrimitiveAssemblyLayer(nn.Module):
    """A post-norm transformer decoder layer with noise injection.

    ``x = norm1(x + SelfAttn(x))``;
    ``x = norm2(x + CrossAttn(x, primitives) + noise_std * z)``,
    ``z ~ N(0, I)`` drawn afresh per layer and per feature;
    ``x = norm3(x + FFN(x))``.

    The query sequence has length one (one semantic embedding per feature),
    so the softmax of the self-attention is over a single key and equals 1:
    self-attention reduces to ``out_proj(a * v_proj(x))`` with ``a`` the
    attention weight, which is what this layer computes (the query/key
    projections of a generic attention module would receive no gradient).
    In training, the reference's ``nn.MultiheadAttention(C, H, dropout)``
    (``transformer.py:242,274-276``) drops that weight like any attention
    weight: per feature and per head, ``a`` is 0 with probability
    ``dropout`` and ``1 / (1 - dropout)`` otherwise, so whole heads of the
    value are zeroed (the ``out_proj`` bias stays). This comes on top of
    the residual dropout ``dropout1``. ``self_attn_weight_dropout=False``
    keeps ``a = 1`` (the former behaviour); in eval mode both are the same.

    Args:
        embed_dim (int): Channels C.
        num_heads (int): Heads H of both attentions.
        ffn_dim (int): Hidden channels of the FFN.
        dropout (float): Dropout of the residual branches, the FFN and the
            attention weights.
        self_attn_weight_dropout (bool): Drop the self-attention's weight
            per feature and head in training, like ``nn.MultiheadAttention``.
            Defaults to True (the reference).
    """

    def __init__(self,
                 embed_dim: int,
                 num_heads: int,
                 ffn_dim: int,
                 dropout: float,
                 self_attn_weight_dropout: bool = True) -> None:
        super().__init__()
        self.self_attn_value = nn.Linear(embed_dim, embed_dim)
        self.self_attn_out = nn.Linear(embed_dim, embed_dim)
        self.self_attn_weight_dropout = self_attn_weight_dropout
        self.self_attn_drop = nn.Dropout(dropout)
        self.cross_attn = PrimitiveCrossAttention(embed_dim, num_heads,
                                                  dropout)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, ffn_dim), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(ffn_dim, embed_dim))
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.norm3 = nn.LayerNorm(embed_dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def reset_parameters(self, init_mode: str = 'reference') -> None:
        """Initialise the layer.

        Args:
            init_mode (str): ``'reference'`` / ``'torch_default'``: what
                PyTorch gives the reference's modules: the self-attention's
                value projection and the cross-attention as
                ``nn.MultiheadAttention`` (see
                :meth:`PrimitiveCrossAttention.reset_parameters`), the
                self-attention's output projection as its ``out_proj``
                (nn.Linear weight, zero bias), the FFN as ``nn.Linear``
                (kaiming-uniform weights, uniform biases of bound
                ``1/sqrt(fan_in)``), LayerNorms ones / zeros. ``'xavier'``:
                every linear Xavier-uniform with zero bias (the former
                init).
        """
        if init_mode == 'xavier':
            _init_xavier(self)
            return
        _init_like_mha_in_proj(self.self_attn_value)
        _init_like_mha_out_proj(self.self_attn_out)
        self.cross_attn.reset_parameters()
        for module in (self.ffn[0], self.ffn[3], self.norm1, self.norm2,
                       self.norm3):
            module.reset_parameters()

    def self_attention(self, x: Tensor) -> Tensor:
        """Self-attention of a length-one sequence, before ``dropout1``.

        Args:
            x (Tensor): Queries, shape (N, C).

        Returns:
            Tensor: ``out_proj(a * v_proj(x))``, shape (N, C), with ``a`` the
            (dropped, in training) attention weight per feature and head.
        """
        value = self.self_attn_value(x)
        if self.self_attn_weight_dropout and self.training and \
                self.self_attn_drop.p > 0:
            num_heads = self.cross_attn.num_heads
            # The softmax over one key is exactly 1; dropping it is what
            # nn.MultiheadAttention does to its (N * H, 1, 1) weights.
            weight = self.self_attn_drop(
                value.new_ones(value.shape[0], num_heads, 1))
            value = (value.view(value.shape[0], num_heads, -1) *
                     weight).view_as(value)
        return self.self_attn_out(value)

    def forward(self, x: Tensor, primitives: Tensor,
                noise_std: float) -> tuple[Tensor, Tensor]:
        """Run the layer.

        Args:
            x (Tensor): Queries, shape (N, C).
            primitives (Tensor): The primitive bank, shape (P, C).
            noise_std (float): Standard deviation of the injected noise; 0
                disables it.

        Returns:
            tuple[Tensor, Tensor]: Updated queries (N, C) and assembly
            weights (N, H, P).
        """
        x = self.norm1(x + self.dropout1(self.self_attention(x)))
        assembled, weights = self.cross_attn(x, primitives)
        x = x + self.dropout2(assembled)
        if noise_std > 0:
            x = x + noise_std * torch.randn_like(x)
        x = self.norm2(x)
        x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x, weights


@MODELS.register_module()
class PrimitiveGenerator(BaseFeatureGenerator):
    """Primitive generator of PADing (He et al., CVPR 2023).

    The semantic embedding is projected to ``feat_dim`` and used as the
    query (sequence length 1) of a ``num_layers``-layer post-norm
    transformer decoder whose keys and values are a learned bank of
    ``num_primitives`` primitives; a final LayerNorm gives the synthetic
    class embedding. Gaussian noise is added in every layer after the
    cross-attention residual (see :class:`PrimitiveAssemblyLayer`).

    Args:
        semantic_dim (int): Dimension D_sem of the semantic embeddings.
        feat_dim (int): Dimension of primitives and outputs. Defaults to 256.
        num_primitives (int): Size P of the primitive bank. Defaults to 400.
        num_layers (int): Decoder layers. Defaults to 3.
        num_heads (int): Attention heads H. Defaults to 8.
        ffn_dim (int): FFN hidden channels. Defaults to 1024.
        dropout (float): Dropout inside the decoder. Defaults to 0.1.
        with_noise (bool): Inject noise when ``forward(noise=None)``.
            Defaults to True.
        noise_std (float): Standard deviation of the noise. Defaults to 1.0.
        self_attn_weight_dropout (bool): Drop the self-attention's single
            attention weight in training, per feature and head, as the
            reference's ``nn.MultiheadAttention`` does; False applies the
            residual dropout only (the former behaviour). Eval outputs do
            not depend on it. Defaults to True.
        init_mode (str): ``'reference'`` (default): every module as PyTorch
            initialises the reference's (``semantic_proj`` as nn.Linear,
            attentions as ``nn.MultiheadAttention``, FFN as nn.Linear,
            LayerNorms ones / zeros, primitives N(0, 1) as ``nn.Embedding``)
            and all layers start as copies of the first, as the reference's
            ``_get_clones`` deep-copies one layer (``transformer.py:108,
            360-361``). ``'torch_default'``: the same per module, each layer
            drawn independently. ``'xavier'``: Xavier-uniform linears with
            zero biases, primitives N(0, 1), independent layers (the former
            init).
        init_cfg (dict | list[dict], optional): Initialisation config of
            mmengine, applied by ``init_weights`` on top of ``init_mode``.

    Example:
        >>> generator = PrimitiveGenerator(semantic_dim=300)
        >>> features = generator(torch.randn(5, 300))  # (5, 256)
        >>> features, weights = generator(torch.randn(5, 300),
        ...                               return_weights=True)
        >>> len(weights), weights[0].shape  # 3, (5, 8, 400)
    """

    def __init__(self,
                 semantic_dim: int,
                 feat_dim: int = 256,
                 num_primitives: int = 400,
                 num_layers: int = 3,
                 num_heads: int = 8,
                 ffn_dim: int = 1024,
                 dropout: float = 0.1,
                 with_noise: bool = True,
                 noise_std: float = 1.0,
                 self_attn_weight_dropout: bool = True,
                 init_mode: str = 'reference',
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(
            semantic_dim=semantic_dim,
            feat_dim=feat_dim,
            with_noise=with_noise,
            noise_std=noise_std,
            init_cfg=init_cfg)
        for name, value in (('num_primitives', num_primitives),
                            ('num_layers', num_layers),
                            ('num_heads', num_heads), ('ffn_dim', ffn_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'PrimitiveGenerator: {name} must be a '
                                 f'positive int, got {value!r}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f'PrimitiveGenerator: dropout must be in [0, 1), got '
                f'{dropout}')
        if init_mode not in INIT_MODES:
            raise ValueError(f'PrimitiveGenerator: init_mode must be one of '
                             f'{INIT_MODES}, got {init_mode!r}')
        self.num_primitives = num_primitives
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.init_mode = init_mode
        self.primitives = nn.Parameter(torch.empty(num_primitives, feat_dim))
        self.layers = nn.ModuleList(
            PrimitiveAssemblyLayer(feat_dim, num_heads, ffn_dim, dropout,
                                   self_attn_weight_dropout)
            for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(feat_dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # nn.Embedding's default, the reference's dict_feature
        # (PADing_model.py:147), and the former init alike.
        nn.init.normal_(self.primitives, std=1.0)
        if self.init_mode == 'xavier':
            _init_xavier(self)
            return
        # fc_projection (PADing_model.py:146) is a plain nn.Linear.
        self.semantic_proj.reset_parameters()
        for layer in self.layers:
            layer.reset_parameters(self.init_mode)
        if self.init_mode == 'reference':
            first = self.layers[0].state_dict()
            for layer in self.layers[1:]:
                layer.load_state_dict(first)
        self.final_norm.reset_parameters()

    def forward(
        self,
        semantic_embeddings: Tensor,
        noise: bool | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Generate one synthetic feature per semantic embedding.

        Args:
            semantic_embeddings (Tensor): Shape (N, semantic_dim).
            noise (bool, optional): Inject noise (True), none (False), or
                follow ``with_noise`` (None).
            return_weights (bool): Also return the assembly weights.

        Returns:
            Tensor | tuple[Tensor, list[Tensor]]: Features of shape
            (N, feat_dim); with ``return_weights``, also one fp32 tensor of
            shape (N, num_heads, num_primitives) per layer, each row a
            softmax over the primitives (taken before attention dropout).
        """
        self._check_input(semantic_embeddings)
        noise_std = self.noise_std if self._resolve_noise(noise) else 0.0
        x = self.semantic_proj(semantic_embeddings)
        all_weights = []
        for layer in self.layers:
            x, weights = layer(x, self.primitives, noise_std)
            all_weights.append(weights)
        features = self.final_norm(x)
        if return_weights:
            return features, all_weights
        return features

    @torch.no_grad()
    def assembly_weights(self,
                         semantic_embeddings: Tensor,
                         noise: bool | None = False,
                         average_heads: bool = False) -> list[Tensor]:
        """Assembly weights over the primitives, for analysis.

        Runs in the module's current mode; call ``eval()`` first to remove
        dropout from the path.

        Args:
            semantic_embeddings (Tensor): Shape (N, semantic_dim).
            noise (bool, optional): As in :meth:`forward`; off by default so
                the weights are a function of the embedding.
            average_heads (bool): Average over heads.

        Returns:
            list[Tensor]: One tensor per layer, shape (N, num_heads, P), or
            (N, P) with ``average_heads``.
        """
        _, weights = self(semantic_embeddings, noise=noise,
                          return_weights=True)
        if average_heads:
            return [w.mean(dim=1) for w in weights]
        return weights
