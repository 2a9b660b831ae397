"""The learner takes its classes and split from the data set's metainfo."""
import pytest
import torch
from test_zero_shot_learner import (
    CLASS_NAMES,
    FEAT_DIM,
    GENERATOR,
    P_ONLY,
    SEEN,
    UNSEEN,
    make_batch,
    make_learner,
)

from mmpading.datasets.splits import ZeroShotSplit, save_split
from mmpading.models import ZeroShotLearner

SPLIT_BUFFERS = ('seen_ids', 'unseen_ids', 'seen_position', 'class_weight',
                 'class_semantic_embeddings')
# What a ZeroShot* data set puts into its metainfo (classes in label order).
DATASET_META = dict(
    classes=tuple(CLASS_NAMES),
    zero_shot_split='tiny',
    seen_classes=tuple(c for c in CLASS_NAMES if c in SEEN),
    unseen_classes=tuple(c for c in CLASS_NAMES if c in UNSEEN))


def deferred_learner(files, seed=0, **overrides) -> ZeroShotLearner:
    """make_learner's learner without class_names and split."""
    torch.manual_seed(seed)
    cfg = dict(
        classifier=dict(type='Linear'),
        generator=GENERATOR,
        feat_dim=FEAT_DIM,
        num_classes=len(CLASS_NAMES),
        unseen_class_weight=3.0,
        no_object_weight=0.25,
        num_unseen_per_iter=5,
        class_embeddings=files['class_embeddings'],
        **P_ONLY)
    cfg.update(overrides)
    return ZeroShotLearner(**cfg)


def test_metainfo_gives_the_buffers_and_losses_of_explicit_classes(files):
    explicit = make_learner(files)
    deferred = deferred_learner(files)
    # Same parameters: the classes change no module.
    for (name, a), (_, b) in zip(explicit.state_dict().items(),
                                 deferred.state_dict().items()):
        assert torch.equal(a, b), name
    deferred.set_dataset_meta(DATASET_META)
    assert deferred.class_names == CLASS_NAMES
    assert deferred.split_name == 'tiny'
    for name in SPLIT_BUFFERS:
        assert torch.equal(getattr(explicit, name), getattr(deferred, name)), \
            name
    embeddings, labels = make_batch()
    for step in ('generator', 'classifier'):
        torch.manual_seed(3)
        expected = explicit(embeddings, labels, step)
        torch.manual_seed(3)
        given = deferred(embeddings, labels, step)
        assert expected.keys() == given.keys()
        for key in expected:
            assert torch.equal(expected[key], given[key]), (step, key)


def test_a_learner_without_classes_refuses_to_train(files):
    learner = deferred_learner(files)
    embeddings, labels = make_batch()
    with pytest.raises(RuntimeError, match='DatasetMetaHook'):
        learner(embeddings, labels, 'classifier')


def test_the_same_metainfo_twice_is_accepted_another_is_refused(files):
    learner = deferred_learner(files)
    learner.set_dataset_meta(DATASET_META)
    learner.set_dataset_meta(dict(DATASET_META))  # validation set: same
    other = dict(DATASET_META, seen_classes=DATASET_META['seen_classes'][1:],
                 unseen_classes=DATASET_META['unseen_classes'] +
                 DATASET_META['seen_classes'][:1])
    with pytest.raises(ValueError, match='disagree'):
        learner.set_dataset_meta(other)
    # A learner given its classes in the config checks the data against
    # them.
    with pytest.raises(ValueError, match='disagree'):
        make_learner(files).set_dataset_meta(other)


@pytest.mark.parametrize('meta, message', [
    (dict(classes=tuple(CLASS_NAMES)), 'seen_classes / unseen_classes'),
    (dict(DATASET_META, classes=tuple(CLASS_NAMES[:4])), '4 classes'),
    (dict(DATASET_META, unseen_classes=('cow', )), 'cow'),
])
def test_bad_metainfo_is_refused_with_the_fix(files, meta, message):
    with pytest.raises(ValueError, match=message):
        deferred_learner(files).set_dataset_meta(meta)


def test_class_names_and_split_come_together(files):
    with pytest.raises(ValueError, match='together'):
        deferred_learner(files, class_names=CLASS_NAMES)
    with pytest.raises(ValueError, match='num_classes'):
        deferred_learner(files, num_classes=None)
    with pytest.raises(ValueError, match='num_classes is 4'):
        deferred_learner(files, num_classes=4, class_names=CLASS_NAMES,
                         split=files['split'])


def test_projection_classifier_gets_the_embeddings_of_the_classes(files):
    classifier = dict(type='SemanticProjectionClassifier')
    explicit = make_learner(files, classifier=classifier, generator=None,
                            mmd_loss=None)
    deferred = deferred_learner(files, classifier=classifier,
                                generator=None, mmd_loss=None)
    assert not deferred.classifier.class_weights.any()  # a placeholder
    deferred.set_dataset_meta(DATASET_META)
    assert torch.equal(explicit.classifier.class_weights,
                       deferred.classifier.class_weights)


def test_split_file_and_metainfo_agree(files, tmp_path):
    """A split file listing the classes in another order gives the same
    buffers as the data set's metainfo (names, not positions, count)."""
    path = str(tmp_path / 'reordered.json')
    save_split(ZeroShotSplit('tiny', seen=tuple(reversed(SEEN)),
                             unseen=tuple(reversed(UNSEEN))), path)
    from_file = make_learner(dict(files, split=path))
    from_meta = deferred_learner(files)
    from_meta.set_dataset_meta(DATASET_META)
    for name in SPLIT_BUFFERS:
        assert torch.equal(getattr(from_file, name),
                           getattr(from_meta, name)), name
