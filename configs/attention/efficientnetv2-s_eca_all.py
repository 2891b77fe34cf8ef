# Table 3 "EfficientNetV2+ECA": EfficientNetV2-S with ECA in its MBConv blocks.
_base_ = ['../ablation/base_all.py']

model = dict(backbone=dict(attention_cfg=dict(_delete_=True, type='ECA')))
