"""Properties of SemanticProjectionClassifier (the projection baseline)."""
import pytest
import torch
from torch import nn

from mmpading.models import SemanticProjectionClassifier

NUM_CLASSES, SEMANTIC_DIM, CHANNELS = 5, 6, 8


def make_embeddings(seed=0):
    return torch.randn(NUM_CLASSES, SEMANTIC_DIM,
                       generator=torch.Generator().manual_seed(seed))


def make_classifier(embeddings=None, seed=0):
    torch.manual_seed(seed)
    if embeddings is None:
        embeddings = make_embeddings()
    return SemanticProjectionClassifier(embeddings, in_channels=CHANNELS)


@pytest.mark.parametrize('shape', [(7, ), (2, 3)])
def test_output_has_one_logit_per_class_plus_no_object(shape):
    classifier = make_classifier()
    logits = classifier(torch.randn(*shape, CHANNELS))
    assert logits.shape == (*shape, NUM_CLASSES + 1)


def test_class_logits_ignore_the_scale_of_a_class_embedding():
    embeddings = make_embeddings()
    scaled = embeddings.clone()
    scaled[1] *= 7.5
    scaled[3] *= 0.01
    classifier = make_classifier(embeddings)
    other = make_classifier(scaled, seed=1)
    other.load_state_dict(classifier.state_dict())
    queries = torch.randn(4, CHANNELS)
    assert torch.allclose(classifier(queries), other(queries), atol=1e-5)


def test_class_aligned_with_the_projected_query_gets_the_top_logit():
    queries = torch.randn(3, CHANNELS, generator=torch.Generator()
                          .manual_seed(1))
    probe = make_classifier()
    with torch.no_grad():
        direction = probe.projection(queries[0])
    for target in range(NUM_CLASSES):
        embeddings = make_embeddings()
        embeddings[target] = 3.0 * direction
        classifier = make_classifier(embeddings)
        classifier.load_state_dict(probe.state_dict())
        with torch.no_grad():
            class_logits = classifier(queries[:1])[0, :NUM_CLASSES]
        assert class_logits.argmax().item() == target
        # cosine 1 times the logit scale
        assert class_logits[target].item() == pytest.approx(
            classifier.logit_scale.item(), rel=1e-5)


def test_init_from_linear_copies_the_no_object_row():
    classifier = make_classifier()
    linear = nn.Linear(CHANNELS, NUM_CLASSES + 1)
    projection_before = classifier.projection.weight.clone()
    classifier.init_from_linear(linear)
    assert torch.equal(classifier.no_object.weight, linear.weight[-1:])
    assert torch.equal(classifier.no_object.bias, linear.bias[-1:])
    assert torch.equal(classifier.projection.weight, projection_before)
    # The no-object logit is then the linear classifier's.
    queries = torch.randn(4, CHANNELS)
    with torch.no_grad():
        assert torch.allclose(classifier(queries)[:, -1],
                              linear(queries)[:, -1])


def test_class_embeddings_are_fixed_not_parameters():
    classifier = make_classifier()
    names = {name for name, _ in classifier.named_parameters()}
    assert names == {'projection.weight', 'projection.bias',
                     'no_object.weight', 'no_object.bias', 'logit_scale'}
    assert all(param is not classifier.class_weights
               for param in classifier.parameters())
    classifier(torch.randn(4, CHANNELS)).sum().backward()
    assert not classifier.class_weights.requires_grad
    assert classifier.class_weights.grad is None
    assert classifier.projection.weight.grad is not None


def test_embeddings_that_require_grad_are_still_fixed():
    # E.g. the output of a text encoder: the classifier must not keep its
    # graph, nor send gradients back into it.
    source = make_embeddings().requires_grad_()
    classifier = make_classifier(source)
    assert not classifier.class_weights.requires_grad
    for _ in range(2):  # a second step must not hit a freed graph
        classifier(torch.randn(4, CHANNELS)).sum().backward()
    assert source.grad is None


@pytest.mark.parametrize('shape', [(SEMANTIC_DIM, ),
                                   (2, NUM_CLASSES, SEMANTIC_DIM)])
def test_embeddings_of_the_wrong_rank_raise(shape):
    with pytest.raises(ValueError, match=r'\(K, D\)'):
        SemanticProjectionClassifier(torch.randn(*shape),
                                     in_channels=CHANNELS)
