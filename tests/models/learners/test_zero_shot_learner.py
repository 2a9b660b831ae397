"""Properties of ZeroShotLearner, without a segmenter."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmpading.datasets.class_embeddings import save_class_embeddings
from mmpading.datasets.splits import ZeroShotSplit, save_split
from mmpading.models import SemanticProjectionClassifier, ZeroShotLearner

# The unseen classes sit in the middle of the class list; the split lists
# its classes in another order, so only name matching gets them right.
CLASS_NAMES = ['red circle', 'blue square', 'green triangle', 'sky', 'grass']
SEEN = ('grass', 'red circle', 'sky')
UNSEEN = ('green triangle', 'blue square')
UNSEEN_IDS = [1, 2]
NO_OBJECT = len(CLASS_NAMES)
SEMANTIC_DIM, FEAT_DIM = 6, 16
D_AND_A_KEYS = {'loss_recon', 'loss_unrelated_kl', 'loss_relation',
                'loss_align'}


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models: one thread is faster and immune to busy neighbours."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def class_vectors() -> dict:
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal(SEMANTIC_DIM).astype(np.float32)
            for name in CLASS_NAMES}


def write_embeddings(path, names) -> str:
    vectors = class_vectors()
    # Rows in the file follow `names`, not the data set's order.
    rows = np.stack([vectors.get(name, vectors['blue square'])
                     for name in names])
    save_class_embeddings(str(path), names, rows, source='test vectors')
    return str(path)


@pytest.fixture
def files(tmp_path):
    split = str(tmp_path / 'split.json')
    save_split(ZeroShotSplit(name='tiny', seen=SEEN, unseen=UNSEEN), split)
    embeddings = write_embeddings(tmp_path / 'embeddings.json',
                                  list(reversed(CLASS_NAMES)))
    return dict(split=split, class_embeddings=embeddings)


GENERATOR = dict(
    type='PrimitiveGenerator', num_primitives=8, num_heads=2, ffn_dim=32)
PADING_PARTS = dict(
    disentangle_head=dict(type='DisentangleHead', hidden_dim=16),
    relation_align_loss=dict(type='RelationAlignLoss', temperature=0.1))
# A small primitive generator alone (the ablation P) unless a test adds D
# and A (PADING_PARTS).
P_ONLY = dict(disentangle_head=None, relation_align_loss=None)


def make_learner(files, seed=0, **overrides) -> ZeroShotLearner:
    torch.manual_seed(seed)
    cfg = dict(
        class_names=CLASS_NAMES,
        classifier=dict(type='Linear'),
        generator=GENERATOR,
        feat_dim=FEAT_DIM,
        unseen_class_weight=3.0,
        no_object_weight=0.25,
        num_unseen_per_iter=5,
        **P_ONLY,
        **files)
    cfg.update(overrides)
    return ZeroShotLearner(**cfg)


def make_batch():
    """Two images of four queries; matched queries carry seen classes."""
    embeddings = torch.randn(
        2, 4, FEAT_DIM, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([[0, NO_OBJECT, 3, NO_OBJECT],
                           [4, NO_OBJECT, 0, NO_OBJECT]])
    return embeddings, labels


def grads(module):
    return [p.grad for p in module.parameters()]


def dropout_rates(module) -> set:
    return {m.p for m in module.modules() if isinstance(m, nn.Dropout)}


# ----------------------------------------------------------------- set-up
def test_class_weights_and_embeddings_are_placed_by_name(files):
    learner = make_learner(files, seen_class_weight=1.0)
    assert learner.unseen_ids.tolist() == UNSEEN_IDS
    assert learner.seen_ids.tolist() == [0, 3, 4]
    assert learner.class_weight.tolist() == [1.0, 3.0, 3.0, 1.0, 1.0, 0.25]
    vectors = class_vectors()
    for i, name in enumerate(CLASS_NAMES):
        assert torch.equal(learner.class_semantic_embeddings[i],
                           torch.from_numpy(vectors[name]))
    # Sizes are filled in from the data set and the segmenter.
    assert learner.classifier.weight.shape == (NO_OBJECT + 1, FEAT_DIM)
    assert learner.generator.semantic_dim == SEMANTIC_DIM
    assert learner.generator.feat_dim == FEAT_DIM


def test_class_name_mismatch_with_the_embedding_file_names_the_class(
        files, tmp_path):
    names = ['blue squares' if n == 'blue square' else n
             for n in CLASS_NAMES]
    files['class_embeddings'] = write_embeddings(tmp_path / 'bad.json',
                                                 names)
    with pytest.raises(ValueError, match="'blue square'"):
        make_learner(files)


@pytest.mark.parametrize('part', sorted(PADING_PARTS))
def test_pading_parts_without_a_generator_raise(files, part):
    with pytest.raises(ValueError, match='need a generator'):
        make_learner(files, generator=None, **{part: PADING_PARTS[part]})


# --------------------------------------------------------------- defaults
def test_defaults_are_the_papers_panoptic_pading(files):
    """Only the data-dependent arguments: the paper's panoptic PADing, its
    parts with their classes' defaults (docs/parity.md)."""
    learner = ZeroShotLearner(class_names=CLASS_NAMES, feat_dim=FEAT_DIM,
                              **files)
    assert type(learner.classifier) is nn.Linear
    assert learner.classifier.weight.shape == (NO_OBJECT + 1, FEAT_DIM)
    generator = learner.generator
    assert type(generator).__name__ == 'PrimitiveGenerator'
    assert (generator.num_primitives, generator.num_layers,
            generator.num_heads) == (400, 3, 8)
    assert generator.layers[0].ffn[0].out_features == 1024
    assert dropout_rates(generator) == {0.1}
    assert (generator.semantic_dim, generator.feat_dim) == (SEMANTIC_DIM,
                                                            FEAT_DIM)
    assert learner.mmd_loss.kernel_variances == (2, 5, 10, 20, 40, 80)
    assert type(learner.disentangle_head).__name__ == 'DisentangleHead'
    assert dropout_rates(learner.disentangle_head) == {0.1}
    assert learner.disentangle_head.seen_relation_classes == 'all'
    assert learner.relation_align_loss.temperature == 0.1
    assert learner.synthetic_cls_weight == 0.001
    assert learner.synthetic_cls_logits == 'all'
    assert learner.lambda_weight == 1e-4
    assert learner.num_unseen_per_iter == 5
    assert learner.class_weight.tolist() == pytest.approx(
        [1.0, 5.0, 5.0, 1.0, 1.0, 0.1])
    assert learner.feat_dim == FEAT_DIM


