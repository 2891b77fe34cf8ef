# tiny_resnet.py without BatchNorm, for the reliability tests
# (tests/test_tools/): GroupNorm normalises each sample on its own, so a run
# on 2 processes x batch 2 computes the same function as 1 process x batch 4
# (BN statistics would differ per process; SyncBN needs CUDA). The pipeline
# has no random transform, for the same reason.
_base_ = ['./tiny_resnet.py']

model = dict(backbone=dict(num_stages=2,
                           strides=(1, 2),
                           dilations=(1, 1),
                           out_indices=(1, ),
                           norm_cfg=dict(type='GN', num_groups=4)),
             head=dict(in_channels=16))
randomness = dict(seed=0, deterministic=True)
custom_hooks = [dict(type='NaNLossHook'), dict(type='EpochSeedHook')]
