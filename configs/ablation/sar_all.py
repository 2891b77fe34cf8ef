# Table 4 "+SAR" (= table 3 "EfficientNetV2+SAR"): base with SAR for SE.
_base_ = ['base_all.py']

model = dict(backbone=dict(attention_cfg=dict(_delete_=True, type='SAR')))
