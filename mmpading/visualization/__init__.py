from .panoptic_overlay_visualizer import PanopticOverlayVisualizer

__all__ = ['PanopticOverlayVisualizer']
