import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS

import mmdsp  # noqa: F401
from mmdsp.engine.hooks import NaNLossHook, NonFiniteLossError

CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data',
                  'configs', 'tiny_gn.py')


@HOOKS.register_module(force=True)
class _PoisonHook(Hook):
    """Test only: write NaN/inf into the classifier at a chosen moment."""

    priority = 'LOWEST'

    def __init__(self, epoch, value, at='before_epoch'):
        self.epoch, self.value, self.at = epoch, value, at

    def _poison(self, runner):
        with torch.no_grad():
            runner.model.head.fc.bias.fill_(self.value)

    def before_train_epoch(self, runner):
        if self.at == 'before_epoch' and runner.epoch + 1 == self.epoch:
            self._poison(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        last = batch_idx + 1 == len(runner.train_dataloader)
        if self.at == 'last_iter' and runner.epoch + 1 == self.epoch and last:
            self._poison(runner)



def _runner(tmp_path, data, poison):
    cfg = Config.fromfile(CONFIG)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'nan_{tmp_path.name}'
    cfg.default_hooks.logger.interval = 100
    cfg.train_cfg.max_epochs = 3
    cfg.custom_hooks = [
        dict(type='NaNLossHook'),
        dict(poison, type='_PoisonHook')
    ]
    return Runner.from_cfg(cfg)


def _finite(path):
    state = torch.load(path, map_location='cpu')['state_dict']
    return all(
        torch.isfinite(v).all() for v in state.values()
        if v.is_floating_point())


def test_nan_loss_stops_before_checkpoint(tmp_path, tiny_data):
    runner = _runner(tmp_path, tiny_data, dict(epoch=2, value=float('nan')))
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    msg = str(err.value)
    assert 'epoch 2, iteration 1/4' in msg, msg
    assert 'global iteration 5' in msg and 'loss=nan' in msg, msg
    work = tmp_path / 'work'
    assert str(work / 'epoch_1.pth') in msg, msg
    assert _finite(work / 'epoch_1.pth')
    assert not (work / 'epoch_2.pth').exists()
    assert (work /
            'last_checkpoint').read_text().strip().endswith('epoch_1.pth')


def test_overflowed_weights_with_finite_loss_are_not_saved(tmp_path,
                                                          tiny_data):
    # The last step of epoch 1 overflows after its (finite) loss was seen.
    runner = _runner(tmp_path, tiny_data,
                     dict(epoch=1, value=float('inf'), at='last_iter'))
    with pytest.raises(NonFiniteLossError, match='end of epoch 1') as err:
        runner.train()
    assert 'head.fc.bias' in str(err.value)
    assert 'No checkpoint had been written yet' in str(err.value)
    assert not list((tmp_path / 'work').glob('*.pth'))


def _fake_runner():
    hub = MessageHub.get_instance('test_nan_loss_hook_fake')
    hub.update_info('last_ckpt', '/ckpts/epoch_3.pth')
    return SimpleNamespace(epoch=3,
                           iter=41,
                           message_hub=hub,
                           train_dataloader=[None] * 10)


def test_hook_unit_checks():
    hook = NaNLossHook()
    runner = _fake_runner()
    # Finite losses, and entries that are not losses, pass.
    hook.after_train_iter(runner,
                          1,
                          outputs=dict(loss=torch.tensor(0.5),
                                       loss_cls=torch.tensor(0.5),
                                       accuracy=torch.tensor(float('nan'))))
    with pytest.raises(NonFiniteLossError) as err:
        hook.after_train_iter(runner,
                              1,
                              outputs=dict(loss=torch.tensor(float('inf')),
                                           loss_cls=torch.tensor(1.0)))
    msg = str(err.value)
    assert 'epoch 4, iteration 2/10' in msg and 'global iteration 42' in msg
    assert 'loss=inf' in msg and '/ckpts/epoch_3.pth' in msg

    with pytest.raises(NonFiniteLossError, match='refusing to save'):
        hook.before_save_checkpoint(
            runner,
            dict(state_dict=dict(w=torch.tensor([1.0, float('nan')]),
                                 n=torch.tensor([3]))))
    hook.before_save_checkpoint(
        runner, dict(state_dict=dict(w=torch.ones(2), n=torch.tensor([3]))))
    NaNLossHook(check_weights=False).before_save_checkpoint(
        runner, dict(state_dict=dict(w=torch.tensor([float('nan')]))))
