"""Reading the predictions ``tools/test.py ... --out preds.pkl`` dumps."""
import os.path as osp

import numpy as np

__all__ = ['load_predictions', 'align_predictions']


def load_predictions(path):
    """Class probabilities and labels of a test run's prediction dump.

    ``tools/test.py CONFIG CKPT --out preds.pkl`` writes, through mmengine's
    ``DumpResults``, one dict per test image (MMPretrain's ``DataSample``
    as a dict): ``pred_score``, ``gt_label``, ``img_path``, ...

    Args:
        path (str): The ``.pkl`` file.

    Returns:
        dict: ``probs`` (N, K) float64, ``labels`` (N, ) int64 and
        ``img_paths`` (list[str], empty strings when not recorded).
    """
    import mmengine
    if not osp.isfile(path):
        raise FileNotFoundError(f'prediction dump {path} not found (write '
                                'one with tools/test.py CONFIG CKPT --out '
                                f'{osp.basename(path) or "preds.pkl"})')
    records = mmengine.load(path)
    if not isinstance(records, list) or not records:
        raise ValueError(f'{path}: expected the non-empty list of data '
                         'samples that tools/test.py --out writes')
    probs, labels, paths = [], [], []
    for i, rec in enumerate(records):
        for key in ('pred_score', 'gt_label'):
            if not isinstance(rec, dict) or key not in rec:
                raise KeyError(f'{path}: sample {i} has no {key!r} (was it '
                               'written by tools/test.py --out?)')
        probs.append(np.asarray(rec['pred_score'], dtype=np.float64))
        labels.append(int(np.asarray(rec['gt_label']).reshape(-1)[0]))
        paths.append(str(rec.get('img_path', '')))
    return dict(probs=np.stack(probs), labels=np.array(labels),
                img_paths=paths)


def align_predictions(a, b, names=('A', 'B')):
    """Put two dumps of the same test images in the same order.

    Args:
        a, b (dict): Results of :func:`load_predictions`.
        names (tuple[str, str]): The two models, for error messages.

    Returns:
        tuple[dict, dict]: ``a`` and ``b`` sorted by image path.
    """
    pa, pb = a['img_paths'], b['img_paths']
    if set(pa) != set(pb) or len(set(pa)) != len(pa):
        only = sorted(set(pa) ^ set(pb))[:3]
        raise ValueError(f'{names[0]} and {names[1]} were not tested on the '
                         f'same images (e.g. {only}); a paired comparison '
                         'needs the same test split')
    out = []
    for d in (a, b):
        order = np.argsort(d['img_paths'])
        out.append(dict(probs=d['probs'][order], labels=d['labels'][order],
                        img_paths=[d['img_paths'][i] for i in order]))
    if not np.array_equal(out[0]['labels'], out[1]['labels']):
        raise ValueError(f'{names[0]} and {names[1]} disagree on the labels '
                         'of the same images')
    return out[0], out[1]
