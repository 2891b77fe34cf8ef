# Everything of the paper's setup but the model: the ALL data with its
# leak-free 7:2:1 split, lr 0.01 for 100 epochs, and mmdsp's runtime (hooks,
# checkpoints, logging). Every table row inherits it with its model.
_base_ = [
    'datasets/all_leukemia.py',
    'schedules/all_100e.py',
    'default_runtime.py',
]
