from .pading_segmentor import PADingSegmentor

__all__ = ['PADingSegmentor']
