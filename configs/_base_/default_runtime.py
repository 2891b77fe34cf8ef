_base_ = 'mmpretrain::_base_/default_runtime.py'

# Registers mmdsp's modules and applies its compatibility fixes, also when a
# config is used with MMPretrain's own tools instead of ours.
custom_imports = dict(imports=['mmdsp'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_best='accuracy/top1',
        rule='greater'),
)

vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

randomness = dict(seed=0, deterministic=False)

# Every input has the configured img_size, so cuDNN's autotuner picks each
# convolution's fastest algorithm once (no effect without CUDA; mmengine
# turns it off again under randomness.deterministic=True).
env_cfg = dict(cudnn_benchmark=True)

# Declared once for every config (mmengine replaces lists, so a config that
# sets its own custom_hooks must list them all again). Each hook that needs a
# brick (ODConv2d, a PolyFocalLoss with omega='auto') warns once and does
# nothing on a model without it.
# - ImgSizeHook: the root `img_size` for every Resize (datasets base);
# - NaNLossHook: stops on a non-finite loss before a bad checkpoint is written;
# - EpochSeedHook: reseeds every epoch, so `--resume` continues bit-exactly
#   (docs/reliability.md);
# - ClassFrequencyOmegaHook: omega of eq. 11 from the training labels;
# - ODConvTemperatureHook: ODConv's softmax temperature 30 -> 1 over the
#   first 10 epochs (docs/dynamic_conv.md);
# - TemperatureScalingHook: tools/test.py uses the temperature that
#   tools/analysis_tools/fit_temperature.py stored in a checkpoint.
custom_hooks = [
    dict(type='ImgSizeHook'),
    dict(type='NaNLossHook'),
    dict(type='EpochSeedHook'),
    dict(type='ClassFrequencyOmegaHook'),
    dict(type='ODConvTemperatureHook', start=30., end=1., warmup_epochs=10),
    dict(type='TemperatureScalingHook'),
]
