# EfficientNet-B0 (Tan & Le 2019), the "EfficientNet" row of paper table 2;
# 5.29 M parameters with a 1000-class head.
_base_ = [
    'mmpretrain::_base_/models/efficientnet_b0.py',
    '../_base_/all_leukemia_100e.py',
]

model = dict(head=dict(num_classes=4, topk=(1, ), cal_acc=True))
