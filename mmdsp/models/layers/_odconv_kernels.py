"""Tuned forward of :class:`~mmdsp.models.layers.ODConv2d` (private).

Chosen by ``mmdsp.models.layers.set_impl('fast')`` (the default) for the
modules whose ``use_factorized`` is set: with one candidate kernel and 1x1
kernels, ``W(x) = alpha_f * alpha_c * W`` is a per-channel scale of the input
and of the output, so no per-sample kernel needs to be built.
"""
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
