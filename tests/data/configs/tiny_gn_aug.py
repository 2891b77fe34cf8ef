# tiny_gn.py with randomness in every place a real run has it: random flips
# (numpy generator, in the data pipeline) and stochastic depth (torch
# generator, in the model), so that resume and determinism are tested on
# more than the sampler order.
_base_ = ['./tiny_gn.py']

model = dict(backbone=dict(drop_path_rate=0.3))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='RandomFlip',
         prob=[0.25, 0.25],
         direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
