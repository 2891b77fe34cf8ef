"""Scores that tell when an image is unlike the images the model learnt.

Three scores, each fitted on the validation split and stored in the
checkpoint (:mod:`mmdsp.evaluation.calibration_meta`):

* **confidence**: the largest (temperature-scaled) class probability; low
  means the model cannot decide between classes.
* **energy** ``-logsumexp(logits)`` of the raw logits (Liu et al., 2020);
  high means weak evidence for every class.
* **feature distance**: cosine distance of the image's pre-logits feature to
  its k-th nearest training feature (Sun et al., 2022); high means the
  image looks like no training image, whatever the head makes of it.
* **stage distance**: the largest standardised Mahalanobis distance of the
  earlier stages' feature statistics to the training images'
  (:mod:`mmdsp.evaluation.stage_distance`); high means the image is made of
  other colours, textures or scales.
"""
import numpy as np
import torch

__all__ = [
    'energy_score', 'feature_distance', 'fit_thresholds', 'flag_reasons',
    'reason_kinds', 'REASON_KINDS', 'SCORES'
]

# The kinds of reason :func:`flag_reasons` gives, by the start of its text.
REASON_KINDS = {
    'seg_fallback': 'segmentation fell back',
    'confidence': 'low confidence',
    'energy': 'out of distribution: energy',
    'feature_distance': 'out of distribution: feature distance',
    'stage_distance': 'out of distribution: stage statistics',
}

# score name -> (threshold key, direction in which an image is odd)
SCORES = {
    'confidence': ('min_confidence', 'low'),
    'energy': ('max_energy', 'high'),
    'feature_distance': ('max_feature_distance', 'high'),
    'stage_distance': ('max_stage_distance', 'high'),
}


def energy_score(logits):
    """``-logsumexp(logits)`` per image; higher is more unusual.

    Args:
        logits (array-like): (N, K) raw logits.

    Returns:
        np.ndarray: (N, ) float64.
    """
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    return (-torch.logsumexp(logits, dim=1)).numpy()


def _normalise(x):
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    return torch.nn.functional.normalize(x.flatten(1), dim=1)


def feature_distance(features, bank, k=1, chunk=1024):
    """Cosine distance to the k-th nearest feature of ``bank``.

    Args:
        features (array-like): (N, C) features of the images to score.
        bank (array-like): (M, C) features of the training images.
        k (int): Which neighbour. Defaults to 1.
        chunk (int): Images per matrix product. Defaults to 1024.

    Returns:
        np.ndarray: (N, ) distances in [0, 2].
    """
    bank = _normalise(bank)
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f'feature_distance: k={k} but the feature bank '
                         f'holds {bank.shape[0]} images')
    feats = _normalise(features)
    if feats.shape[1] != bank.shape[1]:
        raise ValueError(f'feature_distance: features have {feats.shape[1]} '
                         f'dims, the bank {bank.shape[1]}')
    out = []
    for start in range(0, feats.shape[0], chunk):
        sim = feats[start:start + chunk] @ bank.T
        out.append(1 - sim.topk(k, dim=1).values[:, -1])
    if not out:
        return np.zeros(0)
    return torch.cat(out).double().numpy()


def fit_thresholds(scores, rates):
    """Thresholds that flag a chosen share of the validation images.

    Args:
        scores (dict): ``{score name: (N, ) validation scores}`` for names of
            :data:`SCORES`.
        rates (dict): ``{score name: share of validation images to flag}``,
            e.g. ``{'confidence': 0.01, 'energy': 0.01}``. A score left out,
            or with rate 0, gets no threshold.

    Returns:
        dict: ``{threshold key: value}``, e.g. ``min_confidence`` is the
        ``rate`` quantile of the validation confidences.
    """
    thresholds = {}
    for name, rate in rates.items():
        if name not in SCORES:
            raise KeyError(f'fit_thresholds: unknown score {name!r}; choose '
                           f'from {list(SCORES)}')
        if not rate:
            continue
        if not 0 < rate < 1:
            raise ValueError(f'fit_thresholds: the flag rate of {name!r} must '
                             f'lie in [0, 1), got {rate}')
        if name not in scores:
            raise KeyError(f'fit_thresholds: no validation scores for '
                           f'{name!r}')
        values = np.asarray(scores[name], dtype=np.float64)
        key, direction = SCORES[name]
        q = rate if direction == 'low' else 1 - rate
        thresholds[key] = float(np.quantile(values, q))
    return thresholds


def flag_reasons(thresholds, confidence=None, energy=None,
                 feature_distance=None, seg_fallback=None,
                 stage_distance=None):
    """Why one image should not be judged by the model.

    Args:
        thresholds (dict): As returned by :func:`fit_thresholds`.
        confidence, energy, feature_distance, stage_distance (float,
            optional): The image's scores; a score without a threshold, or
            None, is not checked.
        seg_fallback (bool, optional): The pipeline's segmentation fell
            back to the whole image.

    Returns:
        list[str]: Readable reasons; empty when the image is fine.
    """
    reasons = []
    if seg_fallback:
        reasons.append('segmentation fell back')
    t = thresholds.get('min_confidence')
    if t is not None and confidence is not None and confidence < t:
        reasons.append(f'low confidence ({confidence:.3f} < {t:.3f})')
    t = thresholds.get('max_energy')
    if t is not None and energy is not None and energy > t:
        reasons.append(f'out of distribution: energy {energy:.3f} > {t:.3f}')
    t = thresholds.get('max_feature_distance')
    if t is not None and feature_distance is not None \
            and feature_distance > t:
        reasons.append(f'out of distribution: feature distance '
                       f'{feature_distance:.3f} > {t:.3f}')
    t = thresholds.get('max_stage_distance')
    if t is not None and stage_distance is not None and stage_distance > t:
        reasons.append(f'out of distribution: stage statistics '
                       f'{stage_distance:.2f} > {t:.2f}')
    return reasons


def reason_kinds(flag_reason):
    """The kinds (keys of :data:`REASON_KINDS`) in a ``flag_reason`` text.

    Args:
        flag_reason (str): Reasons joined by ``'; '`` (a CSV cell).

    Returns:
        set[str]: e.g. ``{'energy', 'seg_fallback'}``.
    """
    kinds = set()
    for reason in filter(None, flag_reason.split('; ')):
        for kind, start in REASON_KINDS.items():
            if reason.startswith(start):
                kinds.add(kind)
    return kinds
