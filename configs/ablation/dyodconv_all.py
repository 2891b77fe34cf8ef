# Table 4 "+Dy-ODConv": base + Dy-MBConv (ODConv + DyReLU) in stages 2-3.
_base_ = ['base_all.py']

model = dict(backbone=dict(dy_stages=(2, 3), dy_cfg=dict(kernel_num=4)))
