# Table 3 "EfficientNetV2+SE": EfficientNetV2-S with SE in its MBConv blocks.
_base_ = ['../ablation/base_all.py']

# The SE row is the base model itself (EfficientNetV2-S has SE).
model = dict(backbone=dict(attention_cfg=dict(type='SE')))
