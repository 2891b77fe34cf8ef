"""Expand a training split offline, as the paper does (sec. 4.1: 2269 ->
12314 images by rotation, flips, Gaussian noise and background removal).

Reads TRAIN_LIST (``relative/path label_index`` per line, MMPretrain
CustomDataset's ann_file format, paths relative to DATA_ROOT), copies every
original into OUT_DIR and adds augmented copies until there are ``--target``
images, then writes ``OUT_DIR/<--out-list>`` in the same format, relative to
OUT_DIR. Use it with ``data_root=OUT_DIR, ann_file='train.txt'``.

Every original gets ``(target - n) // n`` copies and a seeded random
``(target - n) % n`` of them one more. Copy ``j`` of image ``i`` is made by
the augmentation pipeline (MMPretrain/mmdsp TRANSFORMS) after seeding numpy
with ``(seed, i, j)``: the output does not depend on ``--workers`` or on
resuming. Writes are atomic and finished files are skipped; settings are
recorded in ``expand_meta.json`` and a rerun with others is refused unless
``--overwrite``.

Example:
    python tools/dataset_converters/expand_train.py \
        ../shared/data/all_leukemia/Original data/splits/train.txt \
        data/all_leukemia_train12k --target 12314 --seed 0 --workers 2
"""
import argparse
import hashlib
import os
import os.path as osp

import cv2
import numpy as np
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmdsp  # noqa: F401  (registers LabKMeansSegment, RandomGaussianNoise)
from mmdsp.utils.fileio import (atomic_write_bytes, atomic_write_text,
                                check_run_meta, clean_temp_files,
                                imwrite_atomic, outputs_complete, run_jobs)

# Background removal first, on the untouched smear; the rotation pads with
# the same black, so rotated corners look like removed background.
DEFAULT_PIPELINE = [
    dict(type='RandomApply',
         transforms=[dict(type='LabKMeansSegment', fill_value=0)],
         prob=0.5),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='Rotate',
         magnitude_level=10,
         magnitude_range=(0, 180),
         magnitude_std='inf',
         prob=1.0,
         random_negative_prob=0.5,
         pad_val=0,
         interpolation='bilinear'),
    dict(type='RandomGaussianNoise', prob=0.5, std=(0., 10.)),
]

_PIPELINE = None  # built once per worker process


def _init(pipeline_cfg):
    global _PIPELINE
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        _PIPELINE = Compose(pipeline_cfg)


