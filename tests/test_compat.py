import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

import mmdsp  # noqa: F401
from mmdsp.compat import UnsafeCheckpointError, mmengine_safe_globals


class _Evil:
    """Pickles to a call of os.system: must never run on load."""

    def __reduce__(self):
        return (os.system, ('echo compromised > /dev/null',))


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


def test_train_resume_test_with_tools(tmp_path, tiny_data, tools):
    work = tmp_path / 'work'
    env = tools.env(tiny_data)
    cfg = tools.config('tiny_resnet.py')

    tools.run('train.py', cfg, '--work-dir', work, env=env)
    assert (work / 'epoch_2.pth').exists()

    # Resume (auto: latest checkpoint) and train one more epoch: needs the
    # HistoryBuffer/numpy allow-list under torch's weights_only default.
    _, log = tools.run('train.py', cfg, '--work-dir', work, '--resume',
                       '--cfg-options', 'train_cfg.max_epochs=3', env=env)
    assert 'resumed epoch: 2' in log
    assert (work / 'epoch_3.pth').exists()

    _, log = tools.run('test.py', cfg, work / 'epoch_3.pth', '--work-dir',
                       work, env=env)
    assert 'accuracy/top1' in log


def _python_stderr(code):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, '-W', 'default', '-c', code],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def test_known_third_party_warnings_are_hidden_and_others_kept():
    err = _python_stderr(
        'import mmdsp, warnings\n'
        'import mmcv.cnn.bricks.transformer\n'
        'from mmengine.fileio import FileClient\n'
        'from mmengine.logging import MMLogger\n'
        "MMLogger.get_instance('t')\n"
        "FileClient(backend='disk')\n"
        "warnings.warn('a real warning')\n")
    assert 'MultiScaleDeformableAttention' not in err
    assert 'pkg_resources' not in err
    assert 'FileClient' not in err and 'HardDiskBackend' not in err
    assert 'a real warning' in err


def test_version_guard_names_the_mismatch():
    from mmdsp.compat import check_versions
    with pytest.warns(RuntimeWarning, match='mmengine 0.10.7.*0.10.6'):
        problems = check_versions(
            dict(mmengine='0.10.6', torch='2.14.1', numpy='2.4.0'))
    assert len(problems) == 1
    with pytest.warns(RuntimeWarning, match='numpy 2.0 to 2.99.*1.26'):
        check_versions(dict(numpy='1.26.4'))
    assert check_versions(
        dict(mmengine='0.10.7', torch='2.14.1+cpu', numpy='2.4.6')) == []
    assert check_versions() == []  # the pinned stack itself


def test_a_missing_private_symbol_is_refused_with_its_fix():
    from types import SimpleNamespace

    from mmdsp.compat import _require
    owner = SimpleNamespace(__name__='mmengine.dist.utils')
    with pytest.raises(ImportError, match=r'fix 2 .*_init_dist_pytorch'):
        _require(owner, '_init_dist_pytorch', 2)


def test_a_text_file_is_not_a_checkpoint(tmp_path):
    from mmdsp.compat import NotACheckpointError
    path = tmp_path / 'notes.pth'
    path.write_text('this is not a checkpoint\n')
    with pytest.raises(NotACheckpointError, match='is not a checkpoint') as e:
        load_checkpoint(torch.nn.Linear(2, 2), str(path))
    assert str(path) in str(e.value) and 'allow-list' not in str(e.value)
