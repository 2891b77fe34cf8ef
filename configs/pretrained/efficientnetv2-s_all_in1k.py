# The EfficientNetV2-S baseline (configs/efficientnetv2-s_all.py) started from
# the same MMPretrain ImageNet checkpoint as configs/pretrained/
# effdsp_all_in1k.py (ImageNet-21k pre-trained, ImageNet-1k fine-tuned, top-1
# 84.29 %): the whole backbone fits and is loaded, the head is new (4 classes).
# Same data, loss and schedule as the from-scratch run: docs/pretrained.md.
_base_ = ['../efficientnetv2-s_all.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'efficientnetv2/efficientnetv2-s_in21k-pre-3rdparty_in1k_'
            '20221220-7a7c8475.pth',
            prefix='backbone.')))