def test_a_part_without_type_changes_fields_of_the_default(files):
    learner = ZeroShotLearner(
        class_names=CLASS_NAMES, feat_dim=FEAT_DIM,
        generator=dict(num_primitives=8, dropout=0.3),
        disentangle_head=dict(dropout=0.2),
        relation_align_loss=dict(temperature=0.5), **files)
    generator = learner.generator
    assert type(generator).__name__ == 'PrimitiveGenerator'
    assert generator.num_primitives == 8
    assert dropout_rates(generator) == {0.3}
    assert generator.num_layers == 3
    assert generator.layers[0].ffn[0].out_features == 1024
    assert dropout_rates(learner.disentangle_head) == {0.2}
    assert learner.relation_align_loss.temperature == 0.5


def test_a_part_with_type_replaces_the_default(files):
    learner = make_learner(files, generator=dict(type='GMMNGenerator'))
    assert type(learner.generator).__name__ == 'GMMNGenerator'


def test_a_left_over_delete_key_replaces_the_default(files):
    """mmengine keeps `_delete_` in a child's dict when the base states no
    such key (a config written when the base stated every part)."""
    learner = make_learner(
        files, generator=dict(_delete_=True, type='GMMNGenerator'))
    assert type(learner.generator).__name__ == 'GMMNGenerator'
    learner = ZeroShotLearner(
        class_names=CLASS_NAMES, feat_dim=FEAT_DIM,
        generator=dict(_delete_=True, type='PrimitiveGenerator',
                       num_primitives=8, num_heads=2), **files)
    assert learner.generator.num_primitives == 8


