import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.dataset import ClassBalancedDataset, ConcatDataset, RepeatDataset
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import HOOKS, MODELS

import mmdsp  # noqa: F401
from mmdsp.engine.hooks import ClassFrequencyOmegaHook
from mmdsp.models.losses import PolyFocalLoss


class ToyDataset(BaseDataset):
    """In-memory labels only; no files."""

    def __init__(self, labels, classes=('a', 'b', 'c'), lazy_init=False):
        self._labels = list(labels)
        super().__init__(ann_file='',
                         metainfo=dict(classes=classes),
                         data_root='',
                         pipeline=[],
                         lazy_init=lazy_init)

    def load_data_list(self):
        return [
            dict(img_path=f'{i}.png', gt_label=int(y))
            for i, y in enumerate(self._labels)
        ]


class PlainDataset:
    """No get_gt_labels: the hook falls back to data_list."""

    def __init__(self, labels):
        self.data_list = [dict(gt_label=y) for y in labels]

    def __len__(self):
        return len(self.data_list)


def _model(num_heads=1, omega='auto'):
    heads = [
        MODELS.build(
            dict(type='LinearClsHead',
                 num_classes=3,
                 in_channels=4,
                 loss=dict(type='PolyFocalLoss', omega=omega)))
        for _ in range(num_heads)
    ]
    return nn.ModuleList(heads)


def _runner(dataset, model):
    return SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=dataset),
        model=model,
        logger=logging.getLogger('test_class_frequency_omega_hook'))


def _omegas(model):
    return [m.omega for m in model.modules() if isinstance(m, PolyFocalLoss)]


IMBALANCED = [0] * 2 + [1] * 6 + [2] * 12


def test_rarer_class_gets_larger_weight(caplog):
    model = _model(num_heads=2)
    hook = HOOKS.build(dict(type='ClassFrequencyOmegaHook'))
    with caplog.at_level(logging.INFO):
        hook.before_train(_runner(ToyDataset(IMBALANCED), model))
    for omega in _omegas(model):
        assert omega[0] > omega[1] > omega[2]
        assert omega.mean().item() == pytest.approx(1.0)
        # inverse frequency: 12 / 2 = 6 times the weight
        assert (omega[0] / omega[2]).item() == pytest.approx(6.0)
    assert 'a: n=2' in caplog.text and 'c: n=12' in caplog.text
    # the loss now works inside the head
    from mmpretrain.structures import DataSample
    head = model[0]
    out = head.loss(
        (torch.randn(2, 4), ),
        [DataSample().set_gt_label(0),
         DataSample().set_gt_label(2)])
    assert torch.isfinite(out['loss'])


def test_wrappers_and_model_wrapper():
    base = ToyDataset(IMBALANCED)
    other = ToyDataset([2, 2, 2, 2])
    # mmengine wrappers only take plain datasets; torch's concat takes any
    dataset = torch.utils.data.ConcatDataset(
        [RepeatDataset(base, times=3),
         ConcatDataset([other, other])])
    model = nn.DataParallel(_model())  # a registered mmengine model wrapper
    ClassFrequencyOmegaHook().before_train(_runner(dataset, model))
    omega = _omegas(model)[0]
    counts = np.array([2 * 3, 6 * 3, 12 * 3 + 4 * 2], dtype=float)
    want = (1 / counts) / (1 / counts).mean()
    np.testing.assert_allclose(omega.numpy(), want, rtol=1e-6)


def test_class_balanced_dataset_counts_resampled_data():
    base = ToyDataset(IMBALANCED)
    balanced = ClassBalancedDataset(base, oversample_thr=0.5)
    model = _model()
    ClassFrequencyOmegaHook().before_train(_runner(balanced, model))
    counts = np.bincount(
        [base.get_cat_ids(i)[0] for i in balanced.repeat_indices])
    want = (1 / counts) / (1 / counts).mean()
    np.testing.assert_allclose(_omegas(model)[0].numpy(), want, rtol=1e-6)
    # oversampling made it more balanced than the raw counts
    assert _omegas(model)[0][0] < 6 * _omegas(model)[0][2]


def test_lazy_init_subset_and_data_list_fallback():
    lazy = ToyDataset(IMBALANCED, lazy_init=True)
    model = _model()
    ClassFrequencyOmegaHook().before_train(
        _runner(torch.utils.data.Subset(lazy, [0, 2, 3, 19]), model))
    # labels 0, 1, 1, 2
    np.testing.assert_allclose(_omegas(model)[0].numpy(),
                               np.array([2, 1, 2]) / (5 / 3),
                               rtol=1e-6)
    model = _model()
    ClassFrequencyOmegaHook().before_train(
        _runner(PlainDataset([0, 0, 0, 1, 2, 2]), model))
    assert _omegas(model)[0].argmax().item() == 1


def test_explicit_omega_untouched_unless_override():
    model = _model(omega=[1.0, 1.0, 1.0])
    ClassFrequencyOmegaHook().before_train(
        _runner(ToyDataset(IMBALANCED), model))
    torch.testing.assert_close(_omegas(model)[0], torch.ones(3))
    ClassFrequencyOmegaHook(override=True).before_train(
        _runner(ToyDataset(IMBALANCED), model))
    assert _omegas(model)[0][0] > 1


def test_errors():
    model = _model()
    with pytest.raises(ValueError, match='out of range'):
        ClassFrequencyOmegaHook().before_train(
            _runner(ToyDataset([0, 5], classes=('a', 'b')), model))
    with pytest.raises(KeyError, match="'gt_label'"):
        bad = PlainDataset([0])
        bad.data_list = [dict(img_path='x.png')]
        ClassFrequencyOmegaHook().before_train(_runner(bad, model))


def test_model_without_auto_omega_warns_once(warnings_log):
    hook = ClassFrequencyOmegaHook()
    runner = _runner(ToyDataset(IMBALANCED), nn.Linear(2, 2))
    hook.before_train(runner)
    hook.before_train(runner)
    assert len(warnings_log) == 1
    assert 'ClassFrequencyOmegaHook' in warnings_log[0]
    assert "omega='auto'" in warnings_log[0]
