# MMPretrain's ImageNet EfficientNetV2-S (metafile
# efficientnetv2-s_in21k-pre_3rdparty_in1k: ImageNet-21k pre-trained,
# ImageNet-1k fine-tuned, top-1 84.29 %), as a backbone init_cfg: the
# classifier checkpoint's `backbone.` tensors (docs/pretrained.md).
efficientnetv2_s_in1k = dict(
    type='Pretrained',
    checkpoint='https://download.openmmlab.com/mmclassification/v0/'
    'efficientnetv2/efficientnetv2-s_in21k-pre-3rdparty_in1k_'
    '20221220-7a7c8475.pth',
    prefix='backbone.')
