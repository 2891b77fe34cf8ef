"""The stage-statistics distance: how unlike the training images an image
is in what it is made of, stage by stage (Lee et al., 2018, Mahalanobis
distance on several layers; one Gaussian for all classes).

For each backbone stage s, an image is summarised by the per-channel mean
and std of the stage's output, ``f_s`` (:class:`mmdsp.apis.StageStatistics`).
On the training images, each dimension is standardised and a Gaussian
with a Ledoit-Wolf covariance ``Sigma_s`` is fitted; then

    d_s(x) = log (z_s(x)^T Sigma_s^-1 z_s(x)),  z_s = (f_s - mean_s) / std_s

is put on a common scale by the mean and std of ``d_s`` on the validation
images, and the score is the largest of these over the stages:

    stage_distance(x) = max_s (d_s(x) - mu_s) / sigma_s

A drawn smear, a photo or a cell at another magnification differs from
the training images in colour, texture and scale, which the early stages
see even where the head's feature does not. Ledoit-Wolf chooses the
covariance shrinkage from the data, so the score has no knob to tune.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch

__all__ = ['ledoit_wolf', 'fit_stage_gaussians', 'stage_distance']


def ledoit_wolf(x: torch.Tensor) -> torch.Tensor:
    """Ledoit-Wolf shrunk covariance of centred samples (Ledoit and Wolf,
    2004): ``a * mu * I + (1 - a) * S`` with ``S`` the sample covariance,
    ``mu`` its mean eigenvalue and ``a`` the estimated optimal intensity.

    Args:
        x (torch.Tensor): (N, D) samples, already centred.

    Returns:
        torch.Tensor: (D, D) covariance, float64.
    """
    x = x.double()
    n, d = x.shape
    s = x.T @ x / n
    mu = torch.trace(s) / d
    delta = ((s - mu * torch.eye(d, dtype=s.dtype)) ** 2).sum() / d
    # sum_k ||x_k x_k^T - S||_F^2 = sum_k ||x_k||^4 - n ||S||_F^2
    beta = ((x ** 2).sum(1) ** 2).sum() - n * (s ** 2).sum()
    beta = beta / n ** 2 / d
    a = 1.0 if delta <= 0 else float(torch.clamp(beta / delta, 0, 1))
    return a * mu * torch.eye(d, dtype=s.dtype) + (1 - a) * s


def _log_distance(feats, gaussian):
    z = (torch.as_tensor(np.asarray(feats)).double() - gaussian['mean'])
    z = z / gaussian['scale']
    d = torch.einsum('nd,de,ne->n', z, gaussian['precision'], z)
    return torch.log(d.clamp_min(1e-12))


def fit_stage_gaussians(train: Sequence, val: Sequence) -> List[Dict]:
    """One Gaussian per stage from the training images' statistics, put on
    a common scale by the validation images'.

    Args:
        train (Sequence[array-like]): Per stage, (N_train, D_s) statistics.
        val (Sequence[array-like]): Per stage, (N_val, D_s) statistics.

    Returns:
        list[dict]: Per stage ``mean``, ``scale`` (D_s, ), ``precision``
        (D_s, D_s) float32 tensors and ``val_mean``, ``val_std`` floats: the
        checkpoint entry :func:`stage_distance` reads.
    """
    if len(train) != len(val) or not train:
        raise ValueError(f'fit_stage_gaussians: {len(train)} training and '
                         f'{len(val)} validation stages')
    out = []
    for s, (tr, va) in enumerate(zip(train, val)):
        tr = torch.as_tensor(np.asarray(tr)).double()
        if tr.shape[0] < 2 or np.asarray(va).shape[1] != tr.shape[1]:
            raise ValueError(f'fit_stage_gaussians: stage {s} has '
                             f'{tr.shape[0]} training images of '
                             f'{tr.shape[1]} dims and validation ones of '
                             f'{np.asarray(va).shape[1]}')
        mean = tr.mean(0)
        scale = tr.std(0).clamp_min(1e-6)
        cov = ledoit_wolf((tr - mean) / scale)
        gaussian = dict(mean=mean, scale=scale,
                        precision=torch.linalg.inv(cov))
        d = _log_distance(va, gaussian)
        std = float(d.std()) if len(d) > 1 else 1.0
        out.append(dict(mean=mean.float(), scale=scale.float(),
                        precision=gaussian['precision'].float(),
                        val_mean=float(d.mean()), val_std=max(std, 1e-6)))
    return out


def stage_distance(stats: Sequence, gaussians: Sequence[Dict]) -> np.ndarray:
    """The largest standardised log Mahalanobis distance over the stages.

    Args:
        stats (Sequence[array-like]): Per stage, (N, D_s) statistics of the
            images to score, the stages of ``gaussians`` in their order.
        gaussians (Sequence[dict]): From :func:`fit_stage_gaussians`.

    Returns:
        np.ndarray: (N, ) float64; about N(0, 1) per stage on validation
        images, higher is more unusual.
    """
    if len(stats) != len(gaussians):
        raise ValueError(f'stage_distance: statistics of {len(stats)} '
                         f'stages for {len(gaussians)} fitted ones')
    scores = []
    for s, (x, g) in enumerate(zip(stats, gaussians)):
        dims = np.asarray(x).shape[1]
        if dims != g['mean'].shape[0]:
            raise ValueError(f'stage_distance: stage {s} gives {dims} dims, '
                             f'fitted on {g["mean"].shape[0]}')
        g64 = {k: g[k].double() for k in ('mean', 'scale', 'precision')}
        scores.append((_log_distance(x, g64) - g['val_mean']) / g['val_std'])
    return torch.stack(scores).max(0).values.numpy()
