import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401
from mmdsp.models.losses import PolyFocalLoss, class_frequency_omega


def _reference(logits, target, gamma, omega=None, epsilon=1.0):
    """Plain-python eq. 11 / poly-1 focal loss; ``target`` is (N, C)."""
    out = []
    for row, t in zip(logits.tolist(), target.tolist()):
        m = max(row)
        z = sum(math.exp(v - m) for v in row)
        total = 0.0
        for k, (v, tk) in enumerate(zip(row, t)):
            p = math.exp(v - m) / z
            c = omega[k] * gamma if omega is not None else epsilon
            total += tk * (-(1 - p)**gamma * math.log(p) + c *
                           (1 - p)**(gamma + 1))
        out.append(total)
    return np.array(out)


def _one_hot(label, c):
    return F.one_hot(label, c).double()


@pytest.mark.parametrize('gamma', [0.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize('omega', [None, [0.5, 1.0, 2.5, 0.0, 1.5]])
def test_matches_closed_form(gamma, omega):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, generator=g) * 3
    label = torch.randint(0, 5, (7, ), generator=g)
    loss = PolyFocalLoss(gamma=gamma,
                         omega=omega,
                         epsilon=0.7,
                         reduction='none')
    got = loss(logits, label)
    want = _reference(logits, _one_hot(label, 5), gamma, omega, 0.7)
    assert got.shape == (7, )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    mean = PolyFocalLoss(gamma=gamma, omega=omega, epsilon=0.7)(logits, label)
    assert mean.item() == pytest.approx(want.mean(), rel=1e-5)


def test_reductions_weight_avg_factor_and_loss_weight():
    logits = torch.randn(6, 4)
    label = torch.tensor([0, 1, 2, 3, 1, 0])
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5, 1.0])
    loss = PolyFocalLoss(gamma=2.0, omega=[1, 2, 3, 4], loss_weight=0.5)
    per = _reference(logits, _one_hot(label, 4), 2.0, [1, 2, 3, 4])
    assert loss(logits, label, reduction_override='sum').item() == \
        pytest.approx(0.5 * per.sum(), rel=1e-5)
    assert loss(logits, label, weight=w, avg_factor=3).item() == \
        pytest.approx(0.5 * (per * w.numpy()).sum() / 3, rel=1e-5)
    # (N, 1) labels as produced by some pipelines
    assert loss(logits, label[:,
                              None]).item() == pytest.approx(0.5 * per.mean(),
                                                             rel=1e-5)
    with pytest.raises(ValueError, match='reduction_override'):
        loss(logits, label, reduction_override='max')


@pytest.mark.parametrize('omega', [None, [1.0, 3.0, 0.2]])
def test_gamma0_epsilon0_is_cross_entropy(omega):
    logits = torch.randn(9, 3) * 4
    label = torch.randint(0, 3, (9, ))
    loss = PolyFocalLoss(gamma=0.0, epsilon=0.0, omega=omega)
    torch.testing.assert_close(loss(logits, label),
                               F.cross_entropy(logits, label))


def test_poly1_is_focal_plus_epsilon_term():
    # eq. 11 with omega == poly-1 focal with epsilon = omega * gamma
    logits = torch.randn(5, 3)
    label = torch.tensor([0, 1, 2, 2, 0])
    a = PolyFocalLoss(gamma=2.0, omega=[0.75, 0.75, 0.75])(logits, label)
    b = PolyFocalLoss(gamma=2.0, epsilon=1.5)(logits, label)
    torch.testing.assert_close(a, b)


def test_soft_targets():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, generator=g)
    target = torch.rand(4, 3, generator=g)
    target = target / target.sum(1, keepdim=True)
    omega = [2.0, 0.5, 0.5]
    got = PolyFocalLoss(gamma=1.5, omega=omega, reduction='none')(logits,
                                                                  target)
    np.testing.assert_allclose(got.numpy(),
                               _reference(logits, target, 1.5, omega),
                               rtol=1e-5)
    # one-hot scores equal hard labels
    label = torch.tensor([2, 0, 1, 1])
    loss = PolyFocalLoss(gamma=2.0, omega=omega)
    torch.testing.assert_close(loss(logits,
                                    F.one_hot(label, 3).float()),
                               loss(logits, label))


