# EfficientNet-DSP on the ALL dataset: paper table 2 "本文方法" and the last
# row of table 4. Train: python tools/train.py configs/effdsp_all.py
_base_ = [
    '_base_/models/efficientnet_dsp_s.py',
    '_base_/all_leukemia_100e.py',
]
