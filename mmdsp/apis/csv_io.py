"""The CSV file of ``tools/predict.py``."""
import csv
import os
import os.path as osp
from typing import Iterable, Sequence

FLAG_COLUMNS = ('flag_reason', 'confidence', 'energy', 'feature_distance',
                'stage_distance')


def _num(value, digits=6):
    return '' if value is None else f'{float(value):.{digits}f}'


def write_csv(rows: Iterable[dict],
              classes: Sequence[str],
              out: str,
              with_cam: bool = False,
              with_flags: bool = False) -> None:
    """Write :func:`predict` rows: path, pred_class, one probability column
    per class name, seg_fallback (``True``/``False``, empty when the pipeline
    has no segmentation step), with ``with_flags`` the reject columns
    (``flag_reason``: empty when the image may be judged, else the reasons
    joined by ``'; '``; ``confidence``, ``energy``, ``feature_distance``,
    ``stage_distance``: the scores, empty when not computed), error (empty
    on success) and, with ``with_cam``, cam_path."""
    header = ['path', 'pred_class', *classes, 'seg_fallback']
    if with_flags:
        header += list(FLAG_COLUMNS)
    header.append('error')
    if with_cam:
        header.append('cam_path')
    if len(set(header)) != len(header):
        raise ValueError(f'Class names {list(classes)} clash with the CSV '
                         f'columns {header}.')
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            probs = [''] * len(classes) if r['scores'] is None else \
                [f'{float(p):.6f}' for p in r['scores']]
            seg = '' if r['seg_fallback'] is None else str(r['seg_fallback'])
            line = [r['path'], r['pred_class'], *probs, seg]
            if with_flags:
                line += [
                    r['flag_reason'],
                    _num(r['confidence']),
                    _num(r['energy'], 4),
                    _num(r['feature_distance']),
                    _num(r.get('stage_distance'), 4)
                ]
            line.append(r['error'])
            if with_cam:
                line.append(r['cam_path'])
            writer.writerow(line)
