from . import transforms  # noqa: F401
from .blood_cells_all import BloodCellsALL  # noqa: F401
from .class_folder_dataset import ClassFolderDataset  # noqa: F401
from .synthetic import make_synthetic_all  # noqa: F401
