from .pading import PADing
from .pading_from_cache import PADingFromCache

__all__ = ['PADing', 'PADingFromCache']
