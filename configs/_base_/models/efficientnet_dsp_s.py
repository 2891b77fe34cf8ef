# EfficientNet-DSP (paper section 3, figure 2; layout in docs/architecture.md):
# EfficientNetV2-S with Dy-MBConv (Dy-ODConv depthwise conv) in the two
# Fused-MBConv stages 2-3, SAR in place of SE in the MBConv stages 4-6, and
# DyDropBlock on every block, its rate rising with depth (eq. 8) to 0.1.
# 17.63 M parameters with a 1000-class head (paper table 2: 17.63 M).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='EfficientNetDSP',
        arch='s',
        attention_cfg=dict(type='SAR'),
        dy_stages=(2, 3),
        dy_cfg=dict(kernel_num=4),
        dropblock_cfg=dict(start=0., final=0.1, block_size=7),
        # EfficientNetV2's Swish, keeping half the activations for the
        # backward (same outputs and gradients; docs/gpu.md).
        act_cfg=dict(type='MemoryEfficientSwish')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=1280,
        # Eq. 11 with omega from the training set's class counts.
        loss=dict(type='PolyFocalLoss', gamma=2.0, omega='auto'),
        topk=(1, ),
        cal_acc=True),
)

