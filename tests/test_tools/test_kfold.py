"""tools/kfold.py end to end on a tiny model: folds, resume, summary."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest

from mmdsp.datasets.synthetic import make_synthetic_folders
from mmdsp.evaluation.functional import accuracy


def _config(tmp_path, tools, data_root, split_dir):
    """The own-data config as a user fills it in, with the tiny test model
    instead of EfficientNet-DSP (seconds, not minutes)."""
    path = tmp_path / 'cells.py'
    own = osp.join(tools.repo_root, 'configs', 'own_data',
                   'effdsp-b0_folders.py')
    path.write_text(f"""_base_ = [{own!r}]
classes = ['benign', 'malignant']
data = dict(data_root={data_root!r}, classes=classes)
img_size = 32
model = dict(_delete_=True, type='ImageClassifier',
             backbone=dict(type='ResNet', depth=18, stem_channels=8,
                           base_channels=8),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=2, in_channels=64,
                       loss=dict(type='CrossEntropyLoss'), topk=(1, )))
# One batch a fold: a last batch of one image would break BatchNorm.
train_dataloader = dict(batch_size=16, num_workers=0, dataset=data)
val_dataloader = dict(batch_size=8, num_workers=0, dataset=data)
test_dataloader = val_dataloader
test_evaluator = [dict(type='Accuracy', topk=(1, )),
                  dict(type='BenignVsMalignant',
                       groups=dict(benign=['benign'],
                                   malignant=['malignant']))]
train_cfg = dict(max_epochs=1)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
""")
    return str(path)


def test_kfold_trains_tests_resumes_and_pools(tmp_path, tools, capsys):
    data, split = str(tmp_path / 'bm'), str(tmp_path / 'split')
    make_synthetic_folders(data, {'benign': 0, 'malignant': 3}, [9, 8],
                           size=32, exact_duplicates=2)
    tools.load('dataset_converters/split_all.py').main(
        [data, split, '--folds', '2', '--ncc-thr', '0.95'])
    config = _config(tmp_path, tools, data, split)
    kfold = tools.load('kfold.py')
    work = str(tmp_path / 'work')
    args = [config, '--folds', '2', '--split-dir', split, '--work-dir',
            work]
    with pytest.raises(SystemExit):
        kfold.main([config, '--folds', '3', '--split-dir', split])
    assert 'fold_2/train.txt does not exist' in capsys.readouterr().err
    kfold.main(args)
    summary = json.load(open(osp.join(work, 'kfold_summary.json')))
    assert summary['n'] == 19  # every image once, out of fold
    assert len(summary['per_fold']) == 2
    probs, labels = [], []
    for k in range(2):
        with open(osp.join(split, f'fold_{k}', 'val.txt')) as f:
            val = {line.rsplit(' ', 1)[0] for line in f.read().splitlines()}
        with open(osp.join(work, f'fold_{k}', 'oof.pkl'), 'rb') as f:
            recs = pickle.load(f)
        # Each fold's model was tested on its own held-out fold.
        assert {osp.relpath(r['img_path'], data) for r in recs} == val
        probs += [np.asarray(r['pred_score']) for r in recs]
        labels += [int(r['gt_label'][0]) for r in recs]
    assert summary['pooled']['accuracy'] == pytest.approx(
        accuracy(np.stack(probs), np.array(labels)))
    assert summary['pooled_low']['accuracy'] <= \
        summary['pooled']['accuracy'] <= summary['pooled_high']['accuracy']
    assert summary['positive'] == [1]
    assert not np.isnan(summary['mean']['sensitivity'])
    capsys.readouterr()

    # Rerun: both folds are done; nothing is trained again.
    kfold.main(args)
    printed = capsys.readouterr().out
    assert printed.count('done before') == 2 and 'training' not in printed
    kfold.main(['--compare', work, work])
    assert '+0.00 [+0.00, +0.00]' in capsys.readouterr().out
