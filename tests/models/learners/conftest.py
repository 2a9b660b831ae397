"""Fixtures the learner tests share."""
# The split and embedding files of test_zero_shot_learner.py's classes.
from test_zero_shot_learner import files  # noqa: F401
