"""Tuned forward of :class:`~mmdsp.models.layers.ODConv2d` (private).

Chosen by ``mmdsp.models.layers.set_impl('fast')`` (the default) for the
modules whose ``use_factorized`` is set: with one candidate kernel and 1x1
kernels, ``W(x) = alpha_f * alpha_c * W`` is a per-channel scale of the input
and of the output, so no per-sample kernel needs to be built.

:func:`per_sample_forward` is the general per-sample kernel written without
the batch folded into the conv groups, for ``torch.compile`` and
``torch.export`` (batch-dynamic graphs, ONNX with a dynamic batch).
"""
import torch
import torch.nn.functional as F


def factorized_forward(conv, x, att):
    """``alpha_f * (W conv (alpha_c * x))``, equal to the per-sample kernel
    conv of :meth:`ODConv2d.forward` when ``conv.use_factorized``.

    Args:
        conv (ODConv2d): The module (its weight, stride, padding, ...).
        x (Tensor): Input of shape (B, in_channels, H, W).
        att (ODConvAttention): ``conv.attentions(x)``.

    Returns:
        Tensor: Output of shape (B, out_channels, H', W'), without the bias.
    """
    y = F.conv2d(x * att.channel[:, :, None, None], conv.weight[0], None,
                 conv.stride, conv.padding, conv.dilation, conv.groups)
    if att.filter is not None:
        y = y * att.filter[:, :, None, None]
    return y


def per_sample_forward(conv, x, att):
    """The per-sample kernels of :meth:`ODConv2d.forward` applied tap by
    tap, with no batch size in any shape or attribute.

    ``y[b] = sum_t W[b, :, :, t] x_t[b]``, where ``x_t`` is the zero-padded
    input shifted (and strided) to kernel tap ``t``: for a depthwise conv
    each term is a per-(sample, channel) scale of ``x_t``, otherwise a
    batched matmul per group. The products are those of the grouped
    convolution, summed tap by tap. Used under ``torch.compile`` (which
    fuses the taps into one loop and does not specialise on the batch) and
    ``torch.export`` (so that the ONNX graph has a dynamic batch: ONNX
    ``Conv.group`` is a constant, the folded conv's ``groups * B`` is not).

    Args:
        conv (ODConv2d): The module (its kernel size, stride, padding,
            dilation and groups).
        x (Tensor): Input of shape (B, in_channels, H, W).
        att (ODConvAttention): ``conv.attentions(x)``.

    Returns:
        Tensor: Output of shape (B, out_channels, H', W'), without the bias.
    """
    weight = conv.aggregate_weight(att)  # (B, out, in/g, kh, kw)
    batch, _, height, width = x.shape
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    (ph, pw), (dh, dw) = conv.padding, conv.dilation
    out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    g = conv.groups
    out_c, in_g = conv.out_channels, weight.shape[2]
    y = None
    for i in range(kh):
        for j in range(kw):
            tap = x[:, :, i * dh:i * dh + sh * (out_h - 1) + 1:sh,
                    j * dw:j * dw + sw * (out_w - 1) + 1:sw]
            if conv.is_depthwise:
                term = tap * weight[:, :, 0, i, j, None, None]
            else:
                # (B, g, out/g, in/g) @ (B, g, in/g, H'W') per tap.
                term = torch.matmul(
                    weight[:, :, :, i, j].reshape(batch, g, out_c // g, in_g),
                    tap.reshape(batch, g, in_g, out_h * out_w)).reshape(
                        batch, out_c, out_h, out_w)
            y = term if y is None else y + term
    return y
