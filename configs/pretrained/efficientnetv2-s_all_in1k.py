# The EfficientNetV2-S baseline (configs/efficientnetv2-s_all.py) started from
# the same MMPretrain ImageNet checkpoint as effdsp_all_in1k.py: the whole
# backbone fits and is loaded, the head is new (4 classes). Same data, loss
# and schedule as the from-scratch run: docs/pretrained.md.
_base_ = [
    '../efficientnetv2-s_all.py', '../_base_/pretrained/efficientnetv2-s_in1k.py'
]

model = dict(backbone=dict(init_cfg={{_base_.efficientnetv2_s_in1k}}))
