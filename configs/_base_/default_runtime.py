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

# NaNLossHook stops on a non-finite loss before a bad checkpoint is written;
# EpochSeedHook reseeds every epoch so `--resume` continues bit-exactly
# (docs/reliability.md). A config that sets its own custom_hooks must list
# them again: mmengine replaces lists instead of merging them.
custom_hooks = [dict(type='NaNLossHook'), dict(type='EpochSeedHook')]
