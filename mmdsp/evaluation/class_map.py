"""Testing a model on a data set whose classes are not its own.

A 4-subtype ALL model meets a hospital's benign / malignant smears: its
classes and the data's differ, so its prediction is read through a declared
map from each model class to one data class (``Benign -> benign``, the three
B-ALL subtypes -> ``malignant``). The probability of a data class is the sum
over the model classes mapped to it, so the predicted data class is the one
whose model classes hold the most mass (not the data class of the top model
class: with p = (0.4, 0.3, 0.3, 0) over Benign and two subtypes the image is
called malignant, 0.6 against 0.4).
"""
import json
import os.path as osp
from typing import Dict, Sequence, Union

import numpy as np

from .bootstrap import bootstrap_ci
from .functional import (accuracy, group_vs_rest, one_vs_rest_auroc,
                         precision_recall_f1)

__all__ = [
    'load_class_map', 'class_map_indices', 'map_probs', 'mapped_metrics'
]


def load_class_map(spec: Union[str, Sequence[str], Dict[str, str]]
                   ) -> Dict[str, str]:
    """A ``{model class: data class}`` dict from a file, pairs or a dict.

    Args:
        spec (str | Sequence[str] | dict): A JSON file holding that object;
            or ``'MODEL=DATA'`` strings (``'Early Pre-B=malignant'``); or
            the dict itself.

    Raises:
        FileNotFoundError: A ``.json`` file that does not exist.
        ValueError: A pair without ``=``, or one model class mapped twice.
    """
    if isinstance(spec, dict):
        return {str(k): str(v) for k, v in spec.items()}
    items = [spec] if isinstance(spec, str) else list(spec)
    if len(items) == 1 and items[0].endswith('.json'):
        if not osp.isfile(items[0]):
            raise FileNotFoundError(f'class map {items[0]!r} does not exist')
        with open(items[0], encoding='utf-8') as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f'class map {items[0]!r} must hold one JSON '
                             'object {"model class": "data class", ...}')
        return {str(k): str(v) for k, v in data.items()}
    out = {}
    for item in items:
        if '=' not in item:
            raise ValueError(f'class map entry {item!r} is not '
                             "'MODEL CLASS=DATA CLASS'")
        src, dst = (s.strip() for s in item.split('=', 1))
        if src in out:
            raise ValueError(f'class map maps model class {src!r} twice')
        out[src] = dst
    return out


def class_map_indices(class_map: Dict[str, str],
                      model_classes: Sequence[str],
                      data_classes: Sequence[str]) -> np.ndarray:
    """The data class index of every model class.

    Args:
        class_map (dict): ``{model class: data class}`` by name.
        model_classes (Sequence[str]): The model's classes, in output order.
        data_classes (Sequence[str]): The data set's classes.

    Returns:
        np.ndarray: ``(len(model_classes), )`` int64.

    Raises:
        ValueError: Naming the class: the map names a model class the model
            lacks or a data class the data lack, misses a model class (its
            probability would go nowhere), or leaves a data class without a
            model class (its images could never be called right).
    """
    model_classes = [str(c) for c in model_classes]
    data_classes = [str(c) for c in data_classes]
    unknown = [k for k in class_map if k not in model_classes]
    if unknown:
        raise ValueError(f'class map names {unknown}, not classes of the '
                         f'model {model_classes}')
    missing = [c for c in model_classes if c not in class_map]
    if missing:
        raise ValueError(f'class map misses the model class(es) {missing}: '
                         'map every model class to one data class of '
                         f'{data_classes}')
    wrong = sorted({v for v in class_map.values() if v not in data_classes})
    if wrong:
        raise ValueError(f'class map maps to {wrong}, not classes of the '
                         f'data {data_classes}')
    index = np.array([data_classes.index(class_map[c])
                      for c in model_classes], np.int64)
    unreached = [c for i, c in enumerate(data_classes) if i not in index]
    if unreached:
        raise ValueError(f'no model class maps to the data class(es) '
                         f'{unreached}: the model could never call them')
    return index


def map_probs(probs, index: np.ndarray, num_data_classes: int) -> np.ndarray:
    """Sum model-class probabilities into data classes.

    Args:
        probs (array-like): (N, K) model class probabilities.
        index (np.ndarray): (K, ) data class of each model class.
        num_data_classes (int): D.

    Returns:
        np.ndarray: (N, D) float64.
    """
    probs = np.asarray(probs, np.float64)
    onehot = np.zeros((len(index), num_data_classes))
    onehot[np.arange(len(index)), index] = 1
    return probs @ onehot


def mapped_metrics(probs, labels, classes: Sequence[str],
                   positive: Sequence[int] = (), n_resamples: int = 1000,
                   seed: int = 0) -> dict:
    """The metrics of mapped probabilities on their data classes, in %.

    Args:
        probs (array-like): (N, D) probabilities over the data classes.
        labels (array-like): (N, ) data class indices.
        classes (Sequence[str]): The D data class names.
        positive (Sequence[int]): Data classes that form the positive group
            of the clinical view; empty skips it. Defaults to ().
        n_resamples (int): Bootstrap resamples of the accuracy interval.
        seed (int): Bootstrap seed.

    Returns:
        dict: ``n``, ``accuracy`` (+ ``accuracy_low`` / ``_high``, 95 %),
        ``precision`` / ``recall`` / ``f1`` (macro), ``recall/<class>``,
        ``auroc/<class>``, ``confusion`` (rows: true, columns: predicted),
        and with ``positive`` the ``clinical/...`` keys of
        :func:`~.functional.group_vs_rest`.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    d = len(classes)
    ci = bootstrap_ci(accuracy, probs, labels, n_resamples=n_resamples,
                      seed=seed)
    p, r, f1 = precision_recall_f1(probs, labels)
    pred = probs.argmax(1)
    confusion = np.zeros((d, d), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    out = dict(n=int(len(labels)), accuracy=ci.estimate,
               accuracy_low=ci.low, accuracy_high=ci.high, precision=p,
               recall=r, f1=f1, confusion=confusion.tolist())
    per_auroc = one_vs_rest_auroc(probs, labels) * 100
    for c, name in enumerate(classes):
        n = confusion[c].sum()
        out[f'recall/{name}'] = float(confusion[c, c] / n * 100) if n \
            else float('nan')
        out[f'auroc/{name}'] = float(per_auroc[c])
    if len(positive):
        for k, v in group_vs_rest(probs, labels, positive).items():
            out[f'clinical/{k}'] = v
    return out
