# GoogLeNet (Inception v1), paper table 2. Neither MMPretrain nor timm has
# it: mmdsp's GoogLeNet backbone wraps torchvision's
# googlenet(weights=None, aux_logits=False, init_weights=True); 6.62 M
# parameters with a 1000-class head. Torchvision's dropout (p=0.2) before
# its fc is not part of LinearClsHead and is left out.
_base_ = ['../_base_/all_leukemia_100e.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(type='GoogLeNet', out_indices=(2, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
        cal_acc=True),
)
