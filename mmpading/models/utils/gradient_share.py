"""How much each generator loss term moves the generator: gradient shares.

PADing's generator step minimises MMD + synthetic CE + lambda x (A + D)
(docs/method.md). With the reference's lambda = 1e-4 the alignment (A) and
disentanglement (D) terms may carry a tiny part of the generator's
gradient; :func:`generator_gradient_share` measures it on one batch.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from mmengine.model.wrappers import is_model_wrapper
from torch import Tensor, nn

#: Loss key of ZeroShotLearner.generator_losses -> its group.
TERM_GROUPS = {
    'loss_mmd': 'mmd',
    'loss_synthetic_cls': 'synthetic_cls',
    'loss_align': 'align',
    'loss_recon': 'disentangle',
    'loss_unrelated_kl': 'disentangle',
    'loss_relation': 'disentangle',
}
#: Group -> its title in tables.
GROUP_TITLES = {
    'mmd': 'MMD',
    'synthetic_cls': 'synthetic CE',
    'align': 'alignment (A)',
    'disentangle': 'disentanglement (D: recon+kl+relation)',
}
#: The lambda-weighted groups and the ones they are compared with.
AD_GROUPS = ('align', 'disentangle')
BASE_GROUPS = ('mmd', 'synthetic_cls')


def term_group(key: str) -> str:
    """The group of a loss key; an unknown term is a group of its own."""
    return TERM_GROUPS.get(key, key.removeprefix('loss_'))


@dataclass(frozen=True)
class GradientShare:
    """Gradient norms of the generator loss terms on one batch.

    With g_t the gradient of term t w.r.t. the measured parameters
    (flattened into one vector) and g_G = sum of g_t over the terms of
    group G (the gradient of the group's summed loss):

    - ``term_norms[t] = ||g_t||``, ``group_norms[G] = ||g_G||``;
    - ``term_shares[t] = ||g_t|| / sum_s ||g_s||``, ``group_shares[G] =
      ||g_G|| / sum_H ||g_H||``: shares of the summed norms, which add up
      to 1 (the norm of the total gradient, ``total_norm = ||sum_t g_t||``,
      is at most that sum; it is smaller when terms pull in different
      directions);
    - ``ad_ratio = ||g_align + g_disentangle|| / ||g_mmd + g_synthetic_cls||``:
      the ratio of gradient norms lambda x (A + D) / (MMD + synthetic CE)
      (None without A and D, or when MMD and CE give a zero gradient).

    All norms are in the units of the step's loss (the terms are already
    weighted: lambda, ``synthetic_cls_weight``). A group absent from the
    learner (e.g. no disentanglement head) is absent from the dicts.

    Attributes:
        term_norms (dict[str, float]): Loss key -> gradient L2 norm.
        group_norms (dict[str, float]): Group -> gradient L2 norm.
        total_norm (float): L2 norm of the summed gradient of all terms
            (the gradient of the generator step's loss).
        ad_ratio (float | None): See above.
        num_matched (int): Matched (seen) queries of the batch, the real
            features the MMD compares with.
        num_parameters (int): Number of scalars the gradients are taken of.
    """
    term_norms: dict[str, float]
    group_norms: dict[str, float]
    total_norm: float
    ad_ratio: float | None
    num_matched: int
    num_parameters: int

    @property
    def term_shares(self) -> dict[str, float]:
        """Loss key -> ``||g_t|| / sum_s ||g_s||``."""
        return _shares(self.term_norms)

    @property
    def group_shares(self) -> dict[str, float]:
        """Group -> ``||g_G|| / sum_H ||g_H||``."""
        return _shares(self.group_norms)

    def log_scalars(self, prefix: str = 'grad_share/') -> dict[str, float]:
        """Flat scalars for the MessageHub.

        ``<prefix><group>`` (share), ``<prefix><group>_norm``,
        ``<prefix>total_norm`` and ``<prefix>ad_ratio`` (when defined).
        The names avoid ``loss`` and ``grad_norm``, which mmengine's
        LogProcessor would average over its window.
        """
        scalars = {f'{prefix}{group}': share
                   for group, share in self.group_shares.items()}
        scalars.update({f'{prefix}{group}_norm': norm
                        for group, norm in self.group_norms.items()})
        scalars[f'{prefix}total_norm'] = self.total_norm
        if self.ad_ratio is not None:
            scalars[f'{prefix}ad_ratio'] = self.ad_ratio
        return scalars

    def summary(self) -> str:
        """One line: each group's share and norm, and the A+D ratio."""
        parts = [f'{group} {self.group_shares[group]:.3g} '
                 f'(norm {norm:.3g})'
                 for group, norm in self.group_norms.items()]
        line = 'generator gradient share: ' + ', '.join(parts)
        if self.ad_ratio is not None:
            line += (f'; lambda*(A+D) / (MMD+synthetic CE) = '
                     f'{self.ad_ratio:.3g}')
        return line


def _shares(norms: dict[str, float]) -> dict[str, float]:
    total = sum(norms.values())
    return {key: (norm / total if total > 0 else 0.0)
            for key, norm in norms.items()}


def generator_parameters(learner: nn.Module) -> list[Tensor]:
    """The trainable parameters of the learner's generator."""
    # The learner itself, also when DDP wraps it.
    learner = learner.module if is_model_wrapper(learner) else learner
    if learner.generator is None:
        raise ValueError('this learner has no generator: there is no '
                         'generator gradient to share')
    return [p for p in learner.generator.parameters() if p.requires_grad]


def generator_gradient_share(
        learner: nn.Module,
        embeddings: Tensor,
        labels: Tensor,
        parameters: Iterable[Tensor] | None = None) -> GradientShare | None:
    """Each generator loss term's gradient norm on one batch.

    Runs the learner's generator losses
    (:meth:`~mmpading.models.ZeroShotLearner.generator_losses`) once, in the
    learner's current mode, and takes each term's gradient with
    ``torch.autograd.grad`` (the graph kept between terms). Training is
    not disturbed: no parameter's ``.grad`` is written, no optimizer steps,
    and the torch random state (CPU, and the CUDA device of
    ``embeddings``) is restored afterwards, so that the dropout masks the
    next training forward draws are the ones it would draw without this
    call. Runs in full precision, also inside the caller's autocast (AMP).

    Args:
        learner (nn.Module): A :class:`ZeroShotLearner` with a generator
            (or its DDP wrapper).
        embeddings (Tensor): Frozen query class embeddings, (B, Q, C).
        labels (Tensor): Matched class per query, K for no-object, (B, Q).
        parameters (Iterable[Tensor], optional): The parameters the
            gradients are taken of. Defaults to the generator's trainable
            parameters (:func:`generator_parameters`); the disentanglement
            head, which the same optimizer trains, is left out: its
            weights receive gradient from D (and A) only.

    Returns:
        GradientShare | None: The norms and shares; None when no query of
        the batch is matched (the generator losses are then a zero).
    """
    learner = learner.module if is_model_wrapper(learner) else learner
    params = list(parameters) if parameters is not None else \
        generator_parameters(learner)
    if not params:
        raise ValueError('generator_gradient_share: no parameters to take '
                         'the gradient of')
    num_matched = int((labels != len(learner.class_names)).sum())
    if num_matched == 0:
        return None
    devices = [embeddings.device] if embeddings.device.type == 'cuda' else []
    autocast_off = torch.autocast(embeddings.device.type, enabled=False) \
        if embeddings.device.type in ('cuda', 'cpu') else nullcontext()
    with torch.random.fork_rng(devices=devices), torch.enable_grad(), \
            autocast_off:
        losses = learner.generator_losses(embeddings.float(), labels)
        terms = {key: value for key, value in losses.items()
                 if 'loss' in key}
        gradients = _term_gradients(terms, params)
    return _gradient_share(gradients, num_matched,
                           sum(p.numel() for p in params))


def _term_gradients(terms: dict[str, Tensor],
                    params: Sequence[Tensor]) -> dict[str, Tensor]:
    """Flattened fp32 gradient of each term w.r.t. ``params``."""
    gradients = {}
    keys = list(terms)
    for index, key in enumerate(keys):
        grads = torch.autograd.grad(
            terms[key], params, retain_graph=index < len(keys) - 1,
            allow_unused=True)
        gradients[key] = torch.cat([
            (grad if grad is not None else torch.zeros_like(param)
             ).detach().flatten().float()
            for grad, param in zip(grads, params)
        ])
    return gradients


def _gradient_share(gradients: dict[str, Tensor], num_matched: int,
                    num_parameters: int) -> GradientShare:
    group_gradients: dict[str, Tensor] = {}
    for key, gradient in gradients.items():
        group = term_group(key)
        group_gradients[group] = group_gradients[group] + gradient \
            if group in group_gradients else gradient
    # Tables list the groups in one order: MMD, CE, A, D, others.
    order = list(GROUP_TITLES)
    group_gradients = dict(sorted(
        group_gradients.items(),
        key=lambda item: order.index(item[0]) if item[0] in order else
        len(order)))
    total = torch.stack(list(gradients.values())).sum(0)
    ad_ratio = None
    ad = [group_gradients[g] for g in AD_GROUPS if g in group_gradients]
    base = [group_gradients[g] for g in BASE_GROUPS if g in group_gradients]
    if ad and base:
        base_norm = float(torch.stack(base).sum(0).norm())
        if base_norm > 0:
            ad_ratio = float(torch.stack(ad).sum(0).norm()) / base_norm
    return GradientShare(
        term_norms={key: float(g.norm()) for key, g in gradients.items()},
        group_norms={group: float(g.norm())
                     for group, g in group_gradients.items()},
        total_norm=float(total.norm()),
        ad_ratio=ad_ratio,
        num_matched=num_matched,
        num_parameters=num_parameters)


def mean_gradient_share(shares: Sequence[GradientShare]) -> dict:
    """Means over batches of the norms, shares and ratio.

    Args:
        shares (Sequence[GradientShare]): One per batch (at least one).

    Returns:
        dict: ``term_norms``, ``term_shares``, ``group_norms``,
        ``group_shares`` (key -> mean over the batches), ``total_norm``,
        ``ad_ratio`` (mean of the per-batch ratios, None if undefined in
        any batch), ``ad_ratio_min`` / ``ad_ratio_max`` and ``batches``.
    """
    if not shares:
        raise ValueError('mean_gradient_share needs at least one batch')

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    def mean_dict(name: str) -> dict[str, float]:
        keys = list(dict.fromkeys(k for s in shares
                                  for k in getattr(s, name)))
        return {k: mean([getattr(s, name).get(k, 0.0) for s in shares])
                for k in keys}

    ratios = [s.ad_ratio for s in shares]
    defined = all(r is not None for r in ratios)
    return dict(
        term_norms=mean_dict('term_norms'),
        term_shares=mean_dict('term_shares'),
        group_norms=mean_dict('group_norms'),
        group_shares=mean_dict('group_shares'),
        total_norm=mean([s.total_norm for s in shares]),
        ad_ratio=mean(ratios) if defined else None,
        ad_ratio_min=min(ratios) if defined else None,
        ad_ratio_max=max(ratios) if defined else None,
        batches=len(shares))