def test_building_leaves_the_default_configs_unchanged(files):
    from mmpading.models.learners import zero_shot_learner as module
    defaults = [module.DEFAULT_CLASSIFIER, module.DEFAULT_GENERATOR,
                module.DEFAULT_MMD_LOSS, module.DEFAULT_DISENTANGLE_HEAD,
                module.DEFAULT_RELATION_ALIGN_LOSS]
    before = [dict(default) for default in defaults]
    ZeroShotLearner(class_names=CLASS_NAMES, feat_dim=FEAT_DIM, **files)
    assert [dict(default) for default in defaults] == before


def test_no_generator_with_the_default_d_and_a_names_the_fix(files):
    with pytest.raises(ValueError, match='set both to None'):
        ZeroShotLearner(class_names=CLASS_NAMES, feat_dim=FEAT_DIM,
                        generator=None, **files)


def test_mmd_loss_none_needs_no_generator(files):
    with pytest.raises(ValueError, match='mmd_loss=None'):
        make_learner(files, mmd_loss=None)
    learner = make_learner(files, generator=None, mmd_loss=None)
    assert learner.mmd_loss is None


@pytest.mark.parametrize('feat_dim', [None, 0, 2.5])
def test_feat_dim_must_be_given_as_a_positive_int(files, feat_dim):
    with pytest.raises(ValueError, match='feat_dim'):
        make_learner(files, feat_dim=feat_dim)


def test_a_part_that_is_not_a_dict_raises(files):
    with pytest.raises(TypeError, match='generator is a config dict'):
        make_learner(files, generator='PrimitiveGenerator')


def test_optimizer_groups(files):
    learner = make_learner(files, **PADING_PARTS)
    groups = learner.optimizer_groups()
    assert set(groups) == {'generator', 'classifier'}
    assert groups['generator'] == [learner.generator,
                                   learner.disentangle_head]
    assert groups['classifier'] == [learner.classifier]
    # Parts switched off are left out.
    plain = make_learner(files)
    assert plain.optimizer_groups()['generator'] == [plain.generator]
    projection = make_learner(
        files, generator=None,
        classifier=dict(type='SemanticProjectionClassifier'))
    assert projection.optimizer_groups() == dict(
        generator=[], classifier=[projection.classifier])


def test_unknown_step_raises(files):
    with pytest.raises(ValueError, match='step'):
        make_learner(files)(*make_batch(), step='both')


def test_semantic_projection_classifier_gets_the_class_embeddings(files):
    learner = make_learner(
        files, classifier=dict(type='SemanticProjectionClassifier'))
    classifier = learner.classifier
    assert isinstance(classifier, SemanticProjectionClassifier)
    assert torch.allclose(
        classifier.class_weights,
        F.normalize(learner.class_semantic_embeddings, dim=-1))
    assert classifier.projection.in_features == FEAT_DIM
    cls_embed = nn.Linear(FEAT_DIM, NO_OBJECT + 1)
    learner.init_classifier_from(cls_embed)
    assert torch.equal(classifier.no_object.weight, cls_embed.weight[-1:])
    assert torch.equal(classifier.no_object.bias, cls_embed.bias[-1:])
    logits = learner.classifier(torch.randn(3, FEAT_DIM))
    assert logits.shape == (3, NO_OBJECT + 1)


