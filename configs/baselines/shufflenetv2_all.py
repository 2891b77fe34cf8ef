# ShuffleNetV2 (Ma et al. 2018), paper table 2. Its 1.37 M parameters and
# 0.04 GFLOPs are those of the x0.5 width (x1.0 has 2.28 M).
_base_ = [
    'mmpretrain::_base_/models/shufflenet_v2_1x.py',
    '../_base_/all_leukemia_100e.py',
]

model = dict(
    backbone=dict(widen_factor=0.5),
    head=dict(num_classes=4, topk=(1, ), cal_acc=True))
