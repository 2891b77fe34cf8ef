from .poly_focal_loss import PolyFocalLoss, class_frequency_omega  # noqa: F401
