# ResNet-34 (He et al. 2016), paper table 2, on the ALL data with the DSP
# pipeline and schedule. 21.80 M parameters with a 1000-class head.
_base_ = [
    'mmpretrain::_base_/models/resnet34.py',
    '../_base_/all_leukemia_100e.py',
]

# cal_acc logs the training accuracy that figure 8 plots.
model = dict(head=dict(num_classes=4, topk=(1, ), cal_acc=True))
