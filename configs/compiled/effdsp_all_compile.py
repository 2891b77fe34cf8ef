# EfficientNet-DSP on the ALL dataset (configs/effdsp_all.py), trained under
# torch.compile: mmengine's Runner compiles `model.train_step` with these
# options (`compile=True` takes torch.compile's defaults). The DSP bricks
# switch to plain, batch-independent ops while compiled (docs/speed.md), so
# the backbone is one graph without breaks; the first iterations compile
# (minutes on a small CPU), a partial last batch recompiles once with a
# dynamic batch. Validation and test run eagerly (mmengine compiles only
# train_step).
#   python tools/train.py configs/compiled/effdsp_all_compile.py
# On a CPU with more than one thread, torch 2.14.1's inductor crashes
# (SIGSEGV) in DSP-S's compiled backward: train compiled on a GPU, or with
# OMP_NUM_THREADS=1 (docs/speed.md, "Compiled").
_base_ = '../effdsp_all.py'

compile = dict(backend='inductor')
