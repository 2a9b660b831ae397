from .ignore_unseen_classes import IgnoreUnseenClasses

__all__ = ['IgnoreUnseenClasses']
