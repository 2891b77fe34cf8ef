# Table 3 "EfficientNetV2+SAR": the same model as table 4 "+SAR".
_base_ = ['../ablation/sar_all.py']
