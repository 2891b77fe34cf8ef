# Table 3 "EfficientNetV2+CBAM": EfficientNetV2-S with CBAM in its MBConv blocks.
_base_ = ['../ablation/base_all.py']

model = dict(backbone=dict(attention_cfg=dict(_delete_=True, type='CBAM')))