@pytest.mark.parametrize('gamma', [0.5, 2.0])
@pytest.mark.parametrize('soft', [False, True])
def test_gradcheck(gamma, soft):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3,
                         4,
                         dtype=torch.float64,
                         generator=g,
                         requires_grad=True)
    if soft:
        target = torch.rand(3, 4, dtype=torch.float64, generator=g)
        target = target / target.sum(1, keepdim=True)
    else:
        target = torch.tensor([0, 3, 1])
    loss = PolyFocalLoss(gamma=gamma, omega=[1.0, 0.5, 2.0, 1.5])
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits, ))


def test_extreme_logits_are_finite():
    logits = torch.tensor(
        [[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4]],
        requires_grad=True)
    label = torch.tensor([1, 1, 2])  # one wrong, one right, one wrong
    for loss in (PolyFocalLoss(gamma=2.0), PolyFocalLoss(gamma=0.5),
                 PolyFocalLoss(gamma=2.0, omega=[1.0, 1.0, 2.0])):
        out = loss(logits, label)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(logits.grad).all()
        logits.grad = None
    # confidently right sample: loss exactly 0 and no gradient
    right = PolyFocalLoss(gamma=2.0,
                          reduction='none')(torch.tensor([[1e4, -1e4]]),
                                            torch.tensor([0]))
    assert right.item() == 0.0


def test_autocast_bf16_cpu_and_half_input():
    logits = (torch.randn(8, 4) * 20).requires_grad_()
    label = torch.randint(0, 4, (8, ))
    loss = PolyFocalLoss(gamma=2.0, omega=[1, 2, 3, 4])
    ref = loss(logits, label)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        lin = torch.nn.Linear(4, 4)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(4))
            lin.bias.zero_()
        out = loss(lin(logits), label)  # bf16 logits
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(logits.grad).all()
    assert out.item() == pytest.approx(ref.item(), rel=0.1)
    # fp16 logits are computed in fp32: same as upcasting them first
    half = loss(logits.detach().half(), label)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(loss(logits.detach().half().float(),
                                             label).item(),
                                        rel=1e-6)


def test_auto_omega_requires_hook_and_set_omega():
    loss = PolyFocalLoss(omega='auto')
    with pytest.raises(RuntimeError, match='ClassFrequencyOmegaHook'):
        loss(torch.randn(2, 3), torch.tensor([0, 1]))
    loss.set_omega([1.0, 2.0, 3.0])
    assert torch.isfinite(loss(torch.randn(2, 3), torch.tensor([0, 1])))
    # not saved: checkpoints load whatever the omega setting
    assert 'omega' not in loss.state_dict()


def test_bad_arguments():
    with pytest.raises(ValueError, match='omega'):
        PolyFocalLoss(omega='inverse')
    with pytest.raises(ValueError, match='gamma'):
        PolyFocalLoss(gamma=-1)
    with pytest.raises(ValueError, match='reduction'):
        PolyFocalLoss(reduction='avg')
    with pytest.raises(ValueError, match='non-negative'):
        PolyFocalLoss(omega=[1.0, -1.0])
    loss = PolyFocalLoss(omega=[1.0, 2.0])
    with pytest.raises(ValueError, match='3 classes'):
        loss(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='labels'):
        PolyFocalLoss()(torch.randn(2, 3), torch.tensor([0, 1, 2]))


def test_class_frequency_omega_rule():
    omega = class_frequency_omega([512, 979, 955, 796])
    assert omega.mean().item() == pytest.approx(1.0)
    assert omega.argmax().item() == 0 and omega.argmin().item() == 1
    assert omega[0] / omega[1] == pytest.approx(979 / 512, rel=1e-5)
    torch.testing.assert_close(class_frequency_omega([7, 7, 7]), torch.ones(3))
    # empty class: weight of the rarest present class
    o = class_frequency_omega([10, 0, 40])
    assert o[1] == o[0] and torch.isfinite(o).all()
    with pytest.raises(ValueError):
        class_frequency_omega([0, 0])


def test_as_linear_cls_head_loss():
    head = MODELS.build(
        dict(type='LinearClsHead',
             num_classes=3,
             in_channels=8,
             loss=dict(type='PolyFocalLoss', gamma=2.0, omega=[1, 1, 2])))
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
    feats = (torch.randn(4, 8), )
    losses = head.loss(feats, samples)
    assert torch.isfinite(losses['loss'])
    # mixup-style soft scores
    for s in samples:
        s.set_gt_score(torch.tensor([0.2, 0.3, 0.5]))
    head.cal_acc = False
    assert torch.isfinite(head.loss(feats, samples)['loss'])
