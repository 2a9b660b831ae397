"""Helpers of the models, imported by their module path.

The low-level pieces here (``class_masks``, ``rank_gather``,
``query_features``) are imported by heads and learners, and ``stage2``
imports the learners: this ``__init__`` re-exports nothing, so importing a
helper does not import the models above it (no import cycle).
"""
