from . import backbones, layers, losses, utils  # noqa: F401
