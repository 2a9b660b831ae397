"""The tiny COCO-format data set shared by the metric tests."""
import pytest
from tiny_coco_data import TinyCoco, build_tiny_coco


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory) -> TinyCoco:
    return build_tiny_coco(tmp_path_factory.mktemp('tiny_coco'))
