"""Adding classes to a trained stage-2 model (mmpading.apis.class_extension):
what the checkpoint holds, that switched-off rows predict as before, that
only the classifier trains, and the refusals."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmpading.apis.class_extension import (
    OFF_LOGIT,
    ClassExtensionError,
    add_classes,
    extended_class_order,
    insert_class_rows,
)
from mmpading.apis.toy_experiments import evaluate_toy_config
from mmpading.datasets.class_embeddings import (
    load_class_embeddings,
    save_class_embeddings,
)
from mmpading.registry import MODELS

from _helpers.held_out_model import FEAT_DIM, NEW, write_held_out_model


@pytest.fixture(scope='module')
def setup(tiny_toy_root, tmp_path_factory):
    return write_held_out_model(tiny_toy_root,
                                tmp_path_factory.mktemp('class_extension'))


def full_order(root):
    with open(osp.join(root, 'metainfo.json')) as f:
        return json.load(f)['classes']


def extend(setup, name, **kwargs):
    kwargs.setdefault('class_order', full_order(setup['full_root']))
    return add_classes(setup['cfg'], setup['checkpoint'], setup['cache'],
                       kwargs.pop('classes', [NEW]),
                       kwargs.pop('embeddings', setup['embeddings']),
                       str(setup['work'] / f'{name}.pth'), **kwargs)


def test_the_checkpoint_lists_the_new_class_set(setup):
    result = extend(setup, 'listed', iterations=3)
    order = full_order(setup['full_root'])
    assert result.classes == order and result.added == [NEW]
    saved = torch.load(result.checkpoint, map_location='cpu',
                       weights_only=False)
    meta = saved['meta']['dataset_meta']
    assert list(meta['classes']) == order
    assert NEW in meta['unseen_classes'] and NEW not in meta['seen_classes']
    assert set(meta['seen_classes']) | set(meta['unseen_classes']) == \
        set(order)
    assert saved['meta']['class_extension']['added'] == [NEW]
    for key in ('zero_shot.classifier.weight', 'cls_embed.weight'):
        assert saved['state_dict'][key].shape == (len(order) + 1, FEAT_DIM)
    embeddings, names = load_class_embeddings(result.class_embeddings)
    assert names == order
    source, source_names = load_class_embeddings(setup['embeddings'])
    np.testing.assert_array_equal(embeddings[order.index(NEW)],
                                  source[source_names.index(NEW)])


def test_only_the_classifier_is_trained(setup):
    result = extend(setup, 'trained_only', iterations=5)
    before = torch.load(setup['checkpoint'], weights_only=False)['state_dict']
    after = torch.load(result.checkpoint, weights_only=False)['state_dict']
    changed = [key for key in before
               if key in after and after[key].shape == before[key].shape
               and not torch.equal(after[key], before[key])]
    assert changed == []
    old = setup['classes']
    new_weight = after['zero_shot.classifier.weight']
    old_weight = before['zero_shot.classifier.weight']
    rows = [result.classes.index(name) for name in old]
    # The old rows moved (they were trained) but started from the old ones.
    assert not torch.equal(new_weight[rows], old_weight[:-1])
    assert (new_weight[rows] - old_weight[:-1]).abs().max() < 0.1


def test_the_same_seed_gives_the_same_classifier(setup):
    first = extend(setup, 'seed_a', iterations=4, seed=3)
    second = extend(setup, 'seed_b', iterations=4, seed=3)
    a = torch.load(first.checkpoint, weights_only=False)['state_dict']
    b = torch.load(second.checkpoint, weights_only=False)['state_dict']
    assert torch.equal(a['zero_shot.classifier.weight'],
                       b['zero_shot.classifier.weight'])


def test_switched_off_rows_score_every_old_class_as_before():
    torch.manual_seed(0)
    old = ['a', 'b', 'c']
    weight, bias = torch.randn(4, 8), torch.randn(4)
    new_weight, new_bias = insert_class_rows(weight, bias, old,
                                             ['a', 'new', 'b', 'c'])
    assert new_bias[1] == OFF_LOGIT
    features = torch.randn(50, 8) * 10
    old_probs = F.softmax(F.linear(features, weight, bias), -1)
    new_probs = F.softmax(F.linear(features, new_weight, new_bias), -1)
    assert torch.equal(new_probs[:, 1], torch.zeros(50))
    assert torch.equal(new_probs[:, [0, 2, 3, 4]], old_probs)


def test_new_rows_start_from_the_mean_of_the_given_rows():
    weight = torch.arange(8.).reshape(4, 2)
    bias = torch.tensor([1., 2., 3., 4.])
    new_weight, new_bias = insert_class_rows(
        weight, bias, ['a', 'b', 'c'], ['a', 'b', 'c', 'd'], init_from=[0, 2])
    assert torch.equal(new_weight[3], (weight[0] + weight[2]) / 2)
    assert new_bias[3] == 2.0
    assert torch.equal(new_weight[4], weight[3])  # no-object stays last


def test_before_model_evaluates_on_the_full_set_from_the_cache(setup):
    """Rows switched off: evaluated on the full validation set through the
    cache (a model of more classes than its cache), the new class has
    ground truth and no prediction."""
    result = extend(setup, 'switched_off', iterations=0,
                    train_new_rows=False)
    metrics = evaluate_toy_config(
        'pading_toy_stage2', result.checkpoint,
        str(setup['work'] / 'eval_off'), setup['full_root'],
        options={'test_evaluator.0.classwise': True,
                 'test_dataloader.batch_size': 3},
        quiet_console=True, feature_cache=setup['cache'])
    assert f'gzsl_panoptic/PQ/{NEW}' in metrics
    assert metrics[f'gzsl_panoptic/PQ/{NEW}'] == 0.0


def test_a_model_of_another_class_count_does_not_train_on_the_cache(setup):
    model = MODELS.build(dict(
        type='PADingFromCache', cache_dir=setup['cache'],
        zero_shot=setup['cfg'].model.zero_shot,
        num_classes=len(setup['classes']) + 1))
    batch = dict(embeddings=torch.zeros(1, 6, FEAT_DIM),
                 labels=torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match='only evaluates'):
        model.train_step(batch, None)


# ------------------------------------------------------------ refusals
def test_a_class_of_the_model_is_refused(setup):
    with pytest.raises(ClassExtensionError, match='already are classes'):
        extend(setup, 'known', classes=[setup['classes'][0]],
               class_order=None)


def test_a_name_missing_from_the_embedding_file_is_refused(setup, tmp_path):
    other = str(tmp_path / 'other.json')
    save_class_embeddings(other, ['pink hexagon'], np.ones((1, 18)), 'test')
    with pytest.raises(ClassExtensionError, match=r"no rows for \['yellow"):
        extend(setup, 'missing', embeddings=other)


def test_another_embedding_width_is_refused(setup, tmp_path):
    wide = str(tmp_path / 'wide.json')
    save_class_embeddings(wide, [NEW], np.ones((1, 300)), 'test')
    with pytest.raises(ClassExtensionError, match='300-d .* takes 18-d'):
        extend(setup, 'wide', embeddings=wide)


def test_an_existing_output_is_not_overwritten(setup):
    path = setup['work'] / 'exists.pth'
    path.write_bytes(b'mine')
    with pytest.raises(FileExistsError, match='nothing is overwritten'):
        extend(setup, 'exists', iterations=1)
    assert path.read_bytes() == b'mine'


def test_a_checkpoint_without_a_generator_is_refused(setup, tmp_path):
    state = torch.load(setup['checkpoint'], weights_only=False)
    state['state_dict'] = {
        key: value for key, value in state['state_dict'].items()
        if '.generator.' not in key
    }
    projection = str(tmp_path / 'projection.pth')
    torch.save(state, projection)
    with pytest.raises(ClassExtensionError, match='no generator'):
        add_classes(setup['cfg'], projection, setup['cache'], [NEW],
                    setup['embeddings'], str(tmp_path / 'out.pth'))


def test_class_orders():
    old = ['t1', 't2', 's1']
    assert extended_class_order(old, ['t3', 's2'], num_things=2,
                                new_stuff=['s2']) == \
        ['t1', 't2', 't3', 's1', 's2']
    assert extended_class_order(old, ['x']) == ['t1', 't2', 's1', 'x']
    with pytest.raises(ClassExtensionError, match='things first'):
        extended_class_order(old, ['t3'], num_things=2,
                             class_order=['t1', 's1', 't2', 't3'])
    with pytest.raises(ClassExtensionError, match='missing'):
        extended_class_order(old, ['t3'], num_things=2,
                             class_order=['t1', 't2', 's1'])
    with pytest.raises(ClassExtensionError, match='not classes to add'):
        extended_class_order(old, ['t3'], num_things=2, new_stuff=['s9'])
