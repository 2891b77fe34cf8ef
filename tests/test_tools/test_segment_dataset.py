import importlib.util
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest

from mmdsp.utils import fileio

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(rel):
    name = 'mmdsp_tool_' + osp.splitext(osp.basename(rel))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, rel))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # forked workers unpickle the job by name
    spec.loader.exec_module(mod)
    return mod


def make_smear(size, seed, purple=True):
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (245, 240, 250)
    for _ in range(6):
        c = tuple(int(v) for v in rng.integers(4, size - 4, 2))
        cv2.circle(img, c, size // 10, (200, 185, 205), -1)
    if purple:
        c = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        cv2.circle(img, c, size // 6, (160, 50, 110), -1)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / 'src'
    for ci, cls in enumerate(('Benign', 'Pro')):
        (src / cls).mkdir(parents=True)
        for i in range(3):
            img = make_smear(48, seed=10 * ci + i, purple=(i != 2))
            cv2.imwrite(str(src / cls / f'{cls}-{i}.jpg'), img)
    return src


def snapshot(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            p = osp.join(folder, name)
            with open(p, 'rb') as f:
                out[osp.relpath(p, root)] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def test_segment_tree_masks_and_stats(tree, tmp_path):
    tool = load_tool('tools/dataset_converters/segment_dataset.py')
    out = tmp_path / 'out'
    results = tool.main([str(tree), str(out), '--workers', '2'])
    assert len(results) == 6
    for cls in ('Benign', 'Pro'):
        for i in range(3):
            img = cv2.imread(str(out / cls / f'{cls}-{i}.jpg'))
            mask = cv2.imread(str(out / cls / f'{cls}-{i}_mask.png'), 0)
            assert img.shape == (48, 48, 3) and mask.shape == (48, 48)
            assert set(np.unique(mask)) <= {0, 255}
            if i == 2:  # no stained cell: fallback keeps the whole image
                assert (mask == 255).all()
            else:
                assert 0.03 < (mask > 0).mean() < 0.3
                assert img[mask == 0].max() < 40  # JPEG ringing only
    stats = (out / 'segment_stats.csv').read_text().splitlines()
    assert stats[0] == 'path,kept_share,fallback' and len(stats) == 7
    assert sum(line.endswith('no_stain') for line in stats) == 2

    # The online transform reads those masks through cache_dir.
    from mmdsp.datasets.transforms import LabKMeansSegment
    seg = LabKMeansSegment(cache_dir=str(out),
                           src_root=str(tree),
                           on_cache_miss='error')
    src_img = cv2.imread(str(tree / 'Pro' / 'Pro-0.jpg'))
    res = seg(dict(img=src_img, img_path=str(tree / 'Pro' / 'Pro-0.jpg')))
    np.testing.assert_array_equal(
        res['fg_mask'], cv2.imread(str(out / 'Pro' / 'Pro-0_mask.png'), 0))


def test_resume_after_interruption(tree, tmp_path, monkeypatch):
    tool = load_tool('tools/dataset_converters/segment_dataset.py')
    ref = tmp_path / 'ref'
    tool.main([str(tree), str(ref)])
    reference = snapshot(ref)

    out = tmp_path / 'out'
    calls = {'n': 0}
    real = tool.imwrite_atomic

    def dying_imwrite(path, img, **kwargs):
        calls['n'] += 1
        if calls['n'] == 6:  # mid-way through the 3rd image
            # What a kill leaves behind: a half-written temp file.
            with open(
                    osp.join(
                        osp.dirname(path), '.' + osp.basename(path) + '.999.' +
                        'a' * 32 + '.tmp'), 'wb') as f:
                f.write(b'\xff\xd8 truncated')
            raise KeyboardInterrupt
        return real(path, img, **kwargs)

    monkeypatch.setattr(tool, 'imwrite_atomic', dying_imwrite)
    with pytest.raises(KeyboardInterrupt):
        tool.main([str(tree), str(out)])
    monkeypatch.setattr(tool, 'imwrite_atomic', real)
    partial = snapshot(out)
    assert any(fileio.is_temp_file(p) for p in partial)
    done_imgs = [p for p in partial if p.endswith('.jpg')]
    assert len(done_imgs) == 2

    results = tool.main([str(tree), str(out), '--workers', '2'])
    assert sum(r[3] for r in results) == 2  # the two finished were skipped
    final = snapshot(out)
    assert not any(fileio.is_temp_file(p) for p in final)
    assert set(final) == set(reference)
    for rel, (data, _) in reference.items():
        if rel.endswith(('.jpg', '.png')):
            assert final[rel][0] == data, rel
    for rel in done_imgs:  # not rewritten
        assert final[rel][1] == partial[rel][1]


def test_settings_change_refused(tree, tmp_path):
    tool = load_tool('tools/dataset_converters/segment_dataset.py')
    out = tmp_path / 'out'
    tool.main([str(tree), str(out)])
    with pytest.raises(ValueError, match='seg_cfg'):
        tool.main([str(tree), str(out), '--cfg-options', 'k=4'])
    tool.main([str(tree), str(out), '--cfg-options', 'k=4', '--overwrite'])
    with pytest.raises(FileNotFoundError, match='not a folder'):
        tool.main([str(tmp_path / 'missing'), str(tmp_path / 'o2')])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no images'):
        tool.main([str(tmp_path / 'empty'), str(tmp_path / 'o3')])


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'sub' / 'x.bin'

    def broken_replace(a, b):
        raise OSError('disk full')

    monkeypatch.setattr(fileio.os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        fileio.atomic_write_bytes(str(target), b'data')
    assert os.listdir(tmp_path / 'sub') == []
    monkeypatch.undo()
    fileio.atomic_write_bytes(str(target), b'data')
    assert target.read_bytes() == b'data'
    assert fileio.outputs_complete([str(target)])
    (tmp_path / 'empty.jpg').write_bytes(b'')
    assert not fileio.outputs_complete([str(tmp_path / 'empty.jpg')])
