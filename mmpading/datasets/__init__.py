"""Zero-shot data: splits, class embeddings, seen-only data sets, toy set."""
from . import embedding_builders  # noqa: F401
from .cached_query_features import CachedQueryFeatureDataset
from .cached_segmenter_outputs import CachedSegmenterOutputDataset
from .class_embeddings import load_class_embeddings, save_class_embeddings
from .splits import (
    ZeroShotSplit,
    get_split,
    list_splits,
    load_split,
    resolve_split,
    save_split,
)
from .toy_generator import generate_toy_dataset
from .training_checks import (
    ZeroShotTrainingDataError,
    check_zero_shot_training_data,
)
from .transforms import IgnoreUnseenClasses
from .zero_shot_coco import ZeroShotCocoDataset
from .zero_shot_coco_panoptic import ZeroShotCocoPanopticDataset
from .zero_shot_coco_stuff import ZeroShotCOCOStuffDataset

__all__ = [
    'embedding_builders',
    'ZeroShotSplit', 'get_split', 'list_splits', 'load_split', 'save_split',
    'resolve_split', 'load_class_embeddings', 'save_class_embeddings',
    'ZeroShotCocoDataset', 'ZeroShotCocoPanopticDataset',
    'ZeroShotCOCOStuffDataset', 'CachedQueryFeatureDataset',
    'CachedSegmenterOutputDataset',
    'IgnoreUnseenClasses', 'generate_toy_dataset',
    'check_zero_shot_training_data', 'ZeroShotTrainingDataError'
]
