# Your own images, any classes (docs/own_data.md). Copy this file anywhere,
# set the four lines under "Your data", and train:
#   python tools/dataset_converters/split_all.py DATA_ROOT SPLIT_DIR
#   python tools/train.py my_cells.py
# The dataset, num_classes (head and preprocessor), the PolyFocal omega (from
# your training-set class counts, ClassFrequencyOmegaHook) and the metrics
# follow from those lines.
_base_ = [
    # The model: EfficientNet-DSP (SAR, Dy-ODConv, DyDropBlock, PolyFocal
    # loss) at B0 size. For the EfficientNetV2-B0 baseline (cross-entropy),
    # replace this one line by
    #   'mmpretrain::_base_/models/efficientnet_v2/efficientnetv2_b0.py',
    'mmdsp::_base_/models/efficientnet_dsp_s.py',
    # The pipelines (flips only: on the ALL data the paper's background
    # removal, rotation and noise cost accuracy, docs/training.md), the
    # preprocessor and the metrics; the dataset is replaced below.
    'mmdsp::_base_/datasets/all_leukemia.py',
    'mmdsp::_base_/default_runtime.py',
]

# Your data.
data_root = 'data/my_cells'  # the folder holding one folder per class
split_dir = 'data/my_cells_splits'  # OUT_DIR of split_all.py
classes = ['Class A', 'Class B']  # as in split_dir/classes.txt, same order
# The clinical view (sensitivity, specificity, PPV, NPV of a group of
# classes) on the test set: two named groups, the finding second, e.g.
# dict(benign=['Class A'], malignant=['Class B']); None leaves it out.
clinical_groups = None

num_classes = len(classes)
img_size = 224

model = dict(
    backbone=dict(arch='b0'),
    head=dict(num_classes=num_classes, topk=(1, ), cal_acc=True))
data_preprocessor = dict(num_classes=num_classes)

# ClassFolderDataset refuses `classes` that differ from the split's
# classes.txt, so a reordered list cannot swap the labels' names.
dataset = dict(
    _delete_=True, type='ClassFolderDataset', data_root=data_root,
    classes=classes)
val_dataloader = dict(
    num_workers=2,
    dataset=dict(dataset, ann_file=f'{split_dir}/val.txt',
                 pipeline={{_base_.test_pipeline}}))
test_dataloader = dict(
    num_workers=2,
    dataset=dict(dataset, ann_file=f'{split_dir}/test.txt',
                 pipeline={{_base_.test_pipeline}}))
train_dataloader = dict(
    num_workers=2,
    dataset=dict(dataset, ann_file=f'{split_dir}/train.txt',
                 pipeline={{_base_.train_pipeline}}))

# The validation metrics of the base, and on the test set also these.
test_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(
        type='SingleLabelMetric',
        items=('precision', 'recall', 'f1-score'),
        average='macro'),
    dict(type='CalibrationMetric', n_bins=15),
    dict(type='AUROC'),
    dict(type='ConfusionMatrix'),
    dict(type='BootstrapCI'),
] + ([dict(type='BenignVsMalignant', groups=clinical_groups)]
     if clinical_groups else [])

# From scratch on a small data set: AdamW with a one-epoch warm-up and a
# cosine decay, as the demo (configs/demo/effdsp_synthetic.py).
epochs = 30
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
