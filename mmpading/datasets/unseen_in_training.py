"""What both leakage guards say: the seen-only modes, the opt-out, the error.

Shared by the data sets (:mod:`.zero_shot_mixin`, at construction) and the
config check before the Runner (:mod:`.training_checks`), which imports the
data sets; kept apart so that neither imports the other for its messages.
"""
from __future__ import annotations

import logging

from mmengine.logging import print_log

OPT_OUT = 'allow_unseen_in_training'
TRAINING_MODES = ('drop_unseen', 'ignore_unseen')
MODE_FIX = ("zero_shot_mode='drop_unseen' for training (the PADing "
            "protocol), 'ignore_unseen' for the ZSS protocol (unseen pixels "
            'ignored)')


class ZeroShotTrainingDataError(ValueError):
    """A training set of a zero-shot run would show unseen classes."""


def warn_unseen_in_training(source: str, reason: str) -> None:
    """Log (WARNING) that a training set contains unseen classes."""
    print_log(
        f'{source}: {OPT_OUT}=True: the training set contains images with '
        f'unseen classes ({reason}); unseen-class results of this run are '
        'not zero-shot.', logger='current', level=logging.WARNING)
