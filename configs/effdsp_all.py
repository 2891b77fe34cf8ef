# EfficientNet-DSP on the ALL dataset: paper table 2 "本文方法" and the last
# row of table 4. Train: python tools/train.py configs/effdsp_all.py
_base_ = [
    '_base_/models/efficientnet_dsp_s.py',
    '_base_/datasets/all_leukemia.py',
    '_base_/schedules/all_100e.py',
    '_base_/default_runtime.py',
]

# ClassFrequencyOmegaHook fills omega='auto' when training starts; the
# ODConv softmax temperature anneals 30 -> 1 over the first 10 epochs.
custom_hooks = [
    dict(type='NaNLossHook'),
    dict(type='EpochSeedHook'),
    dict(type='ClassFrequencyOmegaHook'),
    dict(type='ODConvTemperatureHook', start=30., end=1., warmup_epochs=10),
]
