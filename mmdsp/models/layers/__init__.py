from ._impl import get_impl, set_impl, use_impl  # noqa: F401
from .dyodconv import DyODConv  # noqa: F401
from .dyrelu import DyReLU  # noqa: F401
from .odconv import ODConv2d  # noqa: F401
from .attention import CBAM, ECA, SE  # noqa: F401
from .dydropblock import DyDropBlock, depth_schedule  # noqa: F401
from .sar import SAR  # noqa: F401
from .swish import MemoryEfficientSwish  # noqa: F401
from .folded_conv_module import FoldedConvModule, fold_bn_act  # noqa: F401
