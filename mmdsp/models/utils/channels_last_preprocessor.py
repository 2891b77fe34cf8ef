import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS


@MODELS.register_module()
class ChannelsLastPreprocessor(ClsDataPreprocessor):
    """MMPretrain's ClsDataPreprocessor, with the batch in channels_last.

    Convolutions follow the memory format of their input, so an NHWC batch
    runs the whole network on the NHWC kernels that tensor cores prefer
    (mixed precision on GPUs). Unlike converting the model, it needs no
    change to the weights and so leaves DDP's gradient buckets alone.
    Takes the same arguments as :class:`ClsDataPreprocessor`.
    """

    def forward(self, data, training=False):
        data = super().forward(data, training)
        data['inputs'] = data['inputs'].contiguous(
            memory_format=torch.channels_last)
        return data
