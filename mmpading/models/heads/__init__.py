from .disentangle_head import DisentangleHead
from .universal_fusion_head import UniversalFusionHead
from .zero_shot_mask2former_head import (
    QueryFeatures,
    ZeroShotMask2FormerHead,
    ZeroShotMask2FormerSegHead,
)

__all__ = [
    'DisentangleHead', 'QueryFeatures', 'UniversalFusionHead',
    'ZeroShotMask2FormerHead', 'ZeroShotMask2FormerSegHead'
]