def read_split(path):
    """``[(rel_path, label)]`` from an ann_file; clear errors per line."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'TRAIN_LIST {path!r} not found')
    items = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            rel, _, label = line.rpartition(' ')
            rel = rel.strip()
            if not rel or not label.lstrip('-').isdigit():
                raise ValueError(f'{path}:{lineno}: expected '
                                 f"'relative/path label_index', got {line!r}")
            if osp.isabs(rel) or rel.startswith('..'):
                raise ValueError(f'{path}:{lineno}: path {rel!r} must be '
                                 'relative to DATA_ROOT and inside it')
            items.append((rel, int(label)))
    if not items:
        raise ValueError(f'TRAIN_LIST {path!r} has no entries')
    return items


def plan_copies(n, target, seed):
    """Number of augmented copies of each of ``n`` originals."""
    if target < n:
        raise ValueError(f'--target {target} is below the {n} originals')
    extra = target - n
    counts = np.full(n, extra // n, np.int64)
    rng = np.random.default_rng([seed, 0x5eed])
    counts[rng.permutation(n)[:extra % n]] += 1
    return counts.tolist()


def aug_name(rel, j, ext):
    stem = osp.splitext(rel)[0]
    return f'{stem}_aug{j:02d}{ext or osp.splitext(rel)[1]}'


def expand_one(task):
    """Copy one original and write its augmented copies."""
    (src, rel, index, n_copies, out_dir, seed, ext, jpeg_quality,
     overwrite) = task
    outs = [osp.join(out_dir, aug_name(rel, j, ext)) for j in range(n_copies)]
    orig_out = osp.join(out_dir, rel)
    todo = [
        j for j, p in enumerate(outs) if overwrite or not outputs_complete([p])
    ]
    if overwrite or not outputs_complete([orig_out]):
        with open(src, 'rb') as f:
            atomic_write_bytes(orig_out, f.read())
    if not todo:
        return 0
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cannot read image {src!r}')
    for j in todo:
        np.random.seed(
            np.random.SeedSequence([seed, index, j]).generate_state(1)[0])
        res = _PIPELINE(
            dict(img=img.copy(),
                 img_path=src,
                 img_shape=img.shape[:2],
                 ori_shape=img.shape[:2]))
        if res is None:
            raise RuntimeError(f'the pipeline dropped {src!r}')
        out = res['img']
        if out.dtype != np.uint8:
            out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        imwrite_atomic(outs[j], out, jpeg_quality=jpeg_quality)
    return len(todo)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Offline expansion of a training split (paper sec. 4.1)')
    parser.add_argument('data_root', help='root the TRAIN_LIST paths are in')
    parser.add_argument('train_list', help='ann_file: "rel/path label"')
    parser.add_argument('out_dir', help='new image folder')
    parser.add_argument('--target',
                        type=int,
                        default=12314,
                        help='total images after expansion (paper: 12314)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--out-list',
                        default='train.txt',
                        help='split file written inside OUT_DIR')
    parser.add_argument('--ext',
                        default=None,
                        help='extension of augmented images, e.g. .png '
                        '(default: that of the original)')
    parser.add_argument('--jpeg-quality', type=int, default=95)
    parser.add_argument('--pipeline',
                        default=None,
                        help='config file defining expand_pipeline = [...] '
                        '(default: rotation, flips, noise, background '
                        'removal; see DEFAULT_PIPELINE)')
    parser.add_argument('--overwrite', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data_root = osp.abspath(args.data_root)
    out_dir = osp.abspath(args.out_dir)
    if out_dir == data_root:
        raise ValueError('OUT_DIR must differ from DATA_ROOT')
    items = read_split(args.train_list)
    missing = [
        rel for rel, _ in items if not osp.isfile(osp.join(data_root, rel))
    ]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} images of {args.train_list} are not under '
            f'{data_root}, e.g. {missing[0]!r}')
    if args.pipeline:
        cfg = Config.fromfile(args.pipeline)
        if 'expand_pipeline' not in cfg:
            raise KeyError(f'{args.pipeline} defines no expand_pipeline')
        pipeline = cfg.expand_pipeline
    else:
        pipeline = DEFAULT_PIPELINE
    _init(pipeline)  # fail on a bad pipeline before any work

    counts = plan_copies(len(items), args.target, args.seed)
    with open(args.train_list, 'rb') as f:
        list_hash = hashlib.sha256(f.read()).hexdigest()
    os.makedirs(out_dir, exist_ok=True)
    removed = clean_temp_files(out_dir)
    if removed:
        print(f'removed {removed} temporary files of an interrupted run')
    check_run_meta(osp.join(out_dir, 'expand_meta.json'),
                   dict(tool='expand_train',
                        train_list_sha256=list_hash,
                        target=args.target,
                        seed=args.seed,
                        ext=args.ext,
                        jpeg_quality=args.jpeg_quality,
                        pipeline=pipeline),
                   overwrite=args.overwrite)

    tasks = [(osp.join(data_root, rel), rel, i, counts[i], out_dir, args.seed,
              args.ext, args.jpeg_quality, args.overwrite)
             for i, (rel, _) in enumerate(items)]
    written = run_jobs(expand_one,
                       tasks,
                       workers=args.workers,
                       initializer=_init,
                       initargs=(pipeline, ))
    lines = []
    for (rel, label), n_copies in zip(items, counts):
        lines.append(f'{rel} {label}')
        lines += [
            f'{aug_name(rel, j, args.ext)} {label}' for j in range(n_copies)
        ]
    list_path = osp.join(out_dir, args.out_list)
    atomic_write_text(list_path, '\n'.join(lines) + '\n')
    print(f'{len(items)} originals -> {len(lines)} images '
          f'({sum(written)} augmented images written now); split: '
          f'{list_path}')
    return list_path


if __name__ == '__main__':
    main()
