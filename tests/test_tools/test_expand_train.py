import importlib.util
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest

from mmdsp.utils import fileio

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    name = 'mmdsp_tool_expand_train'
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', 'dataset_converters', 'expand_train.py'))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # forked workers unpickle the job by name
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def split(tmp_path):
    root = tmp_path / 'data'
    rng = np.random.default_rng(0)
    lines = []
    for label, cls in enumerate(('Benign', 'Pro')):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            img = np.full((40, 40, 3), (240, 235, 245), np.uint8)
            cv2.circle(img, tuple(int(v) for v in rng.integers(10, 30, 2)), 7,
                       (160, 50, 110), -1)
            img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255)
            cv2.imwrite(str(root / cls / f'{i}.png'), img.astype(np.uint8))
            lines.append(f'{cls}/{i}.png {label}')
    train = tmp_path / 'train.txt'
    train.write_text('\n'.join(lines) + '\n')
    return root, train


def read_list(path):
    return [line.rsplit(' ', 1) for line in open(path).read().splitlines()]


def tree_bytes(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.png'):
                p = osp.join(folder, name)
                out[osp.relpath(p, root)] = open(p, 'rb').read()
    return out


def test_expand_counts_labels_and_determinism(split, tmp_path):
    root, train = split
    tool = load_tool()
    out1, out2 = tmp_path / 'o1', tmp_path / 'o2'
    tool.main(
        [str(root),
         str(train),
         str(out1), '--target', '20', '--seed', '3'])
    tool.main([
        str(root),
        str(train),
        str(out2), '--target', '20', '--seed', '3', '--workers', '2'
    ])
    entries = read_list(out1 / 'train.txt')
    assert len(entries) == 20
    assert len({p for p, _ in entries}) == 20
    for rel, label in entries:
        assert (out1 / rel).is_file()
        assert label == ('0' if rel.startswith('Benign') else '1')
    # 14 extra over 6 originals: every image 2 copies, two of them 3.
    per_orig = {}
    for rel, _ in entries:
        base = rel.split('_aug')[0].replace('.png', '')
        per_orig[base] = per_orig.get(base, 0) + 1
    assert sorted(per_orig.values()) == [3, 3, 3, 3, 4, 4]
    # Originals copied byte for byte; copies really augmented.
    assert (out1 / 'Benign' / '0.png').read_bytes() == \
        (root / 'Benign' / '0.png').read_bytes()
    orig = cv2.imread(str(root / 'Benign' / '0.png'))
    aug = cv2.imread(str(out1 / 'Benign' / '0_aug00.png'))
    assert aug.shape == orig.shape and not np.array_equal(aug, orig)
    # Same seed, other worker count: identical bytes; other seed differs.
    assert tree_bytes(out1) == tree_bytes(out2)
    out3 = tmp_path / 'o3'
    tool.main(
        [str(root),
         str(train),
         str(out3), '--target', '20', '--seed', '4'])
    assert tree_bytes(out3) != tree_bytes(out1)


def test_expand_resume_and_errors(split, tmp_path):
    root, train = split
    tool = load_tool()
    out = tmp_path / 'out'
    tool.main([str(root), str(train), str(out), '--target', '12'])
    reference = tree_bytes(out)
    # Simulated interruption: two outputs lost, a stale temp file left.
    os.remove(out / 'Pro' / '1_aug00.png')
    os.remove(out / 'Benign' / '2.png')
    stale = out / 'Pro' / ('.1_aug00.png.4242.' + 'b' * 32 + '.tmp')
    stale.write_bytes(b'partial')
    keep = out / 'Benign' / '0_aug00.png'
    mtime = os.stat(keep).st_mtime_ns
    tool.main([str(root), str(train), str(out), '--target', '12'])
    assert tree_bytes(out) == reference
    assert not stale.exists()
    assert os.stat(keep).st_mtime_ns == mtime
    assert not any(fileio.is_temp_file(n) for n in os.listdir(out / 'Pro'))

    with pytest.raises(ValueError, match='target'):
        tool.main([str(root), str(train), str(out), '--target', '13'])
    with pytest.raises(ValueError, match='below'):
        tool.main(
            [str(root),
             str(train),
             str(tmp_path / 'x'), '--target', '3'])
    bad = tmp_path / 'bad.txt'
    bad.write_text('Benign/0.png 0\nBenign/1.png\n')
    with pytest.raises(ValueError, match='bad.txt:2'):
        tool.main([str(root), str(bad), str(tmp_path / 'y')])
    missing = tmp_path / 'missing.txt'
    missing.write_text('Benign/9.png 0\n')
    with pytest.raises(FileNotFoundError, match='Benign/9.png'):
        tool.main([str(root), str(missing), str(tmp_path / 'z')])
