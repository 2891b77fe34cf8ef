# A quick real-data run for a 2-core CPU (`make quick-real`, about 22 min):
# EfficientNet-DSP with all its bricks (SAR, Dy-ODConv, DyDropBlock, PolyFocal
# loss) at EfficientNetV2-B0 size and 128 px, 16 epochs, on the leak-free
# split, with the default pipeline of the dataset base (flips only).
_base_ = ['../effdsp_all.py']

img_size = 128
model = dict(backbone=dict(arch='b0'))

epochs = 16
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs,
         eta_min=1e-5),
]
train_cfg = dict(max_epochs=epochs)
