"""Calibrate a trained checkpoint: temperature and reject thresholds.

    python tools/analysis_tools/fit_temperature.py CONFIG CKPT \
        [--out NEW_CKPT] [--flag-rate confidence=0.01 energy=0.01 \
        feature_distance=0.01 stage_distance=0.02] [--bank-size 0] \
        [--stages NAME ...] [--no-test]

On the validation split (``val_dataloader``) it fits one temperature T by
minimising the NLL of ``softmax(logits / T)`` with LBFGS (Guo et al., 2017),
then the thresholds of the reasons not to judge an image: the lowest
calibrated confidence, the highest energy ``-logsumexp(logits)`` and the
highest feature distance to the training images and the highest stage
distance (the earlier stages' feature statistics against Gaussians fitted on
the training images, :mod:`mmdsp.evaluation.stage_distance`), each set to
flag the given share of validation images. The training images
(``train_dataloader``, run through the test pipeline) form the feature bank
and the stage Gaussians. Everything is stored in
``meta['calibration']`` of a copy of the checkpoint (``NEW_CKPT``, default
``<CKPT stem>_calibrated.pth``), which tools/predict.py, mmdsp.apis and
tools/test.py (with ``TemperatureScalingHook``) then use. Prints ECE, NLL,
Brier and accuracy before and after on val and test, and the flag rates.
"""
import argparse
import copy
import os.path as osp
import sys

import numpy as np
import torch

from mmdsp.apis import collect_outputs, load_classifier, stage_modules
from mmdsp.evaluation import (META_KEY, energy_score, feature_distance,
                              fit_stage_gaussians, fit_temperature,
                              fit_thresholds, flag_reasons, reason_kinds,
                              stage_distance)
from mmdsp.evaluation.ood import SCORES
from mmdsp.evaluation.functional import (accuracy, brier_score,
                                         expected_calibration_error,
                                         negative_log_likelihood)
from mmdsp.evaluation.report import markdown_table

DEFAULT_RATES = dict(confidence=0.01, energy=0.01, feature_distance=0.01,
                     stage_distance=0.02)


def parse_rates(items):
    rates = dict(DEFAULT_RATES)
    for item in items or []:
        name, sep, value = item.partition('=')
        if not sep or name not in DEFAULT_RATES:
            raise SystemExit(f'--flag-rate {item!r}: expected NAME=RATE with '
                             f'NAME one of {list(DEFAULT_RATES)}')
        try:
            rates[name] = float(value)
        except ValueError:
            raise SystemExit(f'--flag-rate {item!r}: {value!r} is not a '
                             'number') from None
    return rates


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fit temperature scaling and reject thresholds on the '
        'validation split; write a calibrated checkpoint')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('--out', help='calibrated checkpoint to write '
                        '(default: <checkpoint stem>_calibrated.pth)')
    parser.add_argument(
        '--flag-rate', nargs='*', metavar='NAME=RATE',
        help='share of validation images each reason flags; NAME is '
        'confidence, energy, feature_distance or stage_distance, RATE 0 '
        'disables it '
        f'(default {DEFAULT_RATES})')
    parser.add_argument('--bank-size', type=int, default=0,
                        help='training images in the feature bank, a '
                        'seeded random subset (default 0: all)')
    parser.add_argument('--feature-k', type=int, default=1,
                        help='k-th nearest training feature (default 1)')
    parser.add_argument('--stages', nargs='+', metavar='NAME',
                        help='dotted module names whose feature statistics '
                        'the stage distance reads (default: every backbone '
                        'stage but the last, which the feature distance '
                        'covers)')
    parser.add_argument('--no-test', action='store_true',
                        help='skip the report on the test split')
    parser.add_argument('--num-workers', type=int,
                        help='dataloader workers (default: the config\'s)')
    parser.add_argument('--batch-size', type=int,
                        help='images per batch (default: the config\'s)')
    parser.add_argument('--device', help='e.g. cpu or cuda:0')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def _loader(cfg, field, args, pipeline=None):
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    if field not in cfg:
        raise KeyError(f'config {cfg.filename} has no `{field}`')
    loader = copy.deepcopy(cfg[field])
    if pipeline is not None:
        # Training images as the model sees them at test time.
        loader.dataset.pipeline = copy.deepcopy(pipeline)
        loader.sampler = dict(type='DefaultSampler', shuffle=False)
    if args.num_workers is not None:
        loader.num_workers = args.num_workers
    if args.batch_size is not None:
        loader.batch_size = args.batch_size
    if loader.get('num_workers', 0) == 0:
        loader.persistent_workers = False
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Runner.build_dataloader(loader, seed=0)


def _softmax(logits, t=1.0):
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / t,
                         1).numpy()


def scores(outputs, t, bank, k, gaussians=None):
    """The reject scores of collected outputs at temperature ``t``."""
    out = dict(confidence=_softmax(outputs['logits'], t).max(1),
               energy=energy_score(outputs['logits']))
    if bank is not None and outputs['features'] is not None:
        out['feature_distance'] = feature_distance(outputs['features'], bank,
                                                   k)
    if gaussians:
        out['stage_distance'] = stage_distance(outputs['stage_stats'],
                                               gaussians)
    return out


