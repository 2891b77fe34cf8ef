# Table 4 "+DyDropBlock": base + DyDropBlock, rate 0 -> 0.1 with depth (eq. 8).
_base_ = ['base_all.py']

model = dict(
    backbone=dict(
        dropblock_cfg=dict(
            _delete_=True, start=0., final=0.1, block_size=7)))
