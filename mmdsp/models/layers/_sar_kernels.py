"""CPU-tuned forward of :class:`~mmdsp.models.layers.SAR` (private).

The same math as :func:`~mmdsp.models.layers.sar.sar_reference`, chosen by
``mmdsp.models.layers.set_impl('fast')`` (the default). SAR's strips are tiny
(N x C x 7 values at 7x7) and its full-size work is a handful of element-wise
passes, so on a CPU the literal forward is dominated by per-op overhead and by
reductions / broadcasts over 7- or 14-long inner axes:

- ``F_h`` / ``F_w`` (eqs. 5-6): a depthwise ``Conv1d`` over ``N * groups``
  samples has a very slow weight gradient on CPU; here it is a batched matmul
  with the banded (Toeplitz) matrix of each in-group channel's kernel;
- ``G_n``: the strips are laid out as (L, strips) so that normalising each
  strip over its L positions is one vectorised ``F.batch_norm`` in training
  mode without running statistics, then the GroupNorm affine;
- eq. 7, the shuffle and the residual: the shuffle is applied to the small
  gates, and :class:`_ShuffledGate` does ``x + shuffle(x * y^h * y^w)`` in two
  full-size passes with a matching backward.
"""
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils import channel_shuffle
from torch.autograd.function import once_differentiable

# Maps of at most this many pixels expand the strip gates by matmul: on 7x7
# maps broadcasting over a 7-long inner axis is dominated by per-row overhead
# on CPU, on 14x14 maps the matmuls cost more than they save.
SMALL_MAP = 64


