"""Fixtures and helpers shared by the whole test-suite."""
import glob
import importlib.util
import json
import os
import os.path as osp
import socket
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

import mmdsp  # noqa: F401  (safe-loading allow-list for torch.load)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO_ROOT, 'tests', 'data', 'configs')


def real_data_root():
    """The public ALL dataset, from $MMDSP_DATA_ROOT or ../shared/data.

    Returns the folder holding ``Original/`` or None when it is absent.
    """
    candidates = [
        os.environ.get('MMDSP_DATA_ROOT'),
        osp.join(REPO_ROOT, '..', 'shared', 'data', 'all_leukemia'),
    ]
    for root in filter(None, candidates):
        root = osp.abspath(root)
        if osp.basename(root) == 'Original':
            root = osp.dirname(root)
        if osp.isdir(osp.join(root, 'Original')):
            return root
    return None


@pytest.fixture
def real_data():
    root = real_data_root()
    if root is None:
        pytest.skip('real ALL dataset absent: set MMDSP_DATA_ROOT or place '
                    'it at ../shared/data/all_leukemia (Original/...)')
    return root


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(autouse=True, scope='session')
def _one_intra_op_thread():
    """Run the suite's tiny tensors on one thread.

    CI has 2 cores; a second intra-op thread mostly waits for a busy core,
    turning millisecond forwards into seconds.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_image_tree(root, per_class=8, size=24):
    """Two noisy colour classes, a folder each (for ``CustomDataset``)."""
    rng = np.random.default_rng(0)
    for label, colour in (('a', (40, 40, 200)), ('b', (200, 60, 40))):
        os.makedirs(osp.join(root, label))
        for i in range(per_class):
            img = np.full((size, size, 3), colour, np.float64)
            img = np.clip(img + rng.normal(0, 60, img.shape), 0, 255)
            cv2.imwrite(osp.join(root, label, f'{i}.png'),
                        img.astype(np.uint8))
    return root


@pytest.fixture
def tiny_data(tmp_path):
    return write_image_tree(str(tmp_path / 'data'))


def tool_env(data_root, **extra):
    """Environment for a tool run: data, one thread, the venv's python."""
    env = dict(os.environ,
               MMDSP_TEST_DATA=str(data_root),
               PYTHON=sys.executable,
               OMP_NUM_THREADS='1',
               **extra)
    env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [REPO_ROOT, os.environ.get('PYTHONPATH')]))
    return env


def tool_cmd(tool, *args):
    if tool.endswith('.sh'):
        return ['bash', osp.join(REPO_ROOT, 'tools', tool), *map(str, args)]
    return [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', tool), *map(str, args)
    ]


def run_tool(tool, *args, env, timeout=600, check=True):
    proc = subprocess.run(tool_cmd(tool, *args),
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    log = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, log[-4000:]
    return proc.returncode, log


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def val_metrics(work_dir, key='accuracy/top1'):
    """``{epoch: value}`` of a validation metric, from every run's
    ``vis_data/scalars.json`` under ``work_dir`` (a resumed run adds one)."""
    out = {}
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    for path in files:
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if key in rec:
                    out[rec['step']] = rec[key]
    return out


def write_tiny_config(root, data_root):
    """A copy of ``tiny_resnet.py`` whose three loaders read ``data_root``
    (train, val and test alike); returns its path."""
    path = osp.join(str(root), 'tiny.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{osp.join(CONFIG_DIR, "tiny_resnet.py")!r}]\n'
                f'data_root = {str(data_root)!r}\n'
                'train_dataloader = dict(dataset=dict(data_root=data_root))\n'
                'val_dataloader = train_dataloader\n'
                'test_dataloader = train_dataloader\n')
    return path


def load_weights(path):
    return torch.load(path, map_location='cpu')['state_dict']


def load_tool(rel):
    """Import a script of ``tools/`` (not a package) as a module.

    Args:
        rel (str): Path relative to ``tools/``, e.g. ``'predict.py'``.
    """
    path = osp.join(REPO_ROOT, 'tools', rel)
    name = 'tool_' + osp.splitext(rel)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def tools():
    """The helpers above; test modules cannot import a conftest under
    pytest's ``--import-mode=importlib`` (setup.cfg), so they get them
    here."""
    return SimpleNamespace(**{
        'config': lambda name: osp.join(CONFIG_DIR, name),
        'env': tool_env,
        'cmd': tool_cmd,
        'run': run_tool,
        'load': load_tool,
        'write_tree': write_image_tree,
        'tiny_config': write_tiny_config,
        'free_port': free_port,
        'val_metrics': val_metrics,
        'load_weights': load_weights,
        'repo_root': REPO_ROOT,
    })
