# EfficientNetV2-S (Tan & Le 2021), the "EfficientNetV2" row of paper
# table 2 (= "base" of table 4 and "+SE" of table 3): MMPretrain's model,
# 21.46 M parameters with a 1000-class head.
_base_ = [
    'mmpretrain::_base_/models/efficientnet_v2/efficientnetv2_s.py',
    '../_base_/all_leukemia_100e.py',
]

model = dict(head=dict(num_classes=4, topk=(1, ), cal_acc=True))
