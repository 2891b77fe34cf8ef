from .odconv_temperature_hook import ODConvTemperatureHook  # noqa: F401
from .dropblock_warmup_hook import DropBlockWarmupHook  # noqa: F401
