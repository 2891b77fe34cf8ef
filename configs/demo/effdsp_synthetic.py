# The embedded default (`make demo`): EfficientNet-DSP, at EfficientNetV2-B0
# size and 96 px so it trains in minutes on a CPU, on the synthetic smears
# drawn by tools/dataset_converters/make_synthetic_all.py. Everything else
# (SAR, Dy-ODConv, DyDropBlock, PolyFocal loss, segmentation, augmentation,
# hooks, metrics) is the paper's configs/effdsp_all.py.
_base_ = ['../effdsp_all.py']

data_root = '{{$MMDSP_DEMO_DATA:data/synthetic_all}}'
img_size = 96

model = dict(backbone=dict(arch='b0'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LabKMeansSegment'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(
        type='RandomFlip',
        prob=[0.25, 0.25],
        direction=['horizontal', 'vertical']),
    dict(
        type='Rotate',
        magnitude_level=10,
        magnitude_range=(0, 180),
        magnitude_std='inf',
        pad_val=0,
        prob=0.5),
    dict(type='RandomGaussianNoise', prob=0.5, std=(0., 10.)),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LabKMeansSegment'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        data_root=data_root, ann_file='train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        data_root=data_root, ann_file='val.txt', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        data_root=data_root, ann_file='test.txt', pipeline=test_pipeline))

# A short schedule from scratch on 224 training images: AdamW gets going in a
# dozen epochs, where the paper's SGD (lr 0.01, 100 epochs) stays near chance.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=2, end=15),
]
train_cfg = dict(max_epochs=15)
custom_hooks = [
    dict(type='NaNLossHook'),
    dict(type='EpochSeedHook'),
    dict(type='ClassFrequencyOmegaHook'),
    dict(type='ODConvTemperatureHook', start=30., end=1., warmup_epochs=3),
]
default_hooks = dict(logger=dict(interval=5))
