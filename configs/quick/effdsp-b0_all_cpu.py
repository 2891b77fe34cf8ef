# A quick real-data run for a 2-core CPU (`make quick-real`, about 25 min):
# EfficientNet-DSP with all its bricks (SAR, Dy-ODConv, DyDropBlock, PolyFocal
# loss) at EfficientNetV2-B0 size and 128 px, 16 epochs, on the leak-free
# split. The pipeline is the plain one: flips only, no online segmentation
# and no rotation or noise (docs/training.md says why).
_base_ = ['../effdsp_all.py']

img_size = 128
model = dict(backbone=dict(arch='b0'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='RandomFlip', prob=[0.25, 0.25],
         direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

epochs = 16
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs,
         eta_min=1e-5),
]
train_cfg = dict(max_epochs=epochs)
