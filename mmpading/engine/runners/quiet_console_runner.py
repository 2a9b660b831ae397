"""A Runner whose console shows progress and results, not its set-up."""
from __future__ import annotations

import logging

from mmengine.logging import MMLogger
from mmengine.runner import Runner

# Starts of the INFO messages mmengine logs while it sets a run up: the
# environment, the whole config, the hook order and one line per parameter
# option of DefaultOptimWrapperConstructor (hundreds for Mask2Former).
SETUP_MESSAGE_STARTS = (
    '\n' + '-' * 60 + '\nSystem environment:',
    'Config:\n',
    'Hooks will be executed in the following order',
    'paramwise_options -- ',
)


class ConsoleNoiseFilter(logging.Filter):
    """Drop a run's set-up listings from a handler (the console's).

    Only INFO (and DEBUG) records whose message starts with one of
    ``message_starts`` are dropped; warnings, errors, training and test
    progress and result tables pass.

    Args:
        message_starts (tuple[str, ...]): Starts of the dropped messages.
    """

    def __init__(self,
                 message_starts: tuple[str, ...] = SETUP_MESSAGE_STARTS
                 ) -> None:
        super().__init__()
        self.message_starts = tuple(message_starts)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not str(record.msg).startswith(self.message_starts)


class QuietConsoleRunner(Runner):
    """mmengine's Runner; the set-up listings go to the log file only.

    The console handler of the run's :class:`MMLogger` gets a
    :class:`ConsoleNoiseFilter` as the logger is built, before the Runner
    logs its environment and config; the log file in the work dir keeps
    everything.
    """

    def build_logger(self, *args, **kwargs) -> MMLogger:
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            # The console handler is the one plain StreamHandler (a
            # FileHandler is a StreamHandler subclass, kept as it is).
            if type(handler) is logging.StreamHandler and not any(
                    isinstance(f, ConsoleNoiseFilter)
                    for f in handler.filters):
                handler.addFilter(ConsoleNoiseFilter())
        return logger
