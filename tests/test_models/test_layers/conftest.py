"""Oracles the brick tests share, as fixtures (test modules cannot import
one another under ``--import-mode=importlib``, setup.cfg).

Each oracle is written from the equations and reads only the module's
parameters and buffers: never its forward, ``attentions`` or any other
method, so that a wrong implementation cannot agree with itself.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn


def odconv_oracle(m, x, dtype=torch.float64):
    """ODConv2d's output from its parameters, in ``dtype``.

    Li et al., ICLR 2022, section 3.2: a squeeze branch (global average
    pooling -> FC -> norm -> ReLU) feeds four heads,

    * ``alpha_s = sigmoid(fc_s(h))`` over the k x k kernel positions,
    * ``alpha_c = sigmoid(fc_c(h))`` over the input channels,
    * ``alpha_f = sigmoid(fc_f(h))`` over the output channels,
    * ``alpha_w = softmax(fc_w(h) / T)`` over the n candidate kernels,

    and each sample is convolved with its own kernel
    ``W = alpha_s . alpha_c . alpha_f . sum_i alpha_wi W_i`` (eq. 2).
    An attention is a constant 1 where it would be (the kernel attention
    of one candidate, the spatial one of a 1x1 kernel, the filter one of a
    depthwise conv: the module has no FC for it then). The convolution is a
    plain ``F.conv2d`` per sample.

    Args:
        m (ODConv2d): Reads ``weight``, ``bias``, ``temperature``, ``fc``,
            ``norm`` (LayerNorm or Identity), ``channel_fc``, ``filter_fc``,
            ``spatial_fc``, ``kernel_fc`` and the conv hyper-parameters.
        x (Tensor): (B, in_channels, H, W).
        dtype (torch.dtype): Computation dtype. Defaults to float64.

    Returns:
        Tensor: (B, out_channels, H', W') in ``dtype``; differentiable with
        respect to ``x`` and every parameter of ``m``.
    """
    def p(t):
        return None if t is None else t.to(dtype)

    def linear(fc, v):
        out = v @ p(fc.weight).t()
        return out if fc.bias is None else out + p(fc.bias)

    def sigmoid(z):
        return 1 / (1 + torch.exp(-z))

    x = x.to(dtype)
    batch, in_c, height, width = x.shape
    n, out_c, in_g, kh, kw = m.weight.shape
    groups = in_c // in_g
    # Which attentions exist is the paper's rule, not the module's choice.
    assert (m.kernel_fc is None) == (n == 1)
    assert (m.spatial_fc is None) == (kh * kw == 1)
    assert (m.filter_fc is None) == (groups == in_c == out_c)

    pooled = x.sum(dim=(2, 3)) / (height * width)  # global average pool
    h = linear(m.fc, pooled)
    if isinstance(m.norm, nn.LayerNorm):
        mu = h.mean(dim=1, keepdim=True)
        var = ((h - mu)**2).mean(dim=1, keepdim=True)
        h = (h - mu) / torch.sqrt(var + m.norm.eps)
        h = h * p(m.norm.weight) + p(m.norm.bias)
    else:
        assert isinstance(m.norm, nn.Identity), type(m.norm)
    h = torch.where(h > 0, h, torch.zeros_like(h))  # ReLU

    alpha_c = sigmoid(linear(m.channel_fc, h))
    alpha_f = (torch.ones(batch, out_c, dtype=dtype) if m.filter_fc is None
               else sigmoid(linear(m.filter_fc, h)))
    alpha_s = (torch.ones(batch, kh, kw, dtype=dtype) if m.spatial_fc is None
               else sigmoid(linear(m.spatial_fc, h)).reshape(batch, kh, kw))
    if m.kernel_fc is None:
        alpha_w = torch.ones(batch, 1, dtype=dtype)
    else:
        z = linear(m.kernel_fc, h) / float(m.temperature)
        e = torch.exp(z - z.max(dim=1, keepdim=True).values)
        alpha_w = e / e.sum(dim=1, keepdim=True)

    # Output channel o of group g reads input channels g*in_g .. +in_g.
    group_of = torch.arange(out_c) // (out_c // groups)
    in_index = group_of[:, None] * in_g + torch.arange(in_g)[None, :]
    weight = p(m.weight)
    outs = []
    for b in range(batch):
        w = sum(alpha_w[b, i] * weight[i] for i in range(n))
        w = w * alpha_c[b][in_index][:, :, None, None]
        w = w * alpha_f[b][:, None, None, None]
        w = w * alpha_s[b][None, None]
        outs.append(
            F.conv2d(x[b:b + 1], w, p(m.bias), m.stride, m.padding,
                     m.dilation, groups))
    return torch.cat(outs)


def batchnorm_eval_oracle(bn, x):
    """An eval-mode BatchNorm2d from its running statistics."""
    shape = (1, -1, 1, 1)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x - bn.running_mean.view(shape)) * scale.view(shape) + \
        bn.bias.view(shape)


def dyrelu_oracle(m, x, lambdas=(1.0, 0.5)):
    """DY-ReLU-B (Chen et al., ECCV 2020) from its FCs, with the paper's
    defaults ``alpha = (1, 0, ..), beta = 0`` and ``lambdas``: per sample
    and channel ``max_j (a_j x + b_j)``, ``a_j = alpha_j + lambda_a t_j``,
    ``b_j = beta_j + lambda_b t_{k+j}``, ``t = 2 sigmoid(fc2(relu(fc1(mean
    x)))) - 1`` laid out channel by channel (2k values each)."""
    k, c = m.k, m.channels
    pooled = x.mean(dim=(2, 3))
    hidden = (pooled @ m.fc1.weight.t() + m.fc1.bias).clamp_min(0)
    theta = 2 / (1 + torch.exp(-(hidden @ m.fc2.weight.t() + m.fc2.bias))) - 1
    theta = theta.reshape(-1, c, 2 * k)
    pieces = []
    for j in range(k):
        a = (1.0 if j == 0 else 0.0) + lambdas[0] * theta[:, :, j]
        b = lambdas[1] * theta[:, :, k + j]
        pieces.append(a[:, :, None, None] * x + b[:, :, None, None])
    out = pieces[0]
    for piece in pieces[1:]:
        out = torch.maximum(out, piece)
    return out


@pytest.fixture(scope='session')
def oracles():
    """``oracles.odconv(m, x)``, ``oracles.batchnorm_eval(bn, x)``,
    ``oracles.dyrelu(m, x)``."""
    from types import SimpleNamespace
    return SimpleNamespace(odconv=odconv_oracle,
                           batchnorm_eval=batchnorm_eval_oracle,
                           dyrelu=dyrelu_oracle)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'compile: runs torch.compile (seconds per case on 2 '
        "cores); deselect with -m 'not compile'")
