"""Leak-free, stratified train/val/test split of the ALL blood-smear images.

Usage::

    python tools/dataset_converters/split_all.py DATA_ROOT OUT_DIR \\
        --ratios 7 2 1 --seed 0

``DATA_ROOT`` holds one folder per class (``Benign/ Early/ Pre/ Pro/`` or the
Kaggle names, see ``docs/dataset.md``). Writes ``OUT_DIR/train.txt``,
``val.txt``, ``test.txt`` (lines ``Folder/file.jpg label``, relative to
DATA_ROOT) and ``OUT_DIR/duplicates.json``. Exact (MD5) and near duplicates
(pHash candidates verified by aligned correlation) are grouped with
union-find and every group lands in one split.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np

from mmdsp.datasets.blood_cells_all import (CLASSES, check_image,
                                            scan_class_folders)
from mmdsp.datasets.duplicates import find_duplicates
from mmdsp.datasets.grouped_split import grouped_stratified_split
from mmdsp.utils.fileio import atomic_write_text

SPLIT_NAMES = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Duplicate-aware stratified split of ALL images')
    parser.add_argument('data_root', help='folder holding the class folders')
    parser.add_argument('out_dir', help='where the split files go')
    parser.add_argument(
        '--ratios',
        type=float,
        nargs=3,
        default=(7, 2, 1),
        metavar=('TRAIN', 'VAL', 'TEST'),
        help='relative split sizes (default: 7 2 1, as in the paper)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--phash-thr',
        type=int,
        default=18,
        help='largest pHash Hamming distance (of 64) that makes a pair a '
        'near-duplicate candidate (default: 18)')
    parser.add_argument(
        '--ncc-thr',
        type=float,
        default=0.6,
        help='smallest aligned normalised cross-correlation that confirms '
        'a candidate (default: 0.6)')
    parser.add_argument(
        '--neighbours',
        type=int,
        default=5,
        help='also compare each image with the next N of its class in '
        'file-name order, to find panned overlapping fields; 0 disables '
        '(default: 5)')
    parser.add_argument(
        '--min-overlap',
        type=float,
        default=0.25,
        help='smallest overlapping fraction of the frame after alignment '
        '(default: 0.25)')
    parser.add_argument(
        '--drop-conflicts',
        action='store_true',
        help='leave groups whose images carry different labels out of all '
        'splits (default: keep them, together, with their folder labels)')
    args = parser.parse_args(argv)
    if any(r < 0 for r in args.ratios) or args.ratios[0] <= 0:
        parser.error(f'--ratios must be non-negative with TRAIN > 0, got '
                     f'{args.ratios}')
    if not 0 <= args.phash_thr <= 64:
        parser.error(f'--phash-thr must be in 0..64, got {args.phash_thr}')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        samples = scan_class_folders(args.data_root)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(args.out_dir, exist_ok=True)

    rel_paths, labels, unreadable = [], [], []
    for rel, label in samples:
        reason = check_image(osp.join(args.data_root, rel), decode=True)
        if reason is None:
            rel_paths.append(rel)
            labels.append(label)
        else:
            unreadable.append(dict(path=rel, reason=reason))
            print(f'skipping unreadable {rel}: {reason}')
    print(f'{len(rel_paths)} images in {len(CLASSES)} classes under '
          f'{args.data_root} ({len(unreadable)} unreadable skipped)')

    dup = find_duplicates([osp.join(args.data_root, p) for p in rel_paths],
                          labels,
                          phash_thr=args.phash_thr,
                          ncc_thr=args.ncc_thr,
                          neighbours=args.neighbours,
                          min_overlap=args.min_overlap)
    group_ids = np.arange(len(rel_paths))
    for g in dup['groups']:
        group_ids[g] = g[0]
    dropped = set()
    if args.drop_conflicts:
        dropped = {k for g in dup['conflicts'] for k in g}
    keep = np.array([k not in dropped for k in range(len(rel_paths))],
                    dtype=bool)
    assign = np.full(len(rel_paths), -1)
    if keep.any():
        assign[keep] = grouped_stratified_split(
            np.asarray(labels)[keep],
            group_ids[keep],
            args.ratios,
            seed=args.seed,
            num_classes=len(CLASSES))

    # Report duplicates.
    kinds = [p['kind'] for p in dup['near_pairs']]
    print(f"\nexact duplicates: {len(dup['exact_pairs'])} byte-identical "
          'pairs')
    for i, j in dup['exact_pairs']:
        print(f'  {rel_paths[i]} == {rel_paths[j]}')
    print(f"near duplicates: {len(dup['near_pairs'])} verified pairs of "
          f"{dup['candidates']} candidates ({kinds.count('near')} by pHash "
          f"<= {args.phash_thr}, {kinds.count('overlap')} overlapping fields "
          'found by the neighbour search)')
    sizes = np.bincount([len(g) for g in dup['groups']])
    print(f"duplicate groups: {len(dup['groups'])} holding "
          f"{sum(len(g) for g in dup['groups'])} images; sizes " + ', '.join(
              f'{n}x{s}' for s, n in enumerate(sizes) if n))
    for g in dup['groups']:
        tag = ' LABEL CONFLICT' if g in dup['conflicts'] else ''
        split = ('dropped' if assign[g[0]] < 0 else
                 SPLIT_NAMES[assign[g[0]]])
        print(f'  [{split}]{tag} ' + ' '.join(rel_paths[k] for k in g))
    if dup['conflicts']:
        print(f"label conflicts: {len(dup['conflicts'])} group(s) span two "
              'classes; ' + ('dropped from all splits' if args.
                            drop_conflicts else 'kept together in one split '
                            'with their folder labels (--drop-conflicts '
                            'leaves them out)'))
    else:
        print('label conflicts: none')

    # A duplicate group larger than a split's share leaves that split empty
    # (on images that all look alike); say so instead of writing it.
    empty = [
        name for s, name in enumerate(SPLIT_NAMES)
        if args.ratios[s] > 0 and not (assign == s).any()
    ]

    # Write split files and report counts.
    print('\nper-class counts:')
    header = f"  {'split':<6}" + ''.join(f'{c:>12}' for c in CLASSES)
    print(header + f"{'total':>8}")
    labels_arr = np.asarray(labels)
    for s, name in enumerate(SPLIT_NAMES):
        idx = np.nonzero(assign == s)[0]
        counts = np.bincount(labels_arr[idx], minlength=len(CLASSES))
        print(f'  {name:<6}' + ''.join(f'{n:>12}' for n in counts) +
              f'{len(idx):>8}')
        if args.ratios[s] > 0 and not empty:
            atomic_write_text(
                osp.join(args.out_dir, f'{name}.txt'),
                ''.join(f'{rel_paths[k]} {labels[k]}\n' for k in idx))
    for g in dup['groups']:
        assert len(set(assign[g].tolist())) == 1, 'group straddles splits'

    report = dict(
        data_root=osp.abspath(args.data_root),
        params=dict(
            ratios=list(args.ratios),
            seed=args.seed,
            phash_thr=args.phash_thr,
            ncc_thr=args.ncc_thr,
            neighbours=args.neighbours,
            min_overlap=args.min_overlap,
            drop_conflicts=args.drop_conflicts),
        unreadable=unreadable,
        exact_pairs=[[rel_paths[i], rel_paths[j]]
                     for i, j in dup['exact_pairs']],
        near_pairs=[
            dict(p, i=rel_paths[p['i']], j=rel_paths[p['j']])
            for p in dup['near_pairs']
        ],
        groups=[
            dict(
                files=[rel_paths[k] for k in g],
                labels=[labels[k] for k in g],
                label_conflict=g in dup['conflicts'],
                split=('dropped'
                       if assign[g[0]] < 0 else SPLIT_NAMES[assign[g[0]]]))
            for g in dup['groups']
        ])
    atomic_write_text(
        osp.join(args.out_dir, 'duplicates.json'),
        json.dumps(report, indent=1) + '\n')
    if empty:
        largest = max((len(g) for g in dup['groups']), default=1)
        sys.exit(
            f'error: no image left for the {" and ".join(empty)} split(s) '
            f'of {args.data_root}: the largest duplicate group holds '
            f'{largest} of {len(rel_paths)} images and groups are never '
            f'split. No split file was written; the groups are in '
            f'{osp.join(args.out_dir, "duplicates.json")}. If they are '
            'not the same fields, raise --ncc-thr or --min-overlap, or '
            'use --neighbours 0.')
    written = [f'{n}.txt' for n, r in zip(SPLIT_NAMES, args.ratios) if r > 0]
    print(f'\nwrote {", ".join(written)} and duplicates.json to '
          f'{args.out_dir}')


if __name__ == '__main__':
    main()
