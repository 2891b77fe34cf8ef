"""configs/own_data: set the data lines once, everything else follows."""
import os.path as osp

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS, MODELS

import mmdsp  # noqa: F401
from mmdsp.datasets.synthetic import make_synthetic_folders

MODEL_LINE = "    'mmdsp::_base_/models/efficientnet_dsp_s.py',"
V2_LINE = ("    'mmpretrain::_base_/models/efficientnet_v2/"
           "efficientnetv2_b0.py',")


def _copy(tmp_path, repo_root, data_root, split_dir, v2=False):
    text = open(osp.join(repo_root, 'configs', 'own_data',
                         'effdsp-b0_folders.py')).read()
    for old, new in (
            ("data_root = 'data/my_cells'", f'data_root = {data_root!r}'),
            ("split_dir = 'data/my_cells_splits'",
             f'split_dir = {split_dir!r}'),
            ("classes = ['Class A', 'Class B']",
             "classes = ['blast', 'monocyte', 'neutrophil']"),
            ('clinical_groups = None',
             "clinical_groups = dict(healthy=['monocyte', 'neutrophil'], "
             "blast=['blast'])")) + (((MODEL_LINE, V2_LINE), ) if v2 else ()):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / ('v2.py' if v2 else 'dsp.py')
    path.write_text(text)
    return Config.fromfile(str(path))


def test_data_lines_set_dataset_classes_and_metrics(tmp_path, repo_root,
                                                    tools):
    data, split = str(tmp_path / 'cells'), str(tmp_path / 'split')
    make_synthetic_folders(data, {'neutrophil': 0, 'blast': 3,
                                  'monocyte': 2}, 4, size=32)
    tools.load('dataset_converters/split_all.py').main(
        [data, split, '--ratios', '2', '1', '1', '--ncc-thr', '0.95'])
    cfg = _copy(tmp_path, repo_root, data, split)
    assert cfg.model.head.num_classes == 3
    assert cfg.data_preprocessor.num_classes == 3
    assert cfg.test_evaluator[-1] == dict(
        type='BenignVsMalignant',
        groups=dict(healthy=['monocyte', 'neutrophil'], blast=['blast']))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = DATASETS.build(cfg.train_dataloader.dataset)
        model = MODELS.build(cfg.model)
    assert ds.metainfo['classes'] == ('blast', 'monocyte', 'neutrophil')
    assert type(model.backbone).__name__ == 'EfficientNetDSP'
    assert model.head.fc.out_features == 3
    assert type(model.head.loss_module).__name__ == 'PolyFocalLoss'

    # One line changed: EfficientNetV2-B0 with cross-entropy.
    cfg = _copy(tmp_path, repo_root, data, split, v2=True)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'EfficientNetV2'
    assert cfg.model.backbone == dict(type='EfficientNetV2', arch='b0')
    assert model.head.fc.out_features == 3
    assert type(model.head.loss_module).__name__ == 'CrossEntropyLoss'
