"""Give the model its data set's classes and split before it runs."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop, Runner

from mmpading.models.utils.stage2 import set_dataset_meta
from mmpading.registry import HOOKS


@HOOKS.register_module()
class DatasetMetaHook(Hook):
    """Pass the data set's ``metainfo`` to the model before each loop.

    A stage-2 model takes its classes and its seen / unseen split from the
    data (``dataset_meta``), as the GZSL metrics do, so that a config
    states them once, on the data set. Before training, validation and
    testing this hook passes the metainfo of that loop's data set
    (:func:`~mmpading.models.utils.stage2.set_dataset_meta`); data sets
    whose classes or split disagree with the first one are refused.

    It does so already in ``before_run``, with the data set of the loop the
    runner has built, because hooks such as mmengine's ``EMAHook`` copy the
    model there: the copy must have the learner's class-sized buffers, or
    loading the averaged weights fails on their sizes.
    """

    # Before any hook that may run or copy the model.
    priority = 'VERY_HIGH'

    def before_run(self, runner: Runner) -> None:
        # Runner.train() / val() / test() build their loop (and its data
        # loader) before calling before_run; a loop not built yet is still
        # a config dict and building it here would load its data set.
        for name in ('train', 'test', 'val'):
            if isinstance(getattr(runner, f'_{name}_loop', None), BaseLoop):
                set_dataset_meta(
                    runner.model,
                    getattr(runner, f'{name}_dataloader').dataset.metainfo)
                return

    def before_train(self, runner: Runner) -> None:
        set_dataset_meta(runner.model,
                         runner.train_dataloader.dataset.metainfo)

    def before_val(self, runner: Runner) -> None:
        set_dataset_meta(runner.model, runner.val_dataloader.dataset.metainfo)

    def before_test(self, runner: Runner) -> None:
        set_dataset_meta(runner.model,
                         runner.test_dataloader.dataset.metainfo)
