# AlexNet, paper table 2. MMPretrain's AlexNet backbone keeps its own
# three-layer classifier (the torchvision layout, 61.10 M parameters with
# 1000 classes, as in the paper), so its output already is the class score
# and the head only adds the loss. It needs 224 x 224 inputs.
_base_ = ['../_base_/all_leukemia_100e.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(type='AlexNet', num_classes=4),
    neck=None,
    head=dict(
        type='ClsHead',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
        cal_acc=True),
)
