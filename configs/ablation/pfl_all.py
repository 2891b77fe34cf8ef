# Table 4 "+PFL": base + PolyFocal loss (eq. 11, class-frequency omega).
_base_ = ['base_all.py']

model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='PolyFocalLoss', gamma=2.0, omega='auto')))