def flag_share(s, thresholds):
    """Share of images flagged by each reason and by any reason."""
    n = len(s['confidence'])
    per = dict.fromkeys(SCORES, 0)
    any_flag = 0
    for i in range(n):
        reasons = flag_reasons(
            thresholds, s['confidence'][i], s['energy'][i],
            s['feature_distance'][i] if 'feature_distance' in s else None,
            stage_distance=s['stage_distance'][i]
            if 'stage_distance' in s else None)
        any_flag += bool(reasons)
        for kind in reason_kinds('; '.join(reasons)):
            per[kind] += 1
    return {k: v / n * 100 for k, v in per.items()}, any_flag / n * 100


def calibration_rows(name, outputs, t):
    rows = []
    for label, temp in (('before (T = 1)', 1.0), (f'after (T = {t:.3f})',
                                                   t)):
        p, y = _softmax(outputs['logits'], temp), outputs['labels']
        rows.append([
            name, label,
            len(y),
            accuracy(p, y),
            expected_calibration_error(p, y, 15) * 100,
            expected_calibration_error(p, y, 15, 'mass') * 100,
            f'{negative_log_likelihood(p, y):.4f}',
            f'{brier_score(p, y):.4f}'
        ])
    return rows


def main(argv=None):
    args = parse_args(argv)
    rates = parse_rates(args.flag_rate)
    progress = not args.no_progress
    model, cfg, classes, _ = load_classifier(args.config, args.checkpoint,
                                             args.device, calibrated=False)
    stages = []
    if rates.get('stage_distance'):
        try:
            stages = args.stages or stage_modules(model)[:-1]
        except ValueError as e:
            raise SystemExit(f'{e}; use --stages or --flag-rate '
                             'stage_distance=0') from None
    print(f'validation split ({cfg.filename}: val_dataloader)',
          file=sys.stderr)
    val = collect_outputs(model, _loader(cfg, 'val_dataloader', args),
                          progress, stages)
    t = fit_temperature(val['logits'], val['labels'])

    bank, gaussians, train = None, [], None
    if rates.get('feature_distance') and val['features'] is None:
        raise SystemExit('the model gives no pre-logits features; use '
                         '--flag-rate feature_distance=0')
    if stages and not val['stage_stats']:
        raise SystemExit(f'none of the stages {stages} gives a feature map; '
                         'use --stages or --flag-rate stage_distance=0')
    if rates.get('feature_distance') or stages:
        print('training split (feature bank and stage Gaussians, test '
              'pipeline)', file=sys.stderr)
        train = collect_outputs(
            model,
            _loader(cfg, 'train_dataloader', args,
                    pipeline=cfg.test_dataloader.dataset.pipeline),
            progress, stages)
    if stages:
        gaussians = fit_stage_gaussians(train['stage_stats'],
                                        val['stage_stats'])
    if rates.get('feature_distance'):
        bank = torch.nn.functional.normalize(
            torch.as_tensor(train['features']).float(), dim=1)
        if 0 < args.bank_size < len(bank):
            keep = np.random.default_rng(0).choice(len(bank), args.bank_size,
                                                   replace=False)
            bank = bank[np.sort(keep)]
        # float16 halves the checkpoint growth; distances change < 1e-3.
        bank = bank.half()
    val_scores = scores(val, t, bank, args.feature_k, gaussians)
    thresholds = fit_thresholds(val_scores, rates)

    test = None
    if not args.no_test:
        print('test split', file=sys.stderr)
        test = collect_outputs(model, _loader(cfg, 'test_dataloader', args),
                               progress, stages)

    out = args.out or osp.splitext(args.checkpoint)[0] + '_calibrated.pth'
    ckpt = torch.load(args.checkpoint, map_location='cpu')
    meta = ckpt.setdefault('meta', {}) or {}
    ckpt['meta'] = meta
    meta[META_KEY] = dict(
        temperature=t,
        thresholds=thresholds,
        flag_rates={k: v for k, v in rates.items() if v},
        feature_bank=bank,
        feature_k=args.feature_k,
        stage_names=val['stage_names'] if gaussians else [],
        stage_gaussians=gaussians,
        fitted_on=dict(val=int(len(val['labels'])),
                       bank=0 if bank is None else int(len(bank)),
                       stages=0 if train is None or not gaussians else
                       int(len(train['labels'])),
                       source=osp.basename(args.checkpoint)))
    meta.setdefault('dataset_meta', {}).setdefault('classes', list(classes))
    torch.save(ckpt, out)

    header = ['split', 'probabilities', 'images', 'accuracy (%)',
              'ECE (%), 15 equal-width bins', 'ECE (%), 15 equal-mass bins',
              'NLL', 'Brier']
    rows = calibration_rows('val', val, t)
    if test is not None:
        rows += calibration_rows('test', test, t)
    print(f'\nTemperature T = {t:.4f} (fitted on {len(val["labels"])} '
          'validation images)\n')
    print(markdown_table(header, rows))

    frows = []
    for split, outputs in (('val', val), ('test', test)):
        if outputs is None:
            continue
        per, total = flag_share(
            scores(outputs, t, bank, args.feature_k, gaussians), thresholds)
        frows.append([split] + [
            per[k] if key in thresholds else '—'
            for k, (key, _) in SCORES.items()
        ] + [total])
    print('\nReject thresholds: ' + ', '.join(
        f'{k} = {v:.4f}' for k, v in thresholds.items()))
    print(markdown_table(
        ['split', 'low confidence (%)', 'energy (%)',
         'feature distance (%)', 'stage distance (%)',
         'flagged, any reason (%)'], frows))
    print(f'\nwrote {out}')
    return dict(temperature=t, thresholds=thresholds, out=out)


if __name__ == '__main__':
    main()
