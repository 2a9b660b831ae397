from .pading import PADing

__all__ = ['PADing']
