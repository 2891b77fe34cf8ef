"""Figure 5: what Dropout and (Dy)DropBlock remove from a feature map.

Usage::

    python tools/visualization/vis_dropblock.py IMAGE --out fig5.png \
        [--drop-prob 0.1] [--block-size 7] [--grid 28] [--depth 4]

One mask of each kind is drawn on a ``grid x grid`` map (28 x 28 is the
resolution of EfficientNetV2-S's third stage at 224 px), upsampled to the
image so the dropped units show as black: ``torch.nn.functional.dropout``
drops single units, mmdsp's ``DyDropBlock`` (section 3.3) drops
``block_size x block_size`` blocks with the seed rate of eq. 9. With
``--depth D`` a second row shows DyDropBlock at the D rates of eq. 8
(``depth_schedule(start, drop_prob, D)``), the rate growing with depth.
Dropped fractions are printed and put in the panel titles.
"""
import argparse

import numpy as np


def masks(grid, drop_prob, block_size, seed=0):
    """Keep-masks (1 = kept) of Dropout and DyDropBlock at one rate.

    Args:
        grid (int): Side of the square feature map.
        drop_prob (float): Drop probability ``p`` of both.
        block_size (int): DyDropBlock's block side ``beta``.
        seed (int): Torch seed, so the figure is reproducible.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(grid, grid)`` bool masks.
    """
    import torch
    import torch.nn.functional as F
    from mmengine.registry import MODELS

    import mmdsp  # noqa: F401  (registers DyDropBlock)
    torch.manual_seed(seed)
    ones = torch.ones(1, 1, grid, grid)
    dropout = F.dropout(ones, p=drop_prob, training=True) > 0
    block = MODELS.build(
        dict(type='DyDropBlock', drop_prob=drop_prob, block_size=block_size))
    block.train()
    dropblock = block(ones) > 0
    return dropout[0, 0].numpy(), dropblock[0, 0].numpy()


def _apply(image, keep):
    import cv2
    h, w = image.shape[:2]
    keep = cv2.resize(keep.astype(np.uint8), (w, h),
                      interpolation=cv2.INTER_NEAREST)
    return image * keep[..., None]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', help='an image, e.g. a blood-smear JPEG')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--drop-prob', type=float, default=0.1,
                        help='p of both (default 0.1, DSP\'s final rate)')
    parser.add_argument('--block-size', type=int, default=7,
                        help='DyDropBlock block side (default 7, DSP\'s)')
    parser.add_argument('--grid', type=int, default=28,
                        help='feature-map side the masks are drawn on')
    parser.add_argument('--depth', type=int, default=0,
                        help='also draw DyDropBlock at the eq. 8 rates of '
                        'this many layers')
    parser.add_argument('--start-prob', type=float, default=0.,
                        help='p_s of eq. 8 (default 0)')
    parser.add_argument('--size', type=int, default=224, help='image side')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    import cv2
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmdsp.models.layers import depth_schedule

    image = cv2.imread(args.image)
    if image is None:
        raise FileNotFoundError(f'cannot read image {args.image}')
    image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                       (args.size, args.size))
    keep_do, keep_db = masks(args.grid, args.drop_prob, args.block_size,
                             args.seed)
    panels = [('input', image, None),
              ('a) Dropout', _apply(image, keep_do), 1 - keep_do.mean()),
              ('b) DropBlock', _apply(image, keep_db), 1 - keep_db.mean())]
    rows = [panels]
    if args.depth > 0:
        rates = depth_schedule(args.start_prob, args.drop_prob, args.depth)
        row = []
        for n, rate in enumerate(rates, 1):
            _, keep = masks(args.grid, rate, args.block_size, args.seed + n)
            row.append((f'DyDropBlock n={n}, p={rate:.3f}',
                        _apply(image, keep), 1 - keep.mean()))
        rows.append(row)

    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols,
                             figsize=(3.2 * ncols, 3.4 * len(rows)),
                             squeeze=False)
    for axes_row, row in zip(axes, rows):
        for ax in axes_row:
            ax.axis('off')
        for ax, (title, img, dropped) in zip(axes_row, row):
            ax.imshow(img)
            if dropped is not None:
                title += f'\n{100 * dropped:.1f}% dropped'
                print(f'{title.splitlines()[0]}: {100 * dropped:.1f}% of '
                      f'{args.grid}x{args.grid} units dropped')
            ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=150)
    plt.close(fig)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
