# ResNet-34 with a SAR brick (paper section 3.2, eqs. 3-7) after every
# residual block, trained on the ALL dataset with the paper's schedule.
# SAR follows each block's output, as SE follows every block in SE-ResNet;
# 64 groups divide all four ResNet-34 widths (64, 128, 256, 512).
#
# PluginBackbone keeps the ResNet keys under `backbone.backbone.` of the
# classifier; to start from ImageNet weights add to the inner backbone:
#   init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')
_base_ = [
    'mmpretrain::_base_/models/resnet34.py',
    '../_base_/all_leukemia_100e.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='PluginBackbone',
        backbone=dict(
            type='ResNet',
            depth=34,
            num_stages=4,
            out_indices=(3, ),
            style='pytorch'),
        plugins=[
            dict(
                cfg=dict(type='SAR', groups=64),
                stages=(0, 1, 2, 3),
                position='after_block'),
        ]),
    head=dict(num_classes=4, topk=(1, )),
)
