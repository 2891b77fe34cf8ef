from .predict import (GradCAM, Predictor, collect_inputs, init_classifier,
                      overlay_cam, predict, write_csv)

__all__ = [
    'GradCAM', 'Predictor', 'collect_inputs', 'init_classifier', 'overlay_cam',
    'predict', 'write_csv'
]
