# ResNet-34 whose convolutions are ODConv2d (paper section 3.4), trained on
# the ALL dataset with the paper's schedule. ResNet passes `conv_cfg` to every
# conv it builds: the 3x3 convs of the basic blocks, and also the 7x7 stem
# and the 1x1 downsample shortcuts.
_base_ = [
    'mmpretrain::_base_/models/resnet34.py',
    '../_base_/all_leukemia_100e.py',
]

model = dict(
    backbone=dict(conv_cfg=dict(type='ODConv2d')),
    head=dict(num_classes=4, topk=(1, )),
)
