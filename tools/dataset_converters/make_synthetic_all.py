"""Write the synthetic 4-class blood-smear demo dataset.

Usage::

    python tools/dataset_converters/make_synthetic_all.py data/synthetic_all \\
        --num-per-class 60 --size 224 --seed 0

Produces ``Benign/ Early/ Pre/ Pro/`` JPEG folders and ``train.txt``,
``val.txt``, ``test.txt`` (7:2:1, stratified) readable by ``BloodCellsALL``.
"""
import argparse
import time

from mmdsp.datasets.synthetic import make_synthetic_all


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw a synthetic ALL blood-smear dataset')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--num-per-class',
        type=int,
        nargs='+',
        default=[60],
        help='images per class: one number, or four (Benign Early Pre Pro)')
    parser.add_argument('--size', type=int, default=224, help='image side')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--spread', type=float, default=1.0,
        help='width of the per-class drawing ranges, in (0, 1]; smaller '
        'values make neighbouring classes overlap less')
    parser.add_argument(
        '--ratios', type=float, nargs=3, default=(7, 2, 1),
        metavar=('TRAIN', 'VAL', 'TEST'))
    args = parser.parse_args(argv)
    if len(args.num_per_class) not in (1, 4):
        parser.error('--num-per-class takes one or four numbers')
    return args


def main(argv=None):
    args = parse_args(argv)
    num = args.num_per_class
    start = time.perf_counter()
    counts = make_synthetic_all(
        args.out_dir,
        num_per_class=num[0] if len(num) == 1 else num,
        size=args.size,
        seed=args.seed,
        ratios=args.ratios,
        spread=args.spread)
    print(f"wrote {counts['total']} images to {args.out_dir} in "
          f'{time.perf_counter() - start:.1f} s: train {counts["train"]}, '
          f'val {counts["val"]}, test {counts["test"]}')


if __name__ == '__main__':
    main()
