"""tools/analysis_tools/new_class_experiment.py end to end on the tiny toy
set (two iterations per stage): the report is what the runs measured."""
import json
from pathlib import Path

import pytest

from _helpers import load_tool_module

TOOL = (Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' /
        'new_class_experiment.py')


@pytest.fixture(scope='module')
def tool():
    return load_tool_module(str(TOOL))


@pytest.mark.slow
def test_runs_end_to_end_and_reports_its_measurements(tool, tiny_toy_root,
                                                      tmp_path):
    out = tmp_path / 'docs' / 'new_classes.md'
    assert tool.main([
        '--data-root', tiny_toy_root, '--hold-out', 'yellow square',
        '--seeds', '0', '1', '--stage1-iters', '2', '--stage2-iters', '2',
        '--work-dir', str(tmp_path / 'work'), '--out', str(out)
    ]) == 0
    raw = json.loads(out.with_suffix('.json').read_text())
    assert set(raw['seeds']) == {'0', '1'}
    for seed in raw['seeds'].values():
        # Switched off, the new class is never predicted.
        assert seed['new_pq_before'] == {'yellow square': 0.0}
        changes = seed['other_changes']
        # Classes with ground truth in the validation images (the tiny set
        # does not show all 28).
        assert 'yellow square' not in changes and 0 < len(changes) <= 28
        assert seed['other_mean_abs_change'] == pytest.approx(
            sum(map(abs, changes.values())) / len(changes))
        assert seed['seconds'] > 0
    # The model never met the class: not in its data root or checkpoint.
    held = tmp_path / 'work' / 'data_without'
    assert 'yellow square' not in json.loads(
        (held / 'metainfo.json').read_text())['classes']
    text = out.read_text()
    assert '| PQ of yellow square (new) |' in text
    assert f'mean |Δ| < {tool.OTHER_CLASSES_BOUND:g}' in text
    # A second call without --reuse keeps the first run's files.
    with pytest.raises(FileExistsError):
        tool.main(['--data-root', tiny_toy_root, '--seeds', '0', '1',
                   '--work-dir', str(tmp_path / 'work'),
                   '--out', str(tmp_path / 'again.md')])


RESULTS = Path(__file__).resolve().parents[2] / 'docs' / 'results'


def test_the_committed_report_is_written_from_its_json(tool):
    raw = json.loads((RESULTS / 'new_classes.json').read_text())
    assert tool.report(raw['seeds'], raw['run']) == \
        (RESULTS / 'new_classes.md').read_text()


def test_the_committed_evidence_meets_what_the_docs_claim(tool):
    """docs/new_classes.md: the added class is found (PQ > 0) in every
    seed, and the other classes move by less than the stated bound."""
    raw = json.loads((RESULTS / 'new_classes.json').read_text())
    assert raw['run']['bound'] == tool.OTHER_CLASSES_BOUND
    assert len(raw['seeds']) >= 5
    for seed in raw['seeds'].values():
        assert all(pq > 0 for pq in seed['new_pq'].values())
        assert seed['other_mean_abs_change'] < raw['run']['bound']
        assert seed['seconds'] < 60