def test_init_classifier_from_copies_once_and_remembers_it(files):
    learner = make_learner(files)
    cls_embed = nn.Linear(FEAT_DIM, NO_OBJECT + 1)
    assert int(learner.classifier_initialised) == 0
    learner.init_classifier_from(cls_embed)
    assert torch.equal(learner.classifier.weight, cls_embed.weight)
    assert torch.equal(learner.classifier.bias, cls_embed.bias)
    assert int(learner.classifier_initialised) == 1
    copied = learner.classifier.weight.detach().clone()

    with torch.no_grad():
        cls_embed.weight.add_(1.0)
    learner.init_classifier_from(cls_embed)
    assert torch.equal(learner.classifier.weight, copied)

    # Persistent: a resumed learner does not initialise again.
    state = learner.state_dict()
    assert int(state['classifier_initialised']) == 1
    resumed = make_learner(files, seed=1)
    resumed.load_state_dict(state)
    resumed.init_classifier_from(cls_embed)
    assert torch.equal(resumed.classifier.weight, copied)


# --------------------------------------------------------- generator step
def test_generator_step_losses(files):
    embeddings, labels = make_batch()
    plain = make_learner(files)(embeddings, labels, step='generator')
    assert set(plain) == {'loss_mmd', 'loss_synthetic_cls'}
    full = make_learner(files, **PADING_PARTS)(embeddings, labels,
                                               step='generator')
    assert set(full) == {'loss_mmd', 'loss_synthetic_cls'} | D_AND_A_KEYS
    for value in full.values():
        assert value.dim() == 0 and torch.isfinite(value)
    assert full['loss_mmd'] > 0


def test_lambda_and_synthetic_cls_weight_scale_their_terms(files):
    embeddings, labels = make_batch()
    learner = make_learner(files, lambda_weight=1e-3,
                           synthetic_cls_weight=1e-3, **PADING_PARTS)

    def losses():
        torch.manual_seed(7)  # same noise, dropout and KL targets
        with torch.no_grad():
            return learner(embeddings, labels, step='generator')

    base = losses()
    learner.lambda_weight = 2e-3
    learner.synthetic_cls_weight = 2e-3
    doubled = losses()
    for key in D_AND_A_KEYS | {'loss_synthetic_cls'}:
        assert base[key] != 0
        assert torch.allclose(doubled[key], 2 * base[key], rtol=1e-5), key
    assert torch.equal(doubled['loss_mmd'], base['loss_mmd'])


@pytest.mark.parametrize('classifier', ['Linear',
                                        'SemanticProjectionClassifier'])
def test_generator_step_puts_no_gradient_on_the_classifier(files,
                                                           classifier):
    learner = make_learner(files, classifier=dict(type=classifier),
                           **PADING_PARTS)
    losses = learner(*make_batch(), step='generator')
    sum(losses.values()).backward()
    assert all(g is None for g in grads(learner.classifier))
    # The classifier stays trainable for its own step.
    assert all(p.requires_grad for p in learner.classifier.parameters())
    assert learner.generator.primitives.grad is not None
    assert learner.generator.semantic_proj.weight.grad.abs().sum() > 0
    assert all(g is not None for g in grads(learner.disentangle_head))


def test_batch_without_matched_queries_gives_a_connected_zero(files):
    learner = make_learner(files, **PADING_PARTS)
    embeddings, _ = make_batch()
    labels = torch.full((2, 4), NO_OBJECT)
    losses = learner(embeddings, labels, step='generator')
    assert set(losses) == {'loss_mmd'}
    assert losses['loss_mmd'].item() == 0
    assert losses['loss_mmd'].requires_grad
    losses['loss_mmd'].backward()
    for grad in grads(learner.generator):
        assert grad is not None and not grad.any()


# -------------------------------------------------------- classifier step
def test_classifier_step_puts_no_gradient_on_the_generator(files):
    learner = make_learner(files, **PADING_PARTS)
    losses = learner(*make_batch(), step='classifier')
    assert set(losses) == {'loss_cls'}
    losses['loss_cls'].backward()
    assert all(g is None for g in grads(learner.generator))
    assert all(g is not None for g in grads(learner.classifier))


