"""Leak-free, stratified split (or k folds) of any class-folder image set.

Usage::

    python tools/dataset_converters/split_all.py DATA_ROOT OUT_DIR \\
        --ratios 7 2 1 --seed 0
    python tools/dataset_converters/split_all.py DATA_ROOT OUT_DIR \\
        --folds 5 [--test-ratio 0.1]

``DATA_ROOT`` holds one folder per class. The class names are the folder
names, sorted (as in MMPretrain's ``CustomDataset``); the ALL data set's
folders (``Benign/ Early/ Pre/ Pro/`` or the Kaggle names, see
``docs/dataset.md``) keep their four classes in the paper's order. Writes
``OUT_DIR/train.txt``, ``val.txt``, ``test.txt`` (lines ``Folder/file.jpg
label``, relative to DATA_ROOT), ``OUT_DIR/classes.txt`` (the class of each
label, one a line) and ``OUT_DIR/duplicates.json``. With ``--folds K`` it
writes ``OUT_DIR/fold_<k>/{train,val,classes}.txt`` for k = 0..K-1 instead
(val = fold k, train = the other folds) and, with ``--test-ratio``, one fixed
``OUT_DIR/test.txt`` held out of every fold. Exact (MD5) and near duplicates
(pHash candidates verified by aligned correlation) are grouped with
union-find and every group lands in one split (one fold). See
``docs/own_data.md``.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np

from mmdsp.datasets.blood_cells_all import scan_dataset_folders
from mmdsp.datasets.class_folders import (CLASSES_FILE, check_image,
                                          classes_file_text)
from mmdsp.datasets.duplicates import find_duplicates
from mmdsp.datasets.grouped_kfold import grouped_stratified_kfold
from mmdsp.datasets.grouped_split import grouped_stratified_split
from mmdsp.utils.fileio import atomic_write_text

SPLIT_NAMES = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Duplicate-aware stratified split of a class-folder '
        'image set (train/val/test, or k folds)')
    parser.add_argument('data_root', help='folder holding the class folders')
    parser.add_argument('out_dir', help='where the split files go')
    parser.add_argument(
        '--ratios',
        type=float,
        nargs=3,
        default=(7, 2, 1),
        metavar=('TRAIN', 'VAL', 'TEST'),
        help='relative split sizes (default: 7 2 1, as in the paper); '
        'ignored with --folds')
    parser.add_argument(
        '--folds',
        type=int,
        help='write K cross-validation folds instead of one split: '
        'OUT_DIR/fold_<k>/{train,val}.txt, no group in two folds')
    parser.add_argument(
        '--test-ratio',
        type=float,
        default=0.0,
        help='with --folds: share of the images held out as one fixed '
        'OUT_DIR/test.txt, outside every fold (default: 0, none)')
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
    if args.folds is not None and args.folds < 2:
        parser.error(f'--folds must be at least 2, got {args.folds}')
    if not 0 <= args.test_ratio < 1:
        parser.error(f'--test-ratio must be in [0, 1), got {args.test_ratio}')
    if args.test_ratio and args.folds is None:
        parser.error('--test-ratio goes with --folds; without it the third '
                     'of --ratios sets the test share')
    return args


def assign_parts(labels, group_ids, classes, args):
    """Part of each image (index into the returned names), -1 if dropped."""
    labels = np.asarray(labels)
    if args.folds is None:
        return grouped_stratified_split(labels, group_ids, args.ratios,
                                        seed=args.seed,
                                        num_classes=len(classes)), SPLIT_NAMES
    k = args.folds
    names = tuple(f'fold_{f}' for f in range(k)) + ('test', )
    assign = np.zeros(len(labels), np.int64)
    held = np.zeros(len(labels), bool)
    if args.test_ratio > 0:
        held = grouped_stratified_split(
            labels, group_ids, (1 - args.test_ratio, 0, args.test_ratio),
            seed=args.seed, num_classes=len(classes)) == 2
    assign[held] = k
    assign[~held] = grouped_stratified_kfold(
        labels[~held], np.asarray(group_ids)[~held], k, seed=args.seed,
        num_classes=len(classes), class_names=classes)
    return assign, names


def write_parts(out_dir, assign, names, rel_paths, labels, classes, args):
    """Write the split (or fold) files and the class names beside them."""

    def lines(mask):
        return ''.join(f'{rel_paths[k]} {labels[k]}\n'
                       for k in np.nonzero(mask)[0])

    atomic_write_text(osp.join(out_dir, CLASSES_FILE),
                      classes_file_text(classes))
    written = [CLASSES_FILE]
    if args.folds is None:
        for s, name in enumerate(SPLIT_NAMES):
            if args.ratios[s] > 0:
                atomic_write_text(osp.join(out_dir, f'{name}.txt'),
                                  lines(assign == s))
                written.append(f'{name}.txt')
        return written
    k = args.folds
    in_folds = (assign >= 0) & (assign < k)
    for f in range(k):
        fold_dir = osp.join(out_dir, f'fold_{f}')
        os.makedirs(fold_dir, exist_ok=True)
        atomic_write_text(osp.join(fold_dir, 'train.txt'),
                          lines(in_folds & (assign != f)))
        atomic_write_text(osp.join(fold_dir, 'val.txt'), lines(assign == f))
        # ClassFolderDataset looks for the names beside the split file.
        atomic_write_text(osp.join(fold_dir, CLASSES_FILE),
                          classes_file_text(classes))
    written.append(f'fold_0..{k - 1}/{{train,val,{CLASSES_FILE}}}')
    if args.test_ratio > 0:
        atomic_write_text(osp.join(out_dir, 'test.txt'), lines(assign == k))
        written.append('test.txt')
    return written


def main(argv=None):
    args = parse_args(argv)
    try:
        classes, samples = scan_dataset_folders(args.data_root)
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
    print(f'{len(rel_paths)} images in {len(classes)} classes under '
          f'{args.data_root} ({len(unreadable)} unreadable skipped)')
    counts = np.bincount(np.asarray(labels, np.int64),
                         minlength=len(classes))
    if not counts.all():
        empty = [classes[c] for c in np.flatnonzero(counts == 0)]
        sys.exit(f'error: no readable image left in class folder(s) '
                 f'{[osp.join(args.data_root, c) for c in empty]} (see the '
                 'skipped files above)')

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
    names = SPLIT_NAMES
    if keep.any():
        try:
            assign[keep], names = assign_parts(
                np.asarray(labels)[keep], group_ids[keep], classes, args)
        except ValueError as e:
            sys.exit(f'error: {args.data_root}: {e}')

    def part_of(k):
        return 'dropped' if assign[k] < 0 else names[assign[k]]

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
        print(f'  [{part_of(g[0])}]{tag} ' +
              ' '.join(rel_paths[k] for k in g))
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
    wanted = list(args.ratios) if args.folds is None else \
        [1] * args.folds + [args.test_ratio]
    empty = [
        name for s, name in enumerate(names)
        if wanted[s] > 0 and not (assign == s).any()
    ]

    # Report per-class counts, then write.
    print('\nper-class counts:' if args.folds is None else
          '\nper-class counts (each fold is the val part of its round and '
          'in the train part of the others):')
    width = max([12] + [len(c) + 2 for c in classes])
    print(f"  {'split':<7}" + ''.join(f'{c:>{width}}' for c in classes) +
          f"{'total':>8}")
    labels_arr = np.asarray(labels)
    for s, name in enumerate(names):
        if wanted[s] <= 0 and args.folds is not None:
            continue
        idx = np.nonzero(assign == s)[0]
        n = np.bincount(labels_arr[idx], minlength=len(classes))
        print(f'  {name:<7}' + ''.join(f'{c:>{width}}' for c in n) +
              f'{len(idx):>8}')
    for g in dup['groups']:
        assert len(set(assign[g].tolist())) == 1, 'group straddles splits'
    written = [] if empty else write_parts(
        args.out_dir, assign, names, rel_paths, labels, classes, args)

    params = dict(
        ratios=list(args.ratios),
        seed=args.seed,
        phash_thr=args.phash_thr,
        ncc_thr=args.ncc_thr,
        neighbours=args.neighbours,
        min_overlap=args.min_overlap,
        drop_conflicts=args.drop_conflicts)
    if args.folds is not None:
        params.update(folds=args.folds, test_ratio=args.test_ratio)
        del params['ratios']
    report = dict(
        data_root=osp.abspath(args.data_root),
        params=params,
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
                split=part_of(g[0]))
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
    print(f'\nwrote {", ".join(written)} and duplicates.json to '
          f'{args.out_dir}')


if __name__ == '__main__':
    main()
