# Table 4 "base": EfficientNetDSP with every DSP piece off (SE attention as
# EfficientNetV2, no Dy-ODConv, no DyDropBlock, cross-entropy). Same
# state_dict as MMPretrain's EfficientNetV2(arch='s'), whose checkpoints it
# loads strictly. Each other row of table 4 adds one piece to this file.
_base_ = ['../effdsp_all.py']

model = dict(
    backbone=dict(
        attention_cfg=dict(type='SE'), dy_stages=(), dropblock_cfg=None),
    head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss')))
