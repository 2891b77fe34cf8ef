# A model small enough to train in seconds on CPU, on any folder-per-class
# image tree (CustomDataset), through our tools and base configs.
_base_ = [
    '../../../configs/_base_/schedules/all_100e.py',
    '../../../configs/_base_/default_runtime.py',
]
data_root = '{{$MMDSP_TEST_DATA:missing_data_root}}'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet', depth=18, stem_channels=8, base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=2,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1, )),
)
data_preprocessor = dict(
    num_classes=2, mean=[128.] * 3, std=[64.] * 3, to_rgb=True)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
loader = dict(
    batch_size=4,
    num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
train_dataloader = loader
val_dataloader = dict(loader, sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.05))
train_cfg = dict(max_epochs=2)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
default_hooks = dict(logger=dict(interval=1))
