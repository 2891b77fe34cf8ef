from .lab_kmeans import LabKMeansSegment  # noqa: F401
from .noise import RandomGaussianNoise  # noqa: F401