def record_logits(learner):
    records = []
    learner.classifier.register_forward_hook(
        lambda module, inputs, output: records.append(output.detach()))
    return records


def test_classifier_step_without_a_count_uses_each_unseen_class_once(files):
    learner = make_learner(files, num_unseen_per_iter=None)
    assert learner._draw_unseen_labels().tolist() == UNSEEN_IDS
    records = record_logits(learner)
    embeddings, labels = make_batch()
    loss = learner(embeddings, labels, step='classifier')['loss_cls']
    (logits, ) = records
    assert logits.shape == (8 + len(UNSEEN_IDS), NO_OBJECT + 1)
    # Real queries first, then one synthetic feature per unseen class;
    # the weighted CE uses seen 1 / unseen 3 / no-object 0.25.
    targets = torch.cat([labels.flatten(), torch.tensor(UNSEEN_IDS)])
    expected = F.cross_entropy(logits, targets, weight=learner.class_weight)
    assert torch.allclose(loss, expected)
    weights = learner.class_weight[targets]
    by_hand = (weights * F.cross_entropy(logits, targets, reduction='none')
               ).sum() / weights.sum()
    assert torch.allclose(loss, by_hand)


def test_classifier_step_draws_with_replacement_on_request(files):
    # The old behaviour: n uniform draws, repeats allowed.
    learner = make_learner(files, num_unseen_per_iter=5,
                           unseen_with_replacement=True)
    records = record_logits(learner)
    embeddings, labels = make_batch()
    torch.manual_seed(3)
    drawn = learner._draw_unseen_labels()
    assert set(drawn.tolist()) <= set(UNSEEN_IDS)
    torch.manual_seed(3)
    loss = learner(embeddings, labels, step='classifier')['loss_cls']
    (logits, ) = records
    assert logits.shape == (8 + 5, NO_OBJECT + 1)
    targets = torch.cat([labels.flatten(), drawn])
    assert torch.allclose(
        loss, F.cross_entropy(logits, targets, weight=learner.class_weight))


def test_classifier_step_without_generator_uses_real_queries_only(files):
    learner = make_learner(
        files, generator=None,
        classifier=dict(type='SemanticProjectionClassifier'))
    records = record_logits(learner)
    embeddings, labels = make_batch()
    loss = learner(embeddings, labels, step='classifier')['loss_cls']
    (logits, ) = records
    assert logits.shape == (8, NO_OBJECT + 1)
    assert torch.allclose(
        loss,
        F.cross_entropy(logits, labels.flatten(),
                        weight=learner.class_weight))


# ------------------------------------------------- reference behaviours
def test_unseen_classes_are_drawn_without_replacement_by_default(files):
    """Reference: ``torch.randperm(U)[:n]`` (PADing_model.py:434)."""
    learner = make_learner(files, num_unseen_per_iter=1)
    assert learner.unseen_with_replacement is False
    draws = []
    for seed in range(20):
        torch.manual_seed(seed)
        (drawn, ) = learner._draw_unseen_labels().tolist()
        draws.append(drawn)
    # One class per draw, each unseen class drawn at some point.
    assert set(draws) == set(UNSEEN_IDS)
    learner.num_unseen_per_iter = len(UNSEEN_IDS)
    with_replacement = make_learner(files, num_unseen_per_iter=2,
                                    unseen_with_replacement=True)
    orders, repeats = set(), 0
    for seed in range(20):
        torch.manual_seed(seed)
        drawn = learner._draw_unseen_labels().tolist()
        # n distinct classes.
        assert sorted(drawn) == UNSEEN_IDS
        orders.add(tuple(drawn))
        torch.manual_seed(seed)
        old = with_replacement._draw_unseen_labels().tolist()
        repeats += len(set(old)) < len(old)
    # A random order, as randperm's; the old draws repeat classes.
    assert len(orders) == 2
    assert repeats > 0


