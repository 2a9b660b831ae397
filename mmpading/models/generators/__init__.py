from .base_generator import BaseFeatureGenerator
from .gmmn_generator import GMMNGenerator
from .primitive_generator import (
                                  PrimitiveAssemblyLayer,
                                  PrimitiveCrossAttention,
                                  PrimitiveGenerator,
)

__all__ = [
    'BaseFeatureGenerator', 'GMMNGenerator', 'PrimitiveAssemblyLayer',
    'PrimitiveCrossAttention', 'PrimitiveGenerator'
]
