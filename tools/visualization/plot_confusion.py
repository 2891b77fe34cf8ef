"""Figure 9: the test-set confusion matrix, counts and recall, from tools/test.py.

Usage::

    python tools/visualization/plot_confusion.py work_dirs/effdsp_all \
        --out fig9.png

``tools/test.py`` logs the metrics of every test evaluator in
``<work_dir>/<timestamp>/<timestamp>.json``; the ``ConfusionMatrix`` of
``configs/_base_/datasets/all_leukemia.py`` appears there as
``confusion_matrix/result`` (rows: true class, columns: predicted), so no
second inference pass is needed. The newest test run of WORK_DIR is used, or
the json file given instead. For a config without that evaluator, MMPretrain's
``tools/analysis_tools/confusion_matrix.py CONFIG CHECKPOINT --show-path
fig9.png`` (our wrapper of the same name) runs the model again.

The paper's figure 9 puts the true class on the x axis and the prediction on
the y axis (``--orientation paper``, the default); ``--orientation
mmpretrain`` keeps MMPretrain's (true class on y).
"""
import argparse
import os.path as osp

from mmdsp.utils import work_dir_logs

KEY = 'confusion_matrix/result'



def load_confusion(path):
    """The confusion matrix (true x predicted) of a test run.

    Args:
        path (str): A work_dir (its newest test run is used) or a test
            ``<timestamp>.json``.

    Returns:
        tuple[list[list[int]], str]: The matrix and the file it came from.
    """
    if osp.isfile(path):
        records = work_dir_logs.read_json_lines(path)
        if not records:
            raise ValueError(f'{path} is empty')
        record, source = records[-1], path
    else:
        results = work_dir_logs.read_test_results(path)
        if not results:
            raise FileNotFoundError(
                f'{path}: no test run (<timestamp>/<timestamp>.json); run '
                'tools/test.py CONFIG CHECKPOINT --work-dir ' + path)
        record = results[-1]['metrics']
        source = osp.join(path, results[-1]['timestamp'],
                          results[-1]['timestamp'] + '.json')
    if KEY not in record:
        raise KeyError(
            f'{source} has no {KEY!r}: the test_evaluator needs '
            "dict(type='ConfusionMatrix'), or use "
            'tools/analysis_tools/confusion_matrix.py CONFIG CHECKPOINT')
    matrix = record[KEY]
    if not matrix or any(len(row) != len(matrix) for row in matrix):
        raise ValueError(f'{source}: {KEY} is not a square matrix')
    return matrix, source


def class_names(work_dir, num_classes):
    """Class names from the saved config's test dataset, else indices."""
    from mmengine.config import Config
    try:
        cfg_path, _ = work_dir_logs.run_config(work_dir)
    except (FileNotFoundError, ValueError):
        return [str(i) for i in range(num_classes)]
    ds = Config.fromfile(cfg_path).get('test_dataloader',
                                       {}).get('dataset', {})
    classes = (ds.get('metainfo') or {}).get('classes') or ds.get('classes')
    if not classes and ds.get('type'):
        import mmdsp  # noqa: F401  (registers BloodCellsALL)
        from mmpretrain.registry import DATASETS
        ds_cls = DATASETS.get(ds['type'])
        classes = getattr(ds_cls, 'METAINFO', {}).get('classes')
    if not classes or len(classes) != num_classes:
        return [str(i) for i in range(num_classes)]
    return list(classes)


def plot_confusion(matrix, classes, out, orientation='paper', title=None):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    from mmpretrain.evaluation import ConfusionMatrix

    cm = torch.as_tensor(matrix)
    if orientation == 'paper':
        cm = cm.T
    fig = ConfusionMatrix.plot(
        cm, include_values=True, cmap='Blues', classes=classes, show=False)
    ax = fig.axes[0]
    # Each true class's label carries its recall (the diagonal over its row
    # of the true-by-predicted matrix), the figure's per-class summary.
    counts = torch.as_tensor(matrix, dtype=torch.float64)
    recall = counts.diag() / counts.sum(1).clamp(min=1)
    labelled = [f'{c}\nrecall {100 * r:.0f}%' for c, r in zip(classes, recall)]
    if orientation == 'paper':
        ax.set(xlabel='True label', ylabel='Predicted label')
        ax.set_xticklabels(labelled)
    else:
        ax.set_yticklabels(labelled)
    ax.set_title(title or 'Test set confusion matrix', pad=30)
    fig.savefig(out, dpi=150, bbox_inches='tight')
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('path', help='test run work_dir, or its json')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--classes', nargs='+',
                        help='class names (default: the config\'s dataset)')
    parser.add_argument('--orientation', choices=['paper', 'mmpretrain'],
                        default='paper',
                        help='paper: true class on x (figure 9)')
    parser.add_argument('--title', help='figure title')
    args = parser.parse_args(argv)
    matrix, source = load_confusion(args.path)
    if args.classes:
        if len(args.classes) != len(matrix):
            raise ValueError(f'--classes gives {len(args.classes)} names for '
                             f'a {len(matrix)}-class matrix ({source})')
        classes = args.classes
    else:
        work_dir = args.path if osp.isdir(args.path) else osp.dirname(
            osp.dirname(osp.abspath(args.path)))
        classes = class_names(work_dir, len(matrix))
    plot_confusion(matrix, classes, args.out, args.orientation, args.title)
    print(f'wrote {args.out} from {source}')
    return matrix, classes


if __name__ == '__main__':
    main()
