"""What ``fit_temperature.py`` stores in a checkpoint, and reading it back.

``checkpoint['meta']['calibration']`` is a plain dict (tensors, floats and
strings only, so ``torch.load(weights_only=True)`` reads it)::

    temperature        float, divides the logits (1.0: none)
    thresholds         {'min_confidence': .., 'max_energy': ..,
                        'max_feature_distance': ..,
                        'max_stage_distance': ..} (each optional)
    flag_rates         the validation share each threshold was set to flag
    feature_bank       (M, C) float16 tensor of L2-normalised training
                       features, for the feature distance (optional)
    feature_k          which neighbour the distance uses
    stage_names        dotted names of the stages the stage distance reads
    stage_gaussians    one dict per stage (mean, scale, precision tensors,
                       val_mean, val_std), see mmdsp.evaluation.stage_distance
    fitted_on          e.g. {'val': 652, 'bank': 2279}
"""
import math

import torch

__all__ = ['META_KEY', 'read_calibration']

META_KEY = 'calibration'
THRESHOLD_KEYS = ('min_confidence', 'max_energy', 'max_feature_distance',
                  'max_stage_distance')


def read_calibration(meta, source='checkpoint'):
    """The validated calibration entry of a checkpoint's ``meta``.

    Args:
        meta (dict | None): ``checkpoint['meta']``.
        source (str): The checkpoint file, for error messages.

    Returns:
        dict: ``temperature`` (1.0 when the checkpoint was never
        calibrated), ``thresholds`` (possibly empty), ``feature_bank``
        (tensor or None), ``feature_k``, ``stage_names`` and
        ``stage_gaussians`` (lists, empty without a stage distance); plus any
        other stored keys.
    """
    entry = (meta or {}).get(META_KEY)
    if entry is None:
        return dict(temperature=1.0, thresholds={}, feature_bank=None,
                    feature_k=1, stage_names=[], stage_gaussians=[])
    where = f"{source}: meta['{META_KEY}']"
    if not isinstance(entry, dict):
        raise TypeError(f'{where} must be a dict, got {type(entry).__name__}')
    out = dict(entry)
    t = out.setdefault('temperature', 1.0)
    if not isinstance(t, (int, float)) or not (t > 0 and math.isfinite(t)):
        raise ValueError(f"{where}['temperature'] must be a positive number, "
                         f'got {t!r}')
    out['temperature'] = float(t)
    thresholds = out.setdefault('thresholds', {})
    if not isinstance(thresholds, dict):
        raise TypeError(f"{where}['thresholds'] must be a dict")
    for key, value in thresholds.items():
        if key not in THRESHOLD_KEYS:
            raise KeyError(f"{where}['thresholds'] has unknown key {key!r}; "
                           f'known: {THRESHOLD_KEYS}')
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}['thresholds'][{key!r}] must be a "
                             f'finite number, got {value!r}')
    bank = out.setdefault('feature_bank', None)
    if 'max_feature_distance' in thresholds and not isinstance(
            bank, torch.Tensor):
        raise KeyError(f"{where} has a 'max_feature_distance' threshold but "
                       "no 'feature_bank' tensor")
    out['feature_k'] = int(out.get('feature_k', 1))
    names = list(out.get('stage_names') or [])
    gaussians = list(out.get('stage_gaussians') or [])
    if len(names) != len(gaussians):
        raise ValueError(f"{where} names {len(names)} stages but holds "
                         f"{len(gaussians)} stage Gaussians")
    for i, g in enumerate(gaussians):
        missing = {'mean', 'scale', 'precision', 'val_mean', 'val_std'} - set(
            g if isinstance(g, dict) else ())
        if missing:
            raise KeyError(f"{where}['stage_gaussians'][{i}] lacks "
                           f'{sorted(missing)}')
    if 'max_stage_distance' in thresholds and not gaussians:
        raise KeyError(f"{where} has a 'max_stage_distance' threshold but "
                       "no 'stage_gaussians'")
    out['stage_names'], out['stage_gaussians'] = names, gaussians
    return out
