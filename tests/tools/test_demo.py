"""tools/demo.py end to end on a tiny toy set with a tiny schedule."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmpading.datasets.toy_generator import generate_toy_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_prints_the_gzsl_table(tmp_path):
    data_root = tmp_path / 'toy'
    generate_toy_dataset(str(data_root), num_train=12, num_val=4,
                         image_size=64)
    work_dir = tmp_path / 'demo'
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'demo.py'), '--data-root',
         str(data_root), '--work-dir', str(work_dir), '--stage1-iters', '2',
         '--stage2-iters', '2'],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    assert 'Generalized zero-shot results' in output
    for row in ('PQ', 'SQ', 'RQ', 'mIoU', 'mAP50 (mask)'):
        assert any(line.startswith(row) for line in output.splitlines())
    results = json.loads((work_dir / 'results.json').read_text())
    assert set(results) == {'PADing', 'GMMN'}
    for metrics in results.values():
        assert 'gzsl_panoptic/PQ_hm' in metrics
    # One overlay (ground truth | prediction) per validation image.
    overlays = list((work_dir / 'overlays').glob('*.png'))
    assert len(overlays) == 4
