import pytest
import torch
from mmcv.cnn import ConvModule, build_activation_layer

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models.layers import DyReLU


def reference_dyrelu(m, x, lambda_a, lambda_b, init_a, init_b):
    """Straight loops over samples, channels and pieces (DY-ReLU-B)."""
    k, channels = m.k, m.channels
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        pooled = torch.stack([x[n, c].mean() for c in range(channels)])
        hidden = torch.clamp(m.fc1.weight @ pooled + m.fc1.bias, min=0)
        theta = m.fc2.weight @ hidden + m.fc2.bias
        theta = 2 / (1 + torch.exp(-theta)) - 1
        for c in range(channels):
            t = theta[c * 2 * k:(c + 1) * 2 * k]
            pieces = [(init_a[j] + lambda_a * t[j]) * x[n, c] +
                      (init_b[j] + lambda_b * t[k + j]) for j in range(k)]
            best = pieces[0]
            for p in pieces[1:]:
                best = torch.where(p > best, p, best)
            out[n, c] = best
    return out


@pytest.mark.parametrize('k', [1, 2, 3])
def test_matches_reference(k):
    torch.manual_seed(k)
    m = DyReLU(8, reduction=4, k=k)
    x = torch.randn(3, 8, 4, 5) * 2
    init_a = [1.0] + [0.0] * (k - 1)
    init_b = [0.0] * k
    expected = reference_dyrelu(m, x, 1.0, 0.5, init_a, init_b)
    torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-6)


def test_custom_lambdas_and_inits():
    torch.manual_seed(0)
    m = DyReLU(4, reduction=2, k=2, lambdas=(2.0, 1.0), init_a=(1.0, 0.25),
               init_b=(0.1, -0.2))
    x = torch.randn(2, 4, 3, 3)
    expected = reference_dyrelu(m, x, 2.0, 1.0, [1.0, 0.25], [0.1, -0.2])
    torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-6)


def test_zero_residual_is_relu():
    m = DyReLU(6)
    with torch.no_grad():
        m.fc2.weight.zero_()
        m.fc2.bias.zero_()
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(m(x), torch.relu(x))


def test_coefficient_ranges():
    torch.manual_seed(0)
    m = DyReLU(8, k=2)
    coef = m.coefficients(torch.randn(4, 8, 3, 3) * 10)
    assert coef.shape == (4, 8, 4)
    a1, a2, b1, b2 = coef.unbind(-1)
    assert ((a1 >= 0) & (a1 <= 2)).all() and (a2.abs() <= 1).all()
    assert (b1.abs() <= 0.5).all() and (b2.abs() <= 0.5).all()


def test_gradients_and_batch_one():
    torch.manual_seed(0)
    m = DyReLU(8)
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_build_and_conv_module():
    act = build_activation_layer(dict(type='DyReLU', channels=8))
    assert isinstance(act, DyReLU)
    # ConvModule passes inplace=True to activations; x must stay intact.
    block = ConvModule(4, 8, 3, act_cfg=dict(type='DyReLU', channels=8))
    x = torch.randn(2, 4, 6, 6)
    assert block(x).shape == (2, 8, 4, 4)
    y = torch.randn(2, 8, 3, 3)
    y_copy = y.clone()
    act(y)
    torch.testing.assert_close(y, y_copy)


def test_bad_arguments_and_input():
    with pytest.raises(ValueError, match='init_a'):
        DyReLU(4, k=3, init_a=(1.0, 0.0))
    with pytest.raises(ValueError, match='reduction'):
        DyReLU(4, reduction=0)
    with pytest.raises(ValueError, match=r'\(B, 4, H, W\)'):
        DyReLU(4)(torch.randn(1, 5, 2, 2))


def test_two_piece_fast_path_matches_reference_gradients():
    """The k = 2 forward / backward (custom autograd) against autograd
    through the straight loops of ``reference_dyrelu``, for the input and
    every parameter, plus a float64 gradcheck of the custom function."""
    torch.manual_seed(0)
    m = DyReLU(6, reduction=2).double()
    x = (torch.randn(2, 6, 5, 4, dtype=torch.float64) * 2).requires_grad_()
    grad = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    out = m(x)
    ref = reference_dyrelu(m, x, 1.0, 0.5, [1.0, 0.0], [0.0, 0.0])
    torch.testing.assert_close(out, ref)
    params = [x] + list(m.parameters())
    got = torch.autograd.grad(out, params, grad)
    want = torch.autograd.grad(ref, params, grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref)

    from mmdsp.models.layers._dyrelu_kernels import _TwoPieceMax
    coef = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_TwoPieceMax.apply, (xs, coef))
