"""generator_gradient_share against a hand-made autograd computation."""
import numpy as np
import pytest
import torch

from mmpading.datasets.class_embeddings import save_class_embeddings
from mmpading.datasets.splits import ZeroShotSplit, save_split
from mmpading.models import ZeroShotLearner
from mmpading.models.utils.gradient_share import (
    GradientShare,
    generator_gradient_share,
    generator_parameters,
    mean_gradient_share,
)

CLASS_NAMES = ['red circle', 'blue square', 'green triangle', 'sky', 'grass']
SEEN = ('grass', 'red circle', 'sky')
UNSEEN = ('green triangle', 'blue square')
NO_OBJECT = len(CLASS_NAMES)
SEMANTIC_DIM, FEAT_DIM = 6, 16
AD_TERMS = ('loss_recon', 'loss_unrelated_kl', 'loss_relation', 'loss_align')


@pytest.fixture(autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def files(tmp_path):
    split = str(tmp_path / 'split.json')
    save_split(ZeroShotSplit(name='tiny', seen=SEEN, unseen=UNSEEN), split)
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((len(CLASS_NAMES), SEMANTIC_DIM))
    embeddings = str(tmp_path / 'embeddings.json')
    save_class_embeddings(embeddings, CLASS_NAMES, rows.astype(np.float32),
                          source='test vectors')
    return dict(split=split, class_embeddings=embeddings)


def make_learner(files, pading=True, **overrides) -> ZeroShotLearner:
    torch.manual_seed(0)
    cfg = dict(
        class_names=CLASS_NAMES,
        classifier=dict(type='Linear'),
        # Dropout on: the measurement must draw the training step's masks.
        generator=dict(type='PrimitiveGenerator', num_primitives=8,
                       num_heads=2, ffn_dim=32, dropout=0.1),
        feat_dim=FEAT_DIM,
        lambda_weight=1e-3,
        **files)
    if pading:
        cfg.update(
            disentangle_head=dict(type='DisentangleHead', hidden_dim=16),
            relation_align_loss=dict(type='RelationAlignLoss',
                                     temperature=0.1))
    else:
        cfg.update(disentangle_head=None, relation_align_loss=None)
    cfg.update(overrides)
    return ZeroShotLearner(**cfg).train()


def make_batch():
    embeddings = torch.randn(
        2, 4, FEAT_DIM, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([[0, NO_OBJECT, 3, NO_OBJECT],
                           [4, NO_OBJECT, 0, NO_OBJECT]])
    return embeddings, labels


def manual_norms(learner, embeddings, labels) -> dict:
    """Each term's gradient norm, one fresh forward per term."""
    params = list(learner.generator.parameters())
    norms = {}
    for key in learner.generator_losses(embeddings, labels):
        torch.manual_seed(3)
        loss = learner.generator_losses(embeddings, labels)[key]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        squares = sum(float((g.double()**2).sum()) for g in grads
                      if g is not None)
        norms[key] = squares**0.5
    return norms


def test_norms_equal_a_manual_autograd_computation(files):
    learner = make_learner(files)
    embeddings, labels = make_batch()
    torch.manual_seed(3)
    share = generator_gradient_share(learner, embeddings, labels)
    expected = manual_norms(learner, embeddings, labels)
    assert set(share.term_norms) == set(expected) == {
        'loss_mmd', 'loss_synthetic_cls', *AD_TERMS}
    for key, norm in expected.items():
        assert norm > 0, key
        assert share.term_norms[key] == pytest.approx(norm, rel=1e-5), key
    assert share.num_matched == 4
    assert share.num_parameters == sum(
        p.numel() for p in learner.generator.parameters())


def test_groups_shares_and_ratio_follow_their_definitions(files):
    learner = make_learner(files)
    embeddings, labels = make_batch()
    share = generator_gradient_share(learner, embeddings, labels)
    assert set(share.group_norms) == {'mmd', 'synthetic_cls', 'align',
                                      'disentangle'}
    assert share.group_norms['mmd'] == share.term_norms['loss_mmd']
    # A group's norm is the norm of its summed gradient: at most the sum.
    d_terms = sum(share.term_norms[k] for k in AD_TERMS[:3])
    assert 0 < share.group_norms['disentangle'] <= d_terms * (1 + 1e-6)
    for shares in (share.term_shares, share.group_shares):
        assert sum(shares.values()) == pytest.approx(1.0)
        assert all(0 < value < 1 for value in shares.values())
    assert share.total_norm <= sum(share.group_norms.values()) * (1 + 1e-6)
    assert share.ad_ratio > 0
    scalars = share.log_scalars()
    assert scalars['grad_share/ad_ratio'] == share.ad_ratio
    assert scalars['grad_share/mmd'] == share.group_shares['mmd']
    assert scalars['grad_share/disentangle_norm'] == \
        share.group_norms['disentangle']
    assert not [key for key in scalars if 'loss' in key or
                'grad_norm' in key]  # LogProcessor would window-average
    assert 'lambda*(A+D)' in share.summary()


def test_lambda_times_10_scales_the_a_and_d_norms_by_10(files):
    embeddings, labels = make_batch()

    def measure(lambda_weight):
        learner = make_learner(files, lambda_weight=lambda_weight)
        torch.manual_seed(5)  # the same dropout masks in both runs
        return generator_gradient_share(learner, embeddings, labels)

    base, scaled = measure(1e-4), measure(1e-3)
    for key in AD_TERMS:
        assert scaled.term_norms[key] == pytest.approx(
            10 * base.term_norms[key], rel=1e-5), key
    for key in ('loss_mmd', 'loss_synthetic_cls'):
        assert scaled.term_norms[key] == base.term_norms[key], key
    assert scaled.ad_ratio == pytest.approx(10 * base.ad_ratio, rel=1e-5)


def test_training_state_is_untouched(files):
    learner = make_learner(files)
    embeddings, labels = make_batch()
    torch.manual_seed(11)
    before = torch.get_rng_state()
    weights = {k: v.clone() for k, v in learner.state_dict().items()}
    generator_gradient_share(learner, embeddings, labels)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(p.grad is None for p in learner.parameters())
    for key, value in learner.state_dict().items():
        assert torch.equal(value, weights[key]), key
    # The next training forward draws the masks it would have drawn.
    with torch.no_grad():
        after = learner.generator_losses(embeddings, labels)
    torch.set_rng_state(before)
    with torch.no_grad():
        plain = learner.generator_losses(embeddings, labels)
    for key, value in plain.items():
        assert torch.equal(after[key], value), key


def test_no_matched_query_gives_none(files):
    learner = make_learner(files)
    embeddings, _ = make_batch()
    labels = torch.full((2, 4), NO_OBJECT)
    assert generator_gradient_share(learner, embeddings, labels) is None


def test_without_a_and_d_there_is_no_ratio(files):
    learner = make_learner(files, pading=False)
    share = generator_gradient_share(learner, *make_batch())
    assert set(share.group_norms) == {'mmd', 'synthetic_cls'}
    assert share.ad_ratio is None
    assert 'grad_share/ad_ratio' not in share.log_scalars()


def test_a_learner_without_generator_is_refused(files):
    learner = make_learner(files, pading=False, generator=None)
    with pytest.raises(ValueError, match='no generator'):
        generator_parameters(learner)
    with pytest.raises(ValueError, match='no generator'):
        generator_gradient_share(learner, *make_batch())


def test_other_parameters_can_be_measured(files):
    learner = make_learner(files)
    head = list(learner.disentangle_head.parameters())
    share = generator_gradient_share(learner, *make_batch(), parameters=head)
    # MMD and CE do not reach the disentanglement head.
    assert share.term_norms['loss_mmd'] == 0
    assert share.term_norms['loss_recon'] > 0


def test_mean_over_batches():
    def share(mmd, align, ratio):
        return GradientShare(
            term_norms=dict(loss_mmd=mmd, loss_align=align),
            group_norms=dict(mmd=mmd, align=align), total_norm=mmd + align,
            ad_ratio=ratio, num_matched=1, num_parameters=1)

    mean = mean_gradient_share([share(1.0, 0.0, 0.0), share(3.0, 1.0, 0.5)])
    assert mean['group_norms'] == dict(mmd=2.0, align=0.5)
    assert mean['group_shares'] == pytest.approx(dict(mmd=0.875,
                                                      align=0.125))
    assert mean['ad_ratio'] == 0.25
    assert (mean['ad_ratio_min'], mean['ad_ratio_max']) == (0.0, 0.5)
    assert mean['batches'] == 2
    with pytest.raises(ValueError, match='at least one'):
        mean_gradient_share([])
