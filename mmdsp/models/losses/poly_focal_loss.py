"""PolyFocal loss of EfficientNet-DSP (paper section 3.5, eq. 10-11)."""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.losses.utils import weight_reduce_loss
from mmpretrain.registry import MODELS

_MISSING_OMEGA_MSG = (
    "PolyFocalLoss(omega='auto') has no class weights yet. They are "
    'computed from the training set class counts when training starts by '
    "ClassFrequencyOmegaHook: add dict(type='ClassFrequencyOmegaHook') to "
    "`custom_hooks` in the config, give an explicit `omega` list, or call "
    '`set_omega(...)` before using the loss.')


def class_frequency_omega(counts: Sequence[int]) -> torch.Tensor:
    """Per-class omega from the number of training samples of each class.

    The paper only says that omega is "a weight from the number of samples,
    adjusted by the share of positive samples". We use the normalised inverse
    class frequency: ``omega_k = (1 / n_k) / mean_j(1 / n_j)``. A class with
    fewer samples (a smaller positive share ``n_k / N``) gets a larger extra
    poly-1 term, and the mean over classes is 1 so that, averaged over
    classes, the extra term has the same magnitude ``gamma`` as an unweighted
    ``omega = 1``; a balanced dataset gives ``omega = 1`` everywhere.

    A class with no training sample cannot be a hard target, but may receive
    mass from soft targets; it is treated as if it had as many samples as the
    rarest present class so that its weight stays finite.

    Args:
        counts (Sequence[int]): Number of training samples per class.

    Returns:
        torch.Tensor: Float tensor of shape (num_classes, ) with mean 1.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if counts.numel() == 0:
        raise ValueError('class_frequency_omega got no class counts.')
    if (counts < 0).any() or not torch.isfinite(counts).all():
        raise ValueError(f'Class counts must be finite and non-negative, '
                         f'got {counts.tolist()}.')
    present = counts > 0
    if not present.any():
        raise ValueError('All class counts are zero: the training set has '
                         'no labelled sample.')
    counts = torch.where(present, counts, counts[present].min())
    inv = 1.0 / counts
    return (inv / inv.mean()).float()


@MODELS.register_module()
class PolyFocalLoss(nn.Module):
    r"""Poly-1 focal loss with optional per-class omega (PolyFocal Loss).

    For a sample of class :math:`y` with softmax probability :math:`p_t` of
    its target class:

    .. math::

        \mathrm{PFL} = -(1 - p_t)^{\gamma}\log(p_t) + c\,(1 - p_t)^{\gamma+1}

    with :math:`c = \omega_y \gamma` when ``omega`` is given (paper eq. 11)
    and :math:`c = \epsilon` otherwise (poly-1 focal loss of Leng et al.,
    2022). The first term is the focal loss of eq. 10. Its Taylor expansion
    in :math:`(1 - p_t)` is :math:`\sum_{j\ge1}(1-p_t)^{j+\gamma}/j`, whose
    leading coefficient is 1; adding :math:`\omega\gamma(1-p_t)^{\gamma+1}`
    turns it into the factor :math:`(1 + \omega\gamma)` named in the paper
    text, i.e. eq. 11 is poly-1 focal loss with :math:`\epsilon=\omega\gamma`.

    Soft targets :math:`t` of shape (N, C) (mixup, cutmix, label smoothing)
    give :math:`\sum_k t_k\,[-(1-p_k)^\gamma\log p_k + c_k(1-p_k)^{\gamma+1}]`,
    which equals the formula above for one-hot targets.

    The loss is always computed in at least float32 (autocast disabled), from
    ``log_softmax``, so it stays finite for extreme logits and under
    fp16/bf16 mixed precision.

    Args:
        gamma (float): Focusing parameter :math:`\gamma` (>= 0).
            Defaults to 2.0.
        omega (Sequence[float] | str, optional): Per-class weights
            :math:`\omega`, or ``'auto'`` to let
            :class:`~mmdsp.engine.hooks.ClassFrequencyOmegaHook` compute them
            from the training set class counts before training (see
            :func:`class_frequency_omega`). None uses ``epsilon`` instead.
            Defaults to None.
        epsilon (float): Poly-1 coefficient used when ``omega`` is None.
            Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 gamma: float = 2.0,
                 omega: Optional[Union[Sequence[float], str]] = None,
                 epsilon: float = 1.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__()
        if not (isinstance(gamma, (int, float)) and math.isfinite(gamma)
                and gamma >= 0):
            raise ValueError(f'PolyFocalLoss: `gamma` must be a finite '
                             f'number >= 0, got {gamma!r}.')
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon)):
            raise ValueError(f'PolyFocalLoss: `epsilon` must be a finite '
                             f'number, got {epsilon!r}.')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"PolyFocalLoss: `reduction` must be 'none', "
                             f"'mean' or 'sum', got {reduction!r}.")
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.reduction = reduction
        self.loss_weight = loss_weight

        self.auto_omega = False
        # Not persistent: omega is a training-set statistic, and checkpoints
        # must load into configs whatever their omega setting is.
        self.register_buffer('omega', None, persistent=False)
        if isinstance(omega, str):
            if omega != 'auto':
                raise ValueError(f"PolyFocalLoss: `omega` must be a list of "
                                 f"per-class weights, 'auto' or None, got "
                                 f'{omega!r}.')
            self.auto_omega = True
        elif omega is not None:
            self.set_omega(omega)

    def set_omega(self, omega: Union[Sequence[float], torch.Tensor]) -> None:
        """Set the per-class weights (used by ClassFrequencyOmegaHook).

        Args:
            omega (Sequence[float] | torch.Tensor): One finite,
                non-negative weight per class.
        """
        omega = torch.as_tensor(omega, dtype=torch.float32).detach().clone()
        if omega.dim() != 1 or omega.numel() == 0:
            raise ValueError(f'PolyFocalLoss: `omega` must be a flat list '
                             f'with one weight per class, got shape '
                             f'{tuple(omega.shape)}.')
        if not torch.isfinite(omega).all() or (omega < 0).any():
            raise ValueError(f'PolyFocalLoss: `omega` must be finite and '
                             f'non-negative, got {omega.tolist()}.')
        # The first forward moves it to the logits' device, once.
        self.omega = omega

    def extra_repr(self) -> str:
        if self.omega is not None:
            omega = [round(w, 4) for w in self.omega.tolist()]
        else:
            omega = "'auto' (unset)" if self.auto_omega else None
        return (f'gamma={self.gamma}, omega={omega}, epsilon={self.epsilon}, '
                f'reduction={self.reduction!r}, '
                f'loss_weight={self.loss_weight}')

    def _poly_coefficient(self, num_classes: int, device,
                          dtype) -> Union[float, torch.Tensor]:
        if self.omega is None:
            if self.auto_omega:
                raise RuntimeError(_MISSING_OMEGA_MSG)
            return self.epsilon
        if self.omega.numel() != num_classes:
            raise ValueError(f'PolyFocalLoss: `omega` has '
                             f'{self.omega.numel()} weights but the '
                             f'classifier outputs {num_classes} classes.')
        if self.omega.device != device:
            # Once: the hook sets omega after the model went to its
            # device; copying it in every step would be a host-to-device
            # transfer per iteration.
            self.omega = self.omega.to(device)
        return self.omega.to(dtype=dtype) * self.gamma

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): Logits of shape (N, C).
            label (torch.Tensor): Class indices of shape (N, ) or (N, 1), or
                soft target scores of shape (N, C).
            weight (torch.Tensor, optional): Sample-wise weights of shape
                (N, ). Defaults to None.
            avg_factor (float, optional): Divisor of the summed loss when the
                reduction is ``'mean'``. Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``.
                Defaults to None.

        Returns:
            torch.Tensor: The loss (a scalar unless the reduction is
            ``'none'``, then of shape (N, )).
        """
        if reduction_override not in (None, 'none', 'mean', 'sum'):
            raise ValueError(f'PolyFocalLoss: invalid reduction_override '
                             f'{reduction_override!r}.')
        reduction = reduction_override or self.reduction
        if cls_score.dim() != 2:
            raise ValueError(f'PolyFocalLoss expects logits of shape (N, C), '
                             f'got {tuple(cls_score.shape)}.')
        num_samples, num_classes = cls_score.shape
        # (N, 1) with a single class is read as indices, like mmpretrain.
        soft = label.dim() == 2 and label.shape == cls_score.shape \
            and num_classes > 1
        if not soft:
            label = label.reshape(-1)
            if label.numel() != num_samples:
                raise ValueError(
                    f'PolyFocalLoss: got {label.numel()} labels for '
                    f'{num_samples} samples (label shape '
                    f'{tuple(label.shape)}, logits shape '
                    f'{tuple(cls_score.shape)}).')
            label = label.long()

        # Low-precision softmax tails underflow and (1 - p)^gamma loses all
        # precision near p = 1, so the loss is computed in >= float32.
        dtype = torch.float64 if cls_score.dtype == torch.float64 \
            else torch.float32
        with torch.autocast(device_type=cls_score.device.type, enabled=False):
            logp = F.log_softmax(cls_score.to(dtype), dim=1)
            coef = self._poly_coefficient(num_classes, logp.device, dtype)
            if soft:
                loss = (label.to(dtype) *
                        self._per_class(logp, coef)).sum(dim=1)
            else:
                logpt = logp.gather(1, label[:, None])
                if isinstance(coef, torch.Tensor):
                    coef = coef[label][:, None]
                loss = self._per_class(logpt, coef).squeeze(1)
            if weight is not None:
                weight = weight.to(dtype).reshape(-1)
            loss = weight_reduce_loss(loss,
                                      weight=weight,
                                      reduction=reduction,
                                      avg_factor=avg_factor)
        return self.loss_weight * loss

    def _per_class(self, logp: torch.Tensor,
                   coef: Union[float, torch.Tensor]) -> torch.Tensor:
        """-(1-p)^gamma log p + coef (1-p)^(gamma+1) for log-probs ``logp``."""
        # -expm1(log p) is 1 - p without cancellation when p is close to 1.
        # The clamp keeps d/dp (1-p)^gamma finite at p == 1 for gamma < 1.
        one_minus_p = (-torch.expm1(logp)).clamp_min(
            torch.finfo(logp.dtype).tiny)
        focal = one_minus_p.pow(self.gamma)
        return -focal * logp + coef * focal * one_minus_p
