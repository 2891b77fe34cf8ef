from .plugin_wrapper import PluginBackbone  # noqa: F401
from .efficientnet_dsp import EfficientNetDSP  # noqa: F401
from .torchvision_backbone import GoogLeNet, TorchvisionBackbone  # noqa: F401