class _StripMeans(torch.autograd.Function):
    """Eqs. 3-4, the means of x over W and over H, ``(N, C, H + W)``, as
    one matmul with the constant averaging matrix of :func:`pool_matrix`.

    Two ``mean`` calls read x twice and reduce over 7- or 14-long inner
    axes, slow on CPU; the matmul reads it once, and its backward is one
    matmul with the transposed matrix. It is a mean, computed in x's dtype
    (autocast off) like ``Tensor.mean``; a custom function so that FLOP
    counters, which count no mean, do not count it as a matmul either.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return strip_means(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        n, c, h, w = ctx.shape
        pool = pool_matrix(h, w, grad.device, grad.dtype)
        grad_x = grad.reshape(n * c, h + w) @ pool.t()
        return grad_x.view(n, c, h, w)


def strip_means(x):
    """The forward of :class:`_StripMeans`: ``(N, C, H + W)``, the means of
    x over W, then over H."""
    n, c, h, w = x.shape
    pool = pool_matrix(h, w, x.device, x.dtype)
    with torch.autocast(x.device.type, enabled=False):
        z = x.reshape(n * c, h * w) @ pool
    return z.view(n, c, h + w)


@functools.lru_cache(maxsize=64)
def pool_matrix(h, w, device, dtype):
    """Constant (H*W, H+W) matrix: column i < H averages row i of an H x W
    map (1/W on its pixels), column H + j averages column j (1/H), cached
    per size, device and dtype."""
    with torch.inference_mode(False):
        expand_h, expand_w = pixel_maps(h, w, device, dtype)
        return torch.cat([expand_h / w, expand_w / h]).t().contiguous()


class _ShuffledGate(torch.autograd.Function):
    """``out = [x +] shuffle(x * y^h * y^w)`` (eq. 7, shuffle, residual)
    with the gates already in output channel order.

    Autograd through the strided views of this expression copies the
    gradient back to x's layout and multiplies over 7- or 14-long inner
    axes; this backward needs one product and one strided sum for x, and
    for the gates one product with x plus the two strip reductions, done as
    matmuls with the 0/1 expansion matrices on small maps.
    """

    @staticmethod
    def forward(ctx, x, y_h, y_w, shuffle_groups, residual, expand_h,
                expand_w):
        out, saved = shuffled_gate(x, y_h, y_w, shuffle_groups, residual,
                                   expand_h, expand_w)
        ctx.shuffle_groups, ctx.residual = shuffle_groups, residual
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, y_h, y_w, gate, expand_h, expand_w = ctx.saved_tensors
        n, c, h, w = x.shape
        s = ctx.shuffle_groups
        grad5 = grad.contiguous().view(n, c // s, s, h, w)
        grad_x = grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            # Back to x's channel order by a strided read, no copy.
            unshuffled = (grad5 * gate).transpose(1, 2)
            if ctx.residual:
                grad_x = torch.add(grad5.view(n, s, c // s, h, w),
                                   unshuffled).view(n, c, h, w)
            else:
                grad_x = unshuffled.reshape(n, c, h, w)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_gate = grad5 * x.view(n, s, c // s, h, w).transpose(1, 2)
            if expand_h is not None:
                grad_gate = grad_gate.reshape(n * c, h * w)
                grad_h = (grad_gate * (y_w.reshape(n * c, w) @ expand_w)) \
                    @ expand_h.t()
                grad_w = (grad_gate * (y_h.reshape(n * c, h) @ expand_h)) \
                    @ expand_w.t()
            else:
                grad_gate = grad_gate.reshape(n, c, h, w)
                grad_h = (grad_gate * y_w.unsqueeze(2)).sum(3)
                grad_w = (grad_gate * y_h.unsqueeze(3)).sum(2)
            grad_h, grad_w = grad_h.view_as(y_h), grad_w.view_as(y_w)
        return grad_x, grad_h, grad_w, None, None, None, None


def shuffled_gate(x, y_h, y_w, shuffle_groups, residual, expand_h,
                  expand_w):
    """The forward of :class:`_ShuffledGate`; also the inference path,
    without autograd. Returns the output and the tensors the backward
    needs."""
    # Under autocast the gates (sigmoid) are fp32 and x fp16/bf16: the
    # small gates are cast to x's dtype, so the output and what the backward
    # keeps stay in low precision. Autograd casts each gradient back to its
    # input's dtype.
    y_h, y_w = y_h.to(x.dtype), y_w.to(x.dtype)
    if expand_h is not None:
        expand_h, expand_w = expand_h.to(x.dtype), expand_w.to(x.dtype)
    n, c, h, w = x.shape
    s = shuffle_groups
    gate = gate_map(y_h, y_w, expand_h, expand_w).view(n, c // s, s, h, w)
    # x in output channel order, as a strided view (no copy).
    x_in = x.view(n, s, c // s, h, w).transpose(1, 2)
    if residual:
        out = torch.addcmul(x.view(n, c // s, s, h, w), x_in, gate)
    else:
        out = gate * x_in
    # The gate is kept for the backward (CPU speed); the device kernel
    # recomputes it instead (_sar_device.py).
    return out.reshape(n, c, h, w), (x, y_h, y_w, gate, expand_h,
                                     expand_w)


def gate_map(y_h, y_w, expand_h, expand_w):
    """The full-size gate ``y^h * y^w`` from the strips (N, C, H) and
    (N, C, W): by matmul with the 0/1 expansion matrices on small maps,
    else by broadcasting."""
    n, c, h = y_h.shape
    w = y_w.size(2)
    if expand_h is not None:
        return (y_h.reshape(n * c, h) @ expand_h) * (
            y_w.reshape(n * c, w) @ expand_w)
    return y_h.unsqueeze(3) * y_w.unsqueeze(2)


def sar_forward(sar, x):
    """The tuned forward of ``sar`` (a :class:`SAR`) on an NCHW input.

    Args:
        sar (SAR): The module, whose parameters and options are used.
        x (Tensor): Input of shape (N, C, H, W), already checked.

    Returns:
        Tensor: The output of :func:`sar_reference`, up to float rounding.
    """
    # The views below need NCHW-contiguous memory (a no-op unless x is e.g.
    # channels_last).
    x = x.contiguous()
    n, c, h, w = x.shape
    # Without autograd the functions' forwards run directly.
    grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in sar.parameters()))
    # eqs. 3-4: both strips in one pass over x, (N, C, H + W).
    z = _StripMeans.apply(x) if grad else strip_means(x)
    z_h, z_w = z[..., :h], z[..., h:]  # (N, C, H), (N, C, W)
    # The gates come back channel-shuffled: shuffling them rather than the
    # output saves a full-size copy. Output channel j * s + i is input
    # channel i * C / s + j, gated. F.batch_norm refuses one value per
    # channel, so 1-pixel strips (whose gate is sigmoid(bias)) go through
    # the modules.
    if _per_channel_norm(sar) and h > 1 and w > 1:
        y_h, y_w = strip_gates(sar, z_h, z_w)  # eqs. 5, 6
    else:
        y_h, y_w = strip_gates_by_modules(sar, z_h, z_w)
    expand_h = expand_w = None
    if h * w <= SMALL_MAP:
        expand_h, expand_w = pixel_maps(h, w, x.device, x.dtype)
    if not grad:
        return shuffled_gate(x, y_h, y_w, sar.shuffle_groups, sar.residual,
                             expand_h, expand_w)[0]
    return _ShuffledGate.apply(x, y_h, y_w, sar.shuffle_groups, sar.residual,
                               expand_h, expand_w)


def _per_channel_norm(sar):
    """Whether ``G_n`` normalises each channel over its strip, the default,
    for which :func:`strip_gates` is written."""
    norm, cg = sar.norm, sar.group_channels
    return (type(norm) is nn.GroupNorm
            and norm.num_groups == norm.num_channels == cg)


def strip_gates_by_modules(sar, z_h, z_w):
    """Eqs. 5-6 with the modules as they are: the groups are folded into the
    batch so that every group shares ``F_h``, ``F_w`` and ``G_n``. Used for a
    norm other than the default per-channel GroupNorm and for strips of one
    pixel. Returns the gates channel-shuffled, flattened to (N, C, L)."""
    n, c, h = z_h.shape
    fold = (n * sar.groups, sar.group_channels)
    y_h = torch.sigmoid(sar.norm(sar.conv_h(z_h.reshape(*fold, h))))
    y_w = torch.sigmoid(sar.norm(sar.conv_w(z_w.reshape(*fold, z_w.size(2)))))
    gates = [y_h.reshape(n, c, h, 1), y_w.reshape(n, c, -1, 1)]
    if sar.shuffle_groups > 1:
        gates = [channel_shuffle(y, sar.shuffle_groups) for y in gates]
    return [y.flatten(2) for y in gates]


def strip_gates(sar, z_h, z_w):
    """Eqs. 5-6, ``sigmoid(G_n(F(z)))`` on both strips, for the default
    per-channel GroupNorm; equal to :func:`strip_gates_by_modules`
    (channel-shuffled as well).

    ``F_h`` / ``F_w`` are a batched matmul with the banded matrix of each
    in-group channel's kernel, zero padding included; the strips are laid
    out as (L, strips) so that normalising every strip over its L positions
    is ``F.batch_norm`` in training mode with no running statistics (biased
    variance, the same ``eps``), followed by the GroupNorm affine; for
    square maps both strips go through one matmul, one norm and one sigmoid;
    the copy back to (N, C, L) also applies the channel shuffle.
    """
    n, c, h = z_h.shape
    w = z_w.size(2)
    groups, cg, s = sar.groups, sar.group_channels, sar.shuffle_groups
    strips = [(z_h, sar.conv_h), (z_w, sar.conv_w)]
    batches = [strips] if h == w else [strips[:1], strips[1:]]
    norm = sar.norm
    gates = []
    for batch in batches:
        k, length = len(batch), batch[0][0].size(2)
        # (k, N, C, L) -> (k * C/G, L, N * G): one matrix per in-group
        # channel, applied to all groups and samples at once.
        z = torch.stack([strip for strip, _ in batch])
        z = z.view(k, n * groups, cg, length).permute(0, 2, 3, 1).reshape(
            k * cg, length, n * groups)
        band = toeplitz(torch.cat([conv.weight for _, conv in batch]), length)
        # Strips as columns, ordered (sample, group, k, in-group channel) so
        # that the per-channel affine broadcasts over the last axis.
        u = torch.matmul(band, z).permute(1, 2, 0).reshape(length, -1)
        u = F.batch_norm(u, None, None, None, None, True, 0.0, norm.eps)
        if norm.affine:
            u = torch.addcmul(norm.bias, u.view(length, -1, cg), norm.weight)
        y = torch.sigmoid(u)
        if s > 1 and groups % s == 0:
            # Input channel (i * G/s + g) * C/G + c goes to output channel
            # (g * C/G + c) * s + i.
            y = y.view(length, n, s, groups // s, k, cg).permute(
                4, 1, 3, 5, 2, 0)
            gates.extend(y.reshape(k, n, c, length).unbind(0))
            continue
        y = y.view(length, n, groups, k, cg).permute(3, 1, 2, 4, 0)
        y = y.reshape(k, n, c, length, 1)
        if s > 1:
            y = torch.stack([channel_shuffle(g, s) for g in y.unbind(0)])
        gates.extend(y.flatten(3).unbind(0))
    return gates


def toeplitz(weight, length):
    """Banded matrices of a depthwise ``Conv1d`` with 'same' zero padding:
    ``T[c] @ z == conv1d(z)[c]`` for strips of ``length``.

    Args:
        weight (Tensor): Conv1d weight, shape (C, 1, k), k odd.
        length (int): Strip length L.

    Returns:
        Tensor: Shape (C, L, L), ``T[c, j, i] = weight[c, 0, i - j + k // 2]``
        where that tap exists, else 0.
    """
    tap, inside = _taps(length, weight.size(2), weight.device)
    return weight[:, 0, tap] * inside


@functools.lru_cache(maxsize=64)
def _taps(length, kernel_size, device):
    """Which kernel tap links strip positions i and j of a 'same' padded 1-D
    convolution: ``tap[j, i] = i - j + k // 2`` (clipped) and
    ``inside[j, i]`` whether that tap exists (else zero padding). Constants,
    cached per size and device."""
    # Made outside inference mode even when first asked for inside it, or a
    # later training step could not save them for backward.
    with torch.inference_mode(False):
        return _taps_uncached(length, kernel_size, device)


def _taps_uncached(length, kernel_size, device):
    pos = torch.arange(length, device=device)
    tap = pos[None, :] - pos[:, None] + kernel_size // 2
    inside = (tap >= 0) & (tap < kernel_size)
    return tap.clamp(0, kernel_size - 1), inside


def sar_traceable(sar, x):
    """Eqs. 3-7 in plain differentiable ops, for ``torch.compile`` and
    ``torch.export``: :func:`~mmdsp.models.layers.sar.sar_reference` with
    ``F_h`` / ``F_w`` as the banded matmuls of :func:`toeplitz` (the
    modules' ``Conv1d`` weights, any ``G_n`` module as it is).

    No custom autograd function, no cache and no batch size in a shape
    attribute, so the compilers see the whole graph: inductor fuses the
    pooling, the gate product, the shuffle and the residual into a few
    loops (the CPU-tuned :func:`sar_forward` exists because eager mode
    cannot), and the exported graph takes any batch.

    Args:
        sar (SAR): The module.
        x (Tensor): Input of shape (N, C, H, W), already checked.

    Returns:
        Tensor: The output of ``sar_reference``, up to float rounding.
    """
    n, c, h, w = x.shape
    xg = x.reshape(n * sar.groups, sar.group_channels, h, w)
    y_h = torch.sigmoid(sar.norm(_banded(xg.mean(dim=3), sar.conv_h)))
    y_w = torch.sigmoid(sar.norm(_banded(xg.mean(dim=2), sar.conv_w)))
    y = (xg * y_h.unsqueeze(3) * y_w.unsqueeze(2)).reshape(n, c, h, w)
    if sar.shuffle_groups > 1:
        y = channel_shuffle(y, sar.shuffle_groups)
    return x + y if sar.residual else y


def _banded(z, conv):
    """``conv(z)`` for a depthwise 'same' ``Conv1d`` as a banded matmul,
    ``z`` of shape (B, C, L)."""
    length, k = z.size(2), conv.weight.size(2)
    tap, inside = _taps_uncached(length, k, z.device)
    band = conv.weight[:, 0, tap] * inside  # (C, L, L), see toeplitz
    return torch.einsum('cji,bci->bcj', band.to(z.dtype), z)


@functools.lru_cache(maxsize=64)
def pixel_maps(h, w, device, dtype):
    """Constant 0/1 matrices ``expand_h`` (H, H*W) and ``expand_w``
    (W, H*W) that copy a strip value to every pixel of its row / column,
    cached per size, device and dtype."""
    with torch.inference_mode(False):
        pixels = torch.arange(h * w, device=device)
        expand_h = pixels[None] // w == torch.arange(h, device=device)[:, None]
        expand_w = pixels[None] % w == torch.arange(w, device=device)[:, None]
        return expand_h.to(dtype), expand_w.to(dtype)
