"""Properties of MMDLoss, checked against a slow reference."""
import itertools
import math

import pytest
import torch

from mmpading.models import MMDLoss

VARIANCES = (2, 5, 10, 20, 40, 80)


def slow_squared_mmd(source, target, variances=VARIANCES) -> float:
    """Biased MMD^2 by explicit loops over pairs, in float64."""

    def kernel(a, b):
        sq_dist = float(((a.double() - b.double())**2).sum())
        return sum(math.exp(-sq_dist / (2 * v)) for v in variances)

    def mean_kernel(x, y):
        return sum(kernel(a, b)
                   for a, b in itertools.product(x, y)) / (len(x) * len(y))

    return (mean_kernel(source, source) + mean_kernel(target, target) -
            2 * mean_kernel(source, target))


def test_defaults():
    loss = MMDLoss()
    assert loss.kernel_variances == VARIANCES
    assert loss.loss_weight == 1.0


@pytest.mark.parametrize('sizes', [(7, 12), (12, 7), (1, 5), (9, 9)])
def test_matches_slow_reference_for_any_set_sizes(sizes):
    torch.manual_seed(0)
    source = torch.randn(sizes[0], 6)
    target = torch.randn(sizes[1], 6) * 1.5 + 0.7
    expected = slow_squared_mmd(source, target)
    loss = MMDLoss()
    assert loss.squared_mmd(source, target).item() == pytest.approx(
        expected, rel=1e-4, abs=1e-6)
    assert loss(source, target).item() == pytest.approx(
        math.sqrt(expected), rel=1e-4)


def test_zero_for_a_set_with_itself_with_finite_gradient():
    torch.manual_seed(0)
    features = torch.randn(30, 16, requires_grad=True)
    loss = MMDLoss()(features, features.detach().clone())
    assert loss.item() < 1e-3
    loss.backward()
    assert torch.isfinite(features.grad).all()


def test_grows_monotonically_with_a_mean_shift():
    torch.manual_seed(0)
    source = torch.randn(40, 8)
    direction = torch.nn.functional.normalize(torch.randn(8), dim=0)
    loss = MMDLoss()
    values = [
        loss(source, source + shift * direction).item()
        for shift in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    ]
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_symmetric():
    torch.manual_seed(0)
    source, target = torch.randn(13, 5), torch.randn(21, 5) + 1
    loss = MMDLoss()
    assert loss(source, target).item() == pytest.approx(
        loss(target, source).item(), rel=1e-5)


def test_loss_weight_and_variances():
    torch.manual_seed(0)
    source, target = torch.randn(10, 4), torch.randn(10, 4) + 1
    base = MMDLoss()(source, target)
    torch.testing.assert_close(
        MMDLoss(loss_weight=3.0)(source, target), 3 * base)
    single = MMDLoss(kernel_variances=[5.0]).squared_mmd(source, target)
    assert single.item() == pytest.approx(
        slow_squared_mmd(source, target, (5.0, )), rel=1e-4)


def test_fp32_under_autocast():
    torch.manual_seed(0)
    source, target = torch.randn(10, 4), torch.randn(12, 4) + 1
    loss = MMDLoss()
    expected = loss(source, target)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        under_autocast = loss(source, target)
        from_half = loss(source.bfloat16(), target.bfloat16())
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, expected)
    assert from_half.dtype == torch.float32
    assert from_half.item() == pytest.approx(expected.item(), rel=0.05)


def test_bad_inputs_are_named():
    loss = MMDLoss()
    with pytest.raises(ValueError, match='4 channels but target has 5'):
        loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match='target is empty'):
        loss(torch.randn(3, 4), torch.randn(0, 4))
    with pytest.raises(ValueError, match='source must have shape'):
        loss(torch.randn(3), torch.randn(3, 1))
    with pytest.raises(ValueError, match='positive'):
        MMDLoss(kernel_variances=(2, -1))
