from .auroc import AUROC
from .bootstrap import BootstrapCI
from .calibration import CalibrationMetric
from .clinical import BenignVsMalignant
from .score_label import ScoreLabelMetric

__all__ = [
    'AUROC', 'BenignVsMalignant', 'BootstrapCI', 'CalibrationMetric',
    'ScoreLabelMetric'
]
