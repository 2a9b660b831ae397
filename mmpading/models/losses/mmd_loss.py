"""Maximum mean discrepancy with a sum of Gaussian kernels."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmpading.registry import MODELS


def _check_sets(source: Tensor, target: Tensor) -> None:
    for name, tensor in (('source', source), ('target', target)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f'MMDLoss: {name} must be a Tensor, got '
                            f'{type(tensor).__name__}')
        if tensor.dim() != 2:
            raise ValueError(
                f'MMDLoss: {name} must have shape (num_samples, channels), '
                f'got {tuple(tensor.shape)}')
        if tensor.shape[0] == 0:
            raise ValueError(
                f'MMDLoss: {name} is empty; the discrepancy of an empty set '
                'is undefined, skip the loss when there is nothing to match')
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            f'MMDLoss: source has {source.shape[1]} channels but target has '
            f'{target.shape[1]}; both sets must live in the same space')


@MODELS.register_module()
class MMDLoss(nn.Module):
    """Square root of the biased MMD^2 between two sets of features.

    With ``x = concat(source, target)`` (L = N + M rows) and the kernel

    ``k(f, f') = sum_v exp(-||f - f'||^2 / (2 v))``,

    the biased estimator is
    ``MMD^2 = mean k(s, s') + mean k(t, t') - 2 mean k(s, t)``, written as
    ``w^T K w`` with ``w = (1/N, ..., 1/N, -1/M, ..., -1/M)``, so sets of
    different sizes are weighted correctly. The loss is
    ``loss_weight * sqrt(max(MMD^2, 0) + eps)``; ``eps`` keeps the gradient
    finite when the two sets coincide.

    Everything runs in fp32 with autocast disabled. Memory: the whole
    L x L kernel is built in one vectorised pass, so memory is
    O((N+M)^2): autograd keeps the squared distances, one exp() output per
    kernel variance and the summed kernel. Measured on the CPU with the six
    default kernels, forward + backward peaks at about ten L x L fp32
    matrices, ``40 * (N + M)^2`` bytes (N = M = 1024: 160 MiB; N = M = 4096:
    about 2.5 GiB); split very large sets before calling.

    Args:
        kernel_variances (Sequence[float]): Variances v of the Gaussian
            kernels. Defaults to (2, 5, 10, 20, 40, 80).
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        eps (float): Added to MMD^2 before the square root.
            Defaults to 1e-12.
    """

    def __init__(self,
                 kernel_variances: Sequence[float] = (2, 5, 10, 20, 40, 80),
                 loss_weight: float = 1.0,
                 eps: float = 1e-12) -> None:
        super().__init__()
        variances = tuple(float(v) for v in kernel_variances)
        if not variances or min(variances) <= 0:
            raise ValueError('MMDLoss: kernel_variances must be a non-empty '
                             f'sequence of positive numbers, got '
                             f'{kernel_variances!r}')
        if eps < 0:
            raise ValueError(f'MMDLoss: eps must be >= 0, got {eps}')
        self.kernel_variances = variances
        self.loss_weight = loss_weight
        self.eps = eps

    def squared_mmd(self, source: Tensor, target: Tensor) -> Tensor:
        """The biased estimate of MMD^2 (may be slightly negative).

        Args:
            source (Tensor): Shape (N, C).
            target (Tensor): Shape (M, C).

        Returns:
            Tensor: Scalar fp32 tensor.
        """
        _check_sets(source, target)
        num_source, num_target = source.shape[0], target.shape[0]
        with torch.autocast(device_type=source.device.type, enabled=False):
            x = torch.cat([source.float(), target.float()], dim=0)
            sq_norms = x.pow(2).sum(dim=1)
            sq_dists = (sq_norms[:, None] + sq_norms[None, :] -
                        2.0 * (x @ x.t())).clamp_min(0)
            # Accumulated in place: autograd keeps each exp() output for
            # its backward, the running sum needs no extra copies.
            kernel = torch.zeros_like(sq_dists)
            for variance in self.kernel_variances:
                kernel.add_(torch.exp(sq_dists * (-0.5 / variance)))
            set_weights = torch.cat([
                x.new_full((num_source, ), 1.0 / num_source),
                x.new_full((num_target, ), -1.0 / num_target)
            ])
            return set_weights @ (kernel @ set_weights)

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            source (Tensor): Features of one set, e.g. synthetic, (N, C).
            target (Tensor): Features of the other set, e.g. real, (M, C).

        Returns:
            Tensor: Scalar fp32 loss.
        """
        mmd2 = self.squared_mmd(source, target)
        return self.loss_weight * torch.sqrt(mmd2.clamp_min(0) + self.eps)

    def extra_repr(self) -> str:
        return (f'kernel_variances={self.kernel_variances}, '
                f'loss_weight={self.loss_weight}')
