import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

import mmdsp  # noqa: F401
from mmdsp.compat import UnsafeCheckpointError, mmengine_safe_globals

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


class _Evil:
    """Pickles to a call of os.system: must never run on load."""

    def __reduce__(self):
        return (os.system, ('echo compromised > /dev/null',))


def _write_tree(root, per_class=6):
    rng = np.random.default_rng(0)
    for label, colour in (('a', (40, 40, 200)), ('b', (200, 60, 40))):
        os.makedirs(osp.join(root, label))
        for i in range(per_class):
            img = np.full((24, 24, 3), colour, np.uint8)
            img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255)
            cv2.imwrite(osp.join(root, label, f'{i}.png'), img.astype(np.uint8))


def _run_tool(tool, *args, env):
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', tool), *args]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_message_hub_state_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('test_compat')
    for i in range(3):
        hub.update_scalar('train/loss', np.float64(i))
    hub.update_info('arr', np.arange(3))
    path = tmp_path / 'hub.pth'
    torch.save({'message_hub': hub.state_dict()}, path)
    state = torch.load(path)  # weights_only=True is torch's default
    buf = state['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(state['message_hub']['runtime_info']['arr'],
                                  np.arange(3))


def test_malicious_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Evil()}, path)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(model, str(path))
    message = str(info.value)
    assert str(path) in message and 'system' in message


def test_getattr_allows_only_history_buffer_methods(tmp_path):
    # A pickle that asks getattr for something other than a HistoryBuffer
    # statistics method must be refused, although getattr is mapped.
    class _Sneaky:

        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__dict__'))

    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(Exception, match='only HistoryBuffer'):
        torch.load(path)


def test_safe_globals_are_a_short_explicit_list():
    names = [g[1] if isinstance(g, tuple) else g.__qualname__
             for g in mmengine_safe_globals()]
    assert 'HistoryBuffer' in names and 'builtins.getattr' in names
    assert 'system' not in ' '.join(names)


def test_train_resume_test_with_tools(tmp_path):
    data = tmp_path / 'data'
    _write_tree(str(data))
    work = tmp_path / 'work'
    env = dict(os.environ, MMDSP_TEST_DATA=str(data))
    cfg = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_resnet.py')

    _run_tool('train.py', cfg, '--work-dir', str(work), env=env)
    assert (work / 'epoch_2.pth').exists()

    # Resume (auto: latest checkpoint) and train one more epoch: needs the
    # HistoryBuffer/numpy allow-list under torch's weights_only default.
    log = _run_tool('train.py', cfg, '--work-dir', str(work), '--resume',
                    '--cfg-options', 'train_cfg.max_epochs=3', env=env)
    assert 'resumed epoch: 2' in log
    assert (work / 'epoch_3.pth').exists()

    log = _run_tool('test.py', cfg, str(work / 'epoch_3.pth'), '--work-dir',
                    str(work), env=env)
    assert 'accuracy/top1' in log
