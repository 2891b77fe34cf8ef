# EfficientNet-DSP with the paper's data recipe (background removal, rotation,
# noise) instead of the default flips-only one: the recipe study's `paper`
# variant (docs/experiments.md section 8).
_base_ = ['../effdsp_all.py']

train_dataloader = dict(dataset=dict(pipeline={{_base_.paper_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.paper_test_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.paper_test_pipeline}}))
