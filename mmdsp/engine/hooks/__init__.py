from .class_frequency_omega_hook import ClassFrequencyOmegaHook  # noqa: F401
from .odconv_temperature_hook import ODConvTemperatureHook  # noqa: F401
from .dropblock_warmup_hook import DropBlockWarmupHook  # noqa: F401
from .nan_loss_hook import NaNLossHook, NonFiniteLossError  # noqa: F401
from .epoch_seed_hook import EpochSeedHook  # noqa: F401
from .img_size_hook import ImgSizeHook  # noqa: F401
from .temperature_scaling_hook import TemperatureScalingHook  # noqa: F401
