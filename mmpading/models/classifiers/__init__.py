from .semantic_projection_classifier import SemanticProjectionClassifier

__all__ = ['SemanticProjectionClassifier']
