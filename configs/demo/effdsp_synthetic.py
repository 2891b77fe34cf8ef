# The embedded default (`make demo`): EfficientNet-DSP with all its bricks, at
# EfficientNetV2-B0 size and 64 px so that it trains in about two minutes on a
# 2-core CPU, on the smears drawn by tools/dataset_converters/
# make_synthetic_all.py. Pipelines (segmentation, augmentation), loss, hooks
# and metrics are the paper's, inherited from configs/effdsp_all.py.
_base_ = ['../effdsp_all.py']

data_root = '{{$MMDSP_DEMO_DATA:data/synthetic_all}}'
img_size = 64

model = dict(backbone=dict(arch='b0'))

train_dataloader = dict(
    batch_size=32, dataset=dict(data_root=data_root, ann_file='train.txt'))
val_dataloader = dict(
    batch_size=64, dataset=dict(data_root=data_root, ann_file='val.txt'))
test_dataloader = dict(
    batch_size=64, dataset=dict(data_root=data_root, ann_file='test.txt'))

# A short schedule from scratch: AdamW gets going in a few epochs, where the
# paper's SGD (lr 0.01, 100 epochs) stays near chance in this budget.
epochs = 12
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05))
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
train_cfg = dict(max_epochs=epochs)
# The runtime base's hooks, with the ODConv temperature annealed over the
# first 3 of the 12 epochs instead of 10.
custom_hooks = [
    dict(type='ImgSizeHook'),
    dict(type='NaNLossHook'),
    dict(type='EpochSeedHook'),
    dict(type='ClassFrequencyOmegaHook'),
    dict(type='ODConvTemperatureHook', start=30., end=1., warmup_epochs=3),
    dict(type='TemperatureScalingHook'),
]
default_hooks = dict(logger=dict(interval=5))
