"""``tools/train.py --resume`` after a SIGKILL reproduces the uninterrupted
run exactly; malicious checkpoints are refused by the tools."""
import os
import os.path as osp
import signal
import subprocess
import time

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

PAUSE_AT_EPOCH = 2  # 1-based, as in the log
PAUSE_AT_ITER = 2


@HOOKS.register_module(force=True)
class PauseForKillHook(Hook):
    """Test only: write ``marker`` mid-epoch, then sleep until killed.

    Polling the work_dir for a checkpoint and killing "soon after" races
    with a busy CPU; pausing at a known iteration makes the kill land
    mid-epoch every time. It draws no random numbers, so the killed run is
    the same computation as the others up to the kill.
    """

    priority = 'LOWEST'  # after LoggerHook has logged the iteration

    def __init__(self, marker, epoch, iteration):
        self.marker, self.epoch, self.iteration = marker, epoch, iteration

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.epoch + 1 == self.epoch and batch_idx + 1 == self.iteration:
            with open(self.marker, 'w') as f:
                f.write(f'epoch {runner.epoch + 1} iter {batch_idx + 1}')
            time.sleep(600)


def _wait_for(path, proc, timeout=300):
    start = time.time()
    while not osp.exists(path):
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ''
            raise AssertionError(
                f'training exited ({proc.returncode}) before pausing:\n'
                f'{out[-3000:]}')
        assert time.time() - start < timeout, f'{path} never appeared'
        time.sleep(0.2)


def test_resume_after_sigkill_is_exact(tiny_data, tmp_path, tools):
    # tiny_gn_aug.py draws random flips (numpy) and stochastic depth
    # (torch): without EpochSeedHook the resumed run diverges (docs).
    cfg = tools.config('tiny_gn_aug.py')
    env = tools.env(tiny_data)
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    marker = tmp_path / 'paused'

    kill_cfg = tmp_path / 'kill_cfg.py'
    kill_cfg.write_text(
        f'_base_ = [{cfg!r}]\n'
        "custom_imports = dict(imports=['mmdsp', 'test_resume_after_kill'],"
        ' allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='NaNLossHook'), "
        "dict(type='EpochSeedHook'), dict(type='PauseForKillHook', "
        f'marker={str(marker)!r}, epoch={PAUSE_AT_EPOCH}, '
        f'iteration={PAUSE_AT_ITER})]\n')
    kill_env = dict(env,
                    PYTHONPATH=os.pathsep.join([
                        osp.dirname(osp.abspath(__file__)), env['PYTHONPATH']
                    ]))
    log_path = tmp_path / 'killed.log'
    with open(log_path, 'w') as log_file:
        victim = subprocess.Popen(tools.cmd('train.py', kill_cfg, '--work-dir',
                                            killed, '--cfg-options',
                                            'train_cfg.max_epochs=3'),
                                  cwd=tools.repo_root,
                                  env=kill_env,
                                  stdout=log_file,
                                  stderr=subprocess.STDOUT,
                                  text=True)
        # The reference run goes meanwhile, on the other core.
        reference = subprocess.Popen(tools.cmd('train.py', cfg, '--work-dir',
                                               full, '--cfg-options',
                                               'train_cfg.max_epochs=3'),
                                     cwd=tools.repo_root,
                                     env=env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     text=True)
        try:
            _wait_for(marker, victim)
            assert (killed / 'epoch_1.pth').is_file()
            assert not (killed / 'epoch_2.pth').exists()
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(timeout=60) == -signal.SIGKILL
        finally:
            if victim.poll() is None:
                victim.kill()
        _, ref_err = reference.communicate(timeout=600)
        assert reference.returncode == 0, ref_err[-3000:]
    assert 'Epoch(train) [2][2/4]' in log_path.read_text()

    _, log = tools.run('train.py',
                       cfg,
                       '--work-dir',
                       killed,
                       '--resume',
                       '--cfg-options',
                       'train_cfg.max_epochs=3',
                       env=env)
    assert 'resumed epoch: 1' in log

    assert tools.val_metrics(killed) == tools.val_metrics(full)
    assert sorted(tools.val_metrics(full)) == [1, 2, 3]
    w_full = tools.load_weights(full / 'epoch_3.pth')
    w_resumed = tools.load_weights(killed / 'epoch_3.pth')
    assert w_full.keys() == w_resumed.keys()
    for key in w_full:
        assert torch.equal(w_full[key], w_resumed[key]), key


def test_tools_refuse_malicious_checkpoint(tiny_data, tmp_path, tools):
    pwned = tmp_path / 'PWNED'

    class _Evil:

        def __reduce__(self):
            return (os.system, (f'touch {pwned}', ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Evil()}, evil)
    cfg = tools.config('tiny_gn.py')
    env = tools.env(tiny_data)
    for args in (('test.py', cfg, evil), ('train.py', cfg, '--resume', evil)):
        code, log = tools.run(*args,
                              '--work-dir',
                              tmp_path / 'work',
                              env=env,
                              check=False)
        assert code != 0, log[-2000:]
        assert not pwned.exists(), 'the pickled os.system call ran'
        # the refusal names the file and the blocked callable ...
        assert f'refused to load checkpoint {evil}' in log, log[-2000:]
        assert 'it pickles posix.system' in log, log[-2000:]
