"""BenignVsMalignant as a metric of named groups of classes."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

import mmdsp  # noqa: F401
from mmdsp.evaluation.functional import benign_vs_malignant, group_vs_rest

ALL = ('Benign', 'Early Pre-B', 'Pre-B', 'Pro-B')


def _samples(n=90, k=4, seed=0):
    rng = np.random.default_rng(seed)
    probs = torch.softmax(torch.as_tensor(rng.normal(0, 2, (n, k))), 1)
    labels = rng.integers(0, k, n)
    return [DataSample().set_pred_score(p.float()).set_gt_label(int(y))
            for p, y in zip(probs, labels)], probs.float().numpy(), labels


def _evaluate(metric, samples, classes):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        evaluator = Evaluator([metric])
    evaluator.dataset_meta = dict(classes=classes)
    evaluator.process(samples)
    return evaluator.evaluate(len(samples))


def test_all_groups_keep_the_old_numbers():
    samples, probs, labels = _samples()
    old = {f'clinical/{k}': v
           for k, v in benign_vs_malignant(probs, labels).items()}
    explicit = dict(type='BenignVsMalignant', groups=dict(
        benign=['Benign'], malignant=['Early Pre-B', 'Pre-B', 'Pro-B']))
    assert _evaluate(explicit, samples, ALL) == pytest.approx(old)
    # Without groups, on the ALL classes (any alias): the same view.
    assert _evaluate(dict(type='BenignVsMalignant'), samples,
                     ('benign', 'Early', 'Pre', 'Pro')) == pytest.approx(old)


def test_groups_of_other_classes():
    classes = ('healthy', 'blast', 'lymphoma')
    samples, probs, labels = _samples(k=3, seed=1)
    metric = dict(type='BenignVsMalignant',
                  groups=dict(healthy=['healthy'],
                              cancer=['blast', 'lymphoma']))
    out = _evaluate(metric, samples, classes)
    truth = labels != 0
    called = probs.argmax(1) != 0
    assert out['clinical/sensitivity'] == pytest.approx(
        100 * np.mean(called[truth]))
    assert out['clinical/npv'] == pytest.approx(
        100 * np.mean(~truth[~called]))
    # The finding may be any group, and named by index.
    out = _evaluate(dict(type='BenignVsMalignant',
                         groups=dict(rest=[1, 2], healthy=[0])),
                    samples, classes)
    assert out['clinical/sensitivity'] == pytest.approx(
        100 * np.mean(~called[~truth]))
    assert out['clinical/auroc'] == pytest.approx(
        group_vs_rest(probs, labels, [0])['auroc'])


def test_no_groups_on_other_classes_is_not_run():
    samples, _, _ = _samples(k=2)
    out = _evaluate(dict(type='BenignVsMalignant'), samples,
                    ('Class A', 'Class B'))
    assert out == {}


def test_bad_groups_fail_when_the_classes_arrive():
    for groups, match in (
            (dict(benign=['Benign'], malignant=['Pre-B', 'Pro-B']),
             r"\['Early Pre-B'\] are in no group"),
            (dict(benign=['Benign'], malignant=['Pro-B', 'Plasma']),
             r"names class 'Plasma'"),
            (dict(a=['Benign', 'Pre-B'], b=['Pre-B', 'Early Pre-B',
                                             'Pro-B']),
             r"'Pre-B' is in groups")):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            evaluator = Evaluator([dict(type='BenignVsMalignant',
                                        groups=groups)])
        with pytest.raises(ValueError, match=match):
            evaluator.dataset_meta = dict(classes=ALL)
    with pytest.raises(ValueError, match='two non-empty'):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            Evaluator([dict(type='BenignVsMalignant', groups=dict(a=[0]))])
