# The baseline: MMPretrain's EfficientNetV2-S with cross-entropy, on the same
# data, pipeline and schedule as configs/effdsp_all.py (paper table 2).
_base_ = ['baselines/efficientnetv2-s_all.py']
