from .query_features import (
                             QueryFeatures,
                             classify_with,
                             match_queries,
                             record_class_embeddings,
)

__all__ = [
    'QueryFeatures', 'classify_with', 'match_queries',
    'record_class_embeddings'
]
