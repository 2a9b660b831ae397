"""Log how much each generator loss term moves PADing's generator."""
from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook, LoggerHook
from mmengine.model.wrappers import is_model_wrapper

from mmpading.registry import HOOKS

#: MessageHub scalars are logged under ``train/<prefix>...``.
SCALAR_PREFIX = 'grad_share/'


@HOOKS.register_module()
class GradientShareHook(Hook):
    """Every ``interval`` stage-2 iterations, log the gradient shares.

    The learner measures, in that iteration's own step and before the
    generator update, each generator loss term's gradient norm w.r.t. the
    generator's parameters on the iteration's batch
    (:func:`~mmpading.models.utils.gradient_share.generator_gradient_share`;
    training is unchanged: the weights of a run with this hook are
    bit-identical to those without). The hook puts into the MessageHub,
    hence into the log line and ``scalars.json``:

    - ``grad_share/{mmd,synthetic_cls,align,disentangle}``: each group's
      norm over the sum of the groups' norms;
    - ``grad_share/<group>_norm`` and ``grad_share/total_norm``;
    - ``grad_share/ad_ratio``: ||grad lambda(A + D)|| /
      ||grad (MMD + synthetic CE)||.

    and logs the same figures in one INFO line with three significant
    digits (the log line rounds to 4 decimals, which hides a 1e-4 share).
    Between measurements the log line repeats the last value: keep
    ``interval`` a multiple of the logger's.

    Iterations without a matched query log nothing. A stage-1 model, or a
    learner without a generator (the projection baseline), logs one line
    saying that the hook does nothing.

    Args:
        interval (int, optional): Iterations between measurements. None:
            the ``LoggerHook``'s interval, so that every log line carries a
            fresh value. Defaults to None.
    """

    # Before the LoggerHook (BELOW_NORMAL) reads the MessageHub.
    priority = 'NORMAL'

    def __init__(self, interval: int | None = None) -> None:
        if interval is not None and (not isinstance(interval, int)
                                     or interval < 1):
            raise ValueError('GradientShareHook: interval must be a positive '
                             f'integer or None, got {interval!r}')
        self.interval = interval
        self._learner = None

    def before_train(self, runner) -> None:
        """Find the stage-2 learner with a generator, and the interval."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        self._learner = None
        learner = getattr(model, 'learner', None)
        if learner is None:
            runner.logger.info(
                f'GradientShareHook: {type(model).__name__} does not train '
                'stage 2 (a PADing model); the hook does nothing.')
            return
        if learner.generator is None:
            runner.logger.info(
                'GradientShareHook: the learner has no generator (e.g. the '
                'projection baseline); the hook does nothing.')
            return
        self._learner = learner
        if self.interval is None:
            loggers = [hook for hook in runner.hooks
                       if isinstance(hook, LoggerHook)]
            self.interval = loggers[0].interval if loggers else 50

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Any = None) -> None:
        """Ask the learner to measure in this iteration's step."""
        if self._learner is not None and \
                self.every_n_train_iters(runner, self.interval):
            self._learner.request_gradient_share()

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Any = None,
                         outputs: Any = None) -> None:
        """Put the measurement into the MessageHub and the log."""
        if self._learner is None:
            return
        share = self._learner.pop_gradient_share()
        if share is None:
            return
        runner.message_hub.update_scalars({
            f'train/{key}': value
            for key, value in share.log_scalars(SCALAR_PREFIX).items()
        })
        runner.logger.info(f'Iter(train) [{runner.iter + 1}] '
                           f'{share.summary()}')
