"""Reliability diagram of a test run, from its saved predictions.

    python tools/test.py CONFIG CKPT --out preds.pkl
    python tools/visualization/plot_reliability.py preds.pkl \
        --out reliability.png [--n-bins 15] [--binning width|mass]

Bars: the accuracy of the images in each confidence bin; the diagonal is
perfect calibration; the gap between them, weighted by the bin's share of
images, sums to the ECE printed in the title. A histogram of confidences
sits below. Prints the bins as a table.
"""
import argparse

import numpy as np

from mmdsp.evaluation.dumps import load_predictions
from mmdsp.evaluation.functional import (accuracy,
                                         expected_calibration_error,
                                         reliability_bins)
from mmdsp.evaluation.report import markdown_table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Reliability diagram (PNG) of tools/test.py --out preds')
    parser.add_argument('preds', help='pickle written by tools/test.py --out')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--n-bins', type=int, default=15)
    parser.add_argument('--binning', choices=['width', 'mass'],
                        default='width')
    parser.add_argument('--title', default='Reliability diagram')
    return parser.parse_args(argv)


def plot(bins, ece, acc, n, out, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(4.8, 5.6), sharex=True,
        gridspec_kw=dict(height_ratios=[3, 1]))
    edges = bins['edges']
    lo = edges[:-1]
    width = np.diff(edges)
    filled = bins['count'] > 0
    ax.bar(lo[filled], bins['accuracy'][filled], width[filled], align='edge',
           color='#4878d0', edgecolor='black', label='accuracy')
    ax.bar(lo[filled], (bins['confidence'] - bins['accuracy'])[filled],
           width[filled], bottom=bins['accuracy'][filled], align='edge',
           fill=False, edgecolor='#d65f5f', hatch='//',
           label='gap to mean confidence')
    ax.plot([0, 1], [0, 1], 'k--', lw=1, label='perfect calibration')
    ax.set(ylim=(0, 1), ylabel='accuracy',
           title=f'{title}\nECE {ece * 100:.2f} %, accuracy {acc:.2f} %, '
           f'n = {n}')
    ax.legend(loc='upper left', fontsize=8)
    hist.bar(lo, bins['count'] / max(n, 1), width, align='edge',
             color='grey', edgecolor='black')
    hist.set(xlim=(0, 1), xlabel='confidence (largest probability)',
             ylabel='share')
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    preds = load_predictions(args.preds)
    probs, labels = preds['probs'], preds['labels']
    bins = reliability_bins(probs, labels, args.n_bins, args.binning)
    ece = expected_calibration_error(probs, labels, args.n_bins,
                                     args.binning)
    acc = accuracy(probs, labels)
    plot(bins, ece, acc, len(labels), args.out, args.title)
    rows = [[f'{bins["edges"][i]:.3f}-{bins["edges"][i + 1]:.3f}',
             int(bins['count'][i]), bins['confidence'][i] * 100,
             bins['accuracy'][i] * 100] for i in range(args.n_bins)]
    print(markdown_table(['confidence bin', 'images', 'mean confidence (%)',
                          'accuracy (%)'], rows))
    print(f'\nECE ({args.n_bins} equal-{args.binning} bins): '
          f'{ece * 100:.2f} %; accuracy {acc:.2f} % of {len(labels)} images'
          f'\nwrote {args.out}')
    return dict(bins=bins, ece=ece)


if __name__ == '__main__':
    main()
