"""What our tools/train.py and tools/test.py add to MMPretrain's: loader
settings fitted to the machine, no third-party warning noise, and test.py
refusing a checkpoint that is not one, or not of the config's model."""
import re

import pytest
import torch

from mmdsp.utils.mmpretrain_tools import (available_cores,
                                          check_checkpoint_fits,
                                          fix_dataloaders)


def test_fix_dataloaders_caps_workers_and_pin_memory():
    from mmengine.config import Config
    cfg = Config(
        dict(train_dataloader=dict(num_workers=64, pin_memory=True,
                                   persistent_workers=True),
             val_dataloader=dict(num_workers=0, persistent_workers=True),
             test_dataloader=None))
    fix_dataloaders(cfg)
    assert cfg.train_dataloader.num_workers == max(1, available_cores() - 1)
    assert cfg.val_dataloader.persistent_workers is False
    if not torch.cuda.is_available():
        assert cfg.train_dataloader.pin_memory is False


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tools):
    root = tmp_path_factory.mktemp('tool_defaults')
    data = tools.write_tree(str(root / 'data'))
    env = tools.env(data)
    work = root / 'work'
    # More workers than any CI machine has cores: capped, so torch's
    # "suggested max number of worker" warning must not appear.
    _, log = tools.run('train.py', tools.config('tiny_resnet.py'),
                       '--work-dir', work, '--cfg-options',
                       'train_dataloader.num_workers=64',
                       'train_dataloader.persistent_workers=False',
                       'val_dataloader.num_workers=64', env=env)
    return work, env, log


def test_train_and_test_print_no_warnings(trained, tools):
    work, env, train_log = trained
    _, test_log = tools.run('test.py', tools.config('tiny_resnet.py'),
                            work / 'epoch_2.pth', '--work-dir', work,
                            env=env)
    for log in (train_log, test_log):
        lines = log.splitlines()
        # A ResNet has none of the DSP bricks: each DSP hook of the runtime
        # base says so, once, and nothing else may warn.
        idle = [line for line in lines if 'the hook does nothing' in line]
        noisy = [line for line in lines
                 if re.search('warn', line, re.IGNORECASE)
                 and line not in idle]
        assert not noisy, noisy[:5]
        messages = [line.split(' - ')[-1] for line in idle]
        assert len(messages) == len(set(messages)) <= 2
    assert 'accuracy/top1' in test_log


def test_test_refuses_a_checkpoint_of_another_model(trained, tools):
    work, env, _ = trained
    code, log = tools.run('test.py', tools.config('tiny_resnet.py'),
                          work / 'epoch_2.pth', '--work-dir', work,
                          '--cfg-options', 'model.backbone.base_channels=16',
                          'model.head.in_channels=128', env=env, check=False)
    assert code != 0
    assert 'does not fit the model' in log and 'other shapes' in log
    assert 'accuracy/top1' not in log  # nothing was evaluated


def test_test_refuses_a_file_that_is_not_a_checkpoint(trained, tools,
                                                      tmp_path):
    work, env, _ = trained
    text = tmp_path / 'model.pth'
    text.write_text('not weights\n')
    code, log = tools.run('test.py', tools.config('tiny_resnet.py'), text,
                          '--work-dir', work, env=env, check=False)
    assert code != 0 and 'is not a checkpoint' in log
    assert 'allow-list' not in log
    code, log = tools.run('test.py', tools.config('tiny_resnet.py'),
                          tmp_path / 'absent.pth', '--work-dir', work,
                          env=env, check=False)
    assert code != 0 and 'not found' in log


def test_check_checkpoint_fits_passes_a_matching_checkpoint(trained, tools):
    from mmengine.config import Config
    work, _, _ = trained
    cfg = Config.fromfile(tools.config('tiny_resnet.py'))
    check_checkpoint_fits(cfg, str(work / 'epoch_2.pth'))  # no SystemExit
