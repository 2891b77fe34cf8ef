# Paper section 4.3: lr 0.01, batch 32, 100 epochs. It names no optimizer or
# lr schedule; SGD with momentum and a cosine decay after a short warm-up is
# MMPretrain's usual choice for these learning rates (docs/training.md).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=3,
        end=100,
        eta_min=1e-5),
]

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr 0.01 belongs to a total batch of 32 (GPUs x batch_size). With another
# total batch, `--auto-scale-lr` applies the linear scaling rule,
# lr = 0.01 x total / 32 (e.g. 8 GPUs x 32 images: lr 0.08).
auto_scale_lr = dict(base_batch_size=32)
