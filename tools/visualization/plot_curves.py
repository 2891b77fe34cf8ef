"""Figure 8: training accuracy and loss per epoch, from a run's json log.

Usage::

    python tools/visualization/plot_curves.py work_dirs/effdsp_all \
        --out fig8.png [--out-csv fig8.csv]

Reads ``<work_dir>/<timestamp>/vis_data/<timestamp>.json`` (all of them, so
a resumed run is one curve). mmengine logs the training loss every
``default_hooks.logger.interval`` iterations, averaged over that window; we
average the logged values of each epoch. The training accuracy is the
``accuracy_top-1`` that MMPretrain's heads log when ``cal_acc=True`` (set in
every mmdsp config; add ``--cfg-options model.head.cal_acc=True`` to others).
The validation accuracy of each epoch is drawn as well when ``--with-val``.
"""
import argparse
import csv
import math
from collections import OrderedDict

from mmdsp.utils import work_dir_logs



def epoch_curves(work_dir):
    """Per-epoch mean training loss / accuracy and validation accuracy.

    Args:
        work_dir (str): A training run's work_dir.

    Returns:
        OrderedDict: ``{epoch: dict(loss, train_acc, val_acc)}``; a value
        the log lacks is NaN.
    """
    train, val = work_dir_logs.read_train_log(work_dir)
    if not train:
        raise FileNotFoundError(
            f'{work_dir}: no training iterations in '
            '<timestamp>/vis_data/<timestamp>.json; is it a training run?')
    per_epoch = OrderedDict()
    for rec in train:
        per_epoch.setdefault(rec['epoch'], []).append(rec)
    val_acc = {r['step']: r['accuracy/top1'] for r in val
               if 'accuracy/top1' in r}

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else math.nan

    return OrderedDict(
        (epoch,
         dict(loss=mean([r['loss'] for r in recs]),
              train_acc=mean([r.get('accuracy_top-1') for r in recs]),
              val_acc=val_acc.get(epoch, math.nan)))
        for epoch, recs in per_epoch.items())


def plot_curves(curves, out, title=None, with_val=False):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = list(curves)
    train_acc = [curves[e]['train_acc'] for e in epochs]
    if all(math.isnan(a) for a in train_acc) and not with_val:
        raise ValueError(
            'the log has no training accuracy (accuracy_top-1): train with '
            'model.head.cal_acc=True, or plot the validation accuracy with '
            '--with-val')
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    if not all(math.isnan(a) for a in train_acc):
        ax_acc.plot(epochs, train_acc, label='train accuracy')
    if with_val:
        ax_acc.plot(epochs, [curves[e]['val_acc'] for e in epochs], '--',
                    label='val accuracy')
    ax_acc.set(xlabel='epoch', ylabel='accuracy (%)', title='Accuracy')
    ax_acc.legend()
    ax_loss.plot(epochs, [curves[e]['loss'] for e in epochs], color='C3',
                 label='train loss')
    ax_loss.set(xlabel='epoch', ylabel='loss', title='Loss')
    ax_loss.legend()
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='training run work_dir')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--out-csv', help='also write the per-epoch values')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--with-val', action='store_true',
                        help='draw the validation accuracy too')
    args = parser.parse_args(argv)
    curves = epoch_curves(args.work_dir)
    plot_curves(curves, args.out, args.title, args.with_val)
    if args.out_csv:
        with open(args.out_csv, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['epoch', 'loss', 'train_acc', 'val_acc'])
            for epoch, c in curves.items():
                writer.writerow([epoch] + [
                    '' if math.isnan(c[k]) else c[k]
                    for k in ('loss', 'train_acc', 'val_acc')
                ])
    print(f'wrote {args.out} ({len(curves)} epochs)')
    return curves


if __name__ == '__main__':
    main()