def test_more_unseen_per_iter_than_unseen_classes_gives_each_once(files):
    """Reference ZSS: ``randperm(15)[:17]`` (NUM_CHOOSE 17 by default,
    PADing/config.py:39) yields the 15 unseen classes once each."""
    learner = make_learner(files, num_unseen_per_iter=5)
    records = record_logits(learner)
    embeddings, labels = make_batch()
    torch.manual_seed(3)
    drawn = learner._draw_unseen_labels()
    assert sorted(drawn.tolist()) == UNSEEN_IDS
    torch.manual_seed(3)
    loss = learner(embeddings, labels, step='classifier')['loss_cls']
    (logits, ) = records
    assert logits.shape == (8 + len(UNSEEN_IDS), NO_OBJECT + 1)
    targets = torch.cat([labels.flatten(), drawn])
    assert torch.allclose(
        loss, F.cross_entropy(logits, targets, weight=learner.class_weight))


def fixed_generator(learner, features):
    """Make the generator return ``features`` (rows in call order)."""
    learner.generator.forward = lambda semantic: features[:len(semantic)]


@pytest.mark.parametrize('mode', ['all', 'seen'])
def test_synthetic_cls_logits(files, mode):
    """Reference ZSS: ``CE(new_fc(fake_seen)[:, :156], target)`` over the
    156 seen classes (PADing_model.py:353); ZSP / ZSI: all K + 1."""
    learner = make_learner(files, synthetic_cls_weight=1.0,
                           synthetic_cls_logits=mode)
    embeddings, labels = make_batch()
    synthetic = torch.randn(4, FEAT_DIM,
                            generator=torch.Generator().manual_seed(2))
    fixed_generator(learner, synthetic)
    loss = learner(embeddings, labels, step='generator')[
        'loss_synthetic_cls']
    seen_labels = labels[labels != NO_OBJECT]  # [0, 3, 4, 0]
    with torch.no_grad():
        logits = learner.classifier(synthetic)
    if mode == 'seen':
        # Seen classes 0, 3, 4: columns 0, 1, 2 of the seen logits.
        assert learner.seen_position[seen_labels].tolist() == [0, 1, 2, 0]
        log_p = logits[:, [0, 3, 4]].log_softmax(-1)
        expected = -log_p[torch.arange(4), torch.tensor([0, 1, 2, 0])]
    else:
        log_p = logits.log_softmax(-1)
        expected = -log_p[torch.arange(4), seen_labels]
    assert torch.allclose(loss, expected.mean())


def test_synthetic_cls_logits_seen_differs_and_checks_its_value(files):
    embeddings, labels = make_batch()
    synthetic = torch.randn(4, FEAT_DIM,
                            generator=torch.Generator().manual_seed(2))
    values = {}
    for mode in ('all', 'seen'):
        learner = make_learner(files, synthetic_cls_logits=mode)
        fixed_generator(learner, synthetic)
        values[mode] = learner(embeddings, labels,
                               step='generator')['loss_synthetic_cls']
    # Dropping the unseen and no-object logits lowers the CE.
    assert values['seen'] < values['all']
    with pytest.raises(ValueError, match='synthetic_cls_logits'):
        make_learner(files, synthetic_cls_logits='unseen')


@pytest.mark.parametrize('step', ['generator', 'classifier'])
def test_cross_rank_on_one_process_changes_nothing(files, step):
    """Without a process group the gathers are identities: same bits."""
    outputs = []
    for cross_rank in (False, True):
        learner = make_learner(files, **PADING_PARTS)
        torch.manual_seed(5)
        losses = learner(*make_batch(), step=step, cross_rank=cross_rank)
        sum(losses.values()).backward()
        outputs.append((losses, grads(learner)))
    (losses, grads_off), (losses_on, grads_on) = outputs
    assert losses.keys() == losses_on.keys()
    assert all(torch.equal(losses[k], losses_on[k]) for k in losses)
    assert all((a is None and b is None) or torch.equal(a, b)
               for a, b in zip(grads_off, grads_on))
