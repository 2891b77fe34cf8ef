import pytest
import torch
from mmengine.runner.checkpoint import load_state_dict
from mmpretrain.models import EfficientNetV2
from torch import nn

import mmdsp  # noqa: F401  (registers the backbone and the bricks)
from mmdsp.models.backbones import EfficientNetDSP
from mmdsp.models.layers import DyODConv
from mmdsp.models.utils.pretrained_report import (load_pretrained,
                                                  reporting_loads,
                                                  split_pretrained)


def _net():
    return nn.Sequential(
        nn.Conv2d(2, 4, 1), DyODConv(4, 4, 3, groups=4, kernel_num=2))


def test_report_of_a_load_and_no_hook_left():
    torch.manual_seed(0)
    model = _net()
    state = {
        '0.weight': torch.zeros(4, 2, 3, 3),  # wrong shape
        '0.bias': torch.ones(4),
        '1.conv.weight': torch.ones(4, 1, 3, 3),  # a plain depthwise conv
        'extra': torch.zeros(1)
    }
    with reporting_loads(model, ['ckpt.pth']) as reports:
        load_state_dict(model, state)  # mmengine's, strict=False
    report, = reports
    assert model.pretrained_report is report
    assert report['shape_mismatch'] == [
        '0.weight: checkpoint (4, 2, 3, 3) vs model (4, 2, 1, 1)']
    assert report['seeded'] == ['1.conv.weight']
    assert report['loaded'] == ['0.bias']
    assert report['unexpected'] == ['extra']
    assert '1.bn.weight' in report['missing']
    assert torch.equal(model[0].bias, torch.ones(4))
    assert torch.equal(model[1].conv.weight, torch.ones(2, 4, 1, 3, 3))
    assert not model._load_state_dict_pre_hooks
    # outside the block, loads are not reported
    model.pretrained_report = None
    load_state_dict(model, state)
    assert model.pretrained_report is None


def test_nothing_fits_raises_before_loading(tmp_path):
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = tmp_path / 'c.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in _net().state_dict().items()}},
               ckpt)
    with pytest.raises(ValueError, match="prefix='backbone.'"):
        load_pretrained(model, str(ckpt))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    report = load_pretrained(model, str(ckpt), prefix='backbone.')
    assert len(report['loaded']) == len(before)


def test_pretrained_only_init_cfg_keeps_the_v2_init():
    pretrained = dict(type='Pretrained', checkpoint='x.pth')
    assert split_pretrained(pretrained) == ([], [pretrained])
    assert split_pretrained(None) == ([], [])
    model = EfficientNetDSP(arch='b0', init_cfg=pretrained)
    defaults = EfficientNetV2(arch='b0').init_cfg
    assert model.init_cfg == [*defaults, pretrained]
    mixed = [dict(type='Constant', layer='Conv2d', val=0), pretrained]
    model = EfficientNetDSP(arch='b0', init_cfg=mixed)
    assert model.init_cfg == mixed
