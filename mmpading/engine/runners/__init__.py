from .quiet_console_runner import ConsoleNoiseFilter, QuietConsoleRunner

__all__ = ['ConsoleNoiseFilter', 'QuietConsoleRunner']
