"""Inference for users: model loading, the predictor, Grad-CAM, CSV."""
from .csv_io import write_csv
from .gradcam import GradCAM, overlay_cam, resolve_layer
from .inference import (class_names, collect_outputs, init_classifier,
                        load_classifier, model_outputs)
from .inputs import IMG_EXTENSIONS, collect_inputs
from .predictor import Predictor, describe_error, predict
from .stage_features import StageStatistics, stage_modules

__all__ = [
    'GradCAM', 'IMG_EXTENSIONS', 'Predictor', 'StageStatistics',
    'class_names',
    'collect_inputs', 'collect_outputs', 'describe_error', 'init_classifier',
    'load_classifier', 'model_outputs', 'overlay_cam', 'predict',
    'resolve_layer', 'stage_modules', 'write_csv'
]
