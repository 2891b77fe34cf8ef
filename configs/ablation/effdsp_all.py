# Table 4 "本文方法": every piece on; the same model as configs/effdsp_all.py.
_base_ = ['../effdsp_all.py']
