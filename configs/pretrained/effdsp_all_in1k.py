# EfficientNet-DSP (configs/effdsp_all.py) started from MMPretrain's ImageNet
# EfficientNetV2-S. Every backbone tensor whose key and shape fit is loaded:
# the stem, stage 1, the convs and BNs of the MBConv stages 4-6 and the final
# conv, 95 % of the backbone's parameters. The Dy-MBConv stages 2-3
# (Fused-MBConv in the checkpoint) and SAR keep their own initialisation and
# are named in the log; the head is new (4 classes): docs/pretrained.md. Same
# data, loss and schedule as the from-scratch run, so the start is the only
# difference.
_base_ = ['../effdsp_all.py', '../_base_/pretrained/efficientnetv2-s_in1k.py']

model = dict(backbone=dict(init_cfg={{_base_.efficientnetv2_s_in1k}}))
