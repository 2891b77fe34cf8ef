"""CPU-tuned mask of :class:`~mmdsp.models.layers.DyDropBlock` (private).

The same mask as :func:`~mmdsp.models.layers.dydropblock.drop_blocks`, from
the same seeds, chosen by ``mmdsp.models.layers.set_impl('fast')`` (the
default). The reference grows each seed into its block with a
``beta x beta`` max-pool, ``beta ** 2`` comparisons per unit with indices,
slow on CPU; here the seeds of each window are counted with prefix sums.
"""
import torch
import torch.nn.functional as F


def drop_blocks(x, seeds, beta, eps):
    """Zero the ``beta x beta`` block of every seed and rescale the rest.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        seeds (Tensor): 0/1 seeds, shape (N, C, H - beta + 1, W - beta + 1),
            in the dtype of ``x``.
        beta (int): Block size.
        eps (float): Floor of the kept-unit count.

    Returns:
        Tensor: ``x * keep * numel / kept``.
    """
    dropped = spread_seeds(seeds, beta)
    # Counting in float32 keeps half-precision masks from overflowing; a sum
    # of 0/1 values is exact, so counting the dropped units gives the same
    # kept count as summing the keep mask.
    numel = x.numel()
    kept = (numel - dropped.sum(dtype=torch.float32) *
            (numel // dropped.numel())).clamp_min(eps)
    factor = (numel / kept).to(x.dtype)
    # keep * factor in one pass, factor - dropped * factor, which is exactly
    # factor or 0: one full-size multiply remains for x (and one for its
    # gradient) instead of two.
    # dropped * -factor + factor, in that order: addcmul with the 0-d
    # factor as its first operand is slower on CPU (the output is resized
    # from a scalar).
    return x * dropped.mul(-factor).add_(factor)


def spread_seeds(seeds, beta):
    """Grow every seed into the ``beta x beta`` block it anchors.

    Unit ``(i, j)`` is dropped iff a seed lies in the ``beta x beta`` window
    above and to the left of it, which is what a stride-1 ``beta x beta``
    max-pool of the seeds padded by ``beta - 1`` gives. Here the seeds in
    each window are counted with prefix sums, one pass along W and one along
    H (a window count is the difference of two prefix sums), and a count of
    at least one marks a dropped unit. The counts are small integers, exact
    in float32, so the mask is exactly the max-pool's. When the block fills
    the map (one seed position, e.g. the 7x7 maps of the last stage) the mask
    is that seed, broadcast over the map.

    Args:
        seeds (Tensor): 0/1 seeds, shape (N, C, h - beta + 1, w - beta + 1).
        beta (int): Block size.

    Returns:
        Tensor: The 0/1 dropped-unit mask in the dtype of ``seeds``, shape
        (N, C, h, w), or (N, C, 1, 1) when ``beta`` equals both sides of the
        map.
    """
    if seeds.shape[-2:] == (1, 1):
        return seeds
    # Half-precision floats count exactly only up to 2048 (bfloat16: 256),
    # too few for prefix sums over a long row.
    counts = seeds.float() if seeds.element_size() < 4 else seeds
    for dim in (-1, -2):
        size = counts.shape[dim] + beta - 1  # h or w
        pad = (beta, beta - 1) if dim == -1 else (0, 0, beta, beta - 1)
        # prefix[t] = seeds before t - beta + 1; the window of output u holds
        # the seeds u - beta + 1 .. u.
        prefix = F.pad(counts, pad).cumsum(dim)
        counts = prefix.narrow(dim, beta, size) - prefix.narrow(dim, 0, size)
    return counts.clamp_max_(1).to(seeds.dtype)


def drop_blocks_lean(x, seeds, beta, eps):
    """:func:`drop_blocks` for CUDA, other devices and channels_last
    tensors: the same mask from the same seeds, kept for the backward as
    one byte a unit (``bool``) instead of a map in ``x``'s dtype, and the
    output in ``x``'s dtype and memory format.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        seeds (Tensor): 0/1 seeds, shape (N, C, H - beta + 1, W - beta + 1).
        beta (int): Block size.
        eps (float): Floor of the kept-unit count.

    Returns:
        Tensor: ``x * keep * numel / kept``.
    """
    keep = spread_seeds(seeds, beta) == 0
    numel = x.numel()
    kept = (keep.sum(dtype=torch.float32) *
            (numel // keep.numel())).clamp_min(eps)
    return _KeepScale.apply(x, keep, (numel / kept).to(x.dtype))


class _KeepScale(torch.autograd.Function):
    """``x * keep * factor`` for a bool ``keep`` (broadcast to ``x``) and a
    0-d ``factor``, saving only ``keep`` and ``factor``."""

    @staticmethod
    def forward(ctx, x, keep, factor):
        ctx.save_for_backward(keep, factor)
        return _keep_scale(x, keep, factor)

    @staticmethod
    def backward(ctx, grad):
        keep, factor = ctx.saved_tensors
        return _keep_scale(grad, keep, factor), None, None


def _keep_scale(x, keep, factor):
    out = torch.empty_like(x)  # x's memory format, whatever keep's
    return torch.mul(x, keep, out=out).mul_(factor)
