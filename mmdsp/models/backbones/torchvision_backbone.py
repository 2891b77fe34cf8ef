"""Torchvision classification models as MMPretrain backbones.

The paper's table 2 compares against GoogLeNet, which neither MMPretrain nor
timm provides. Torchvision does; rather than copying its code, we build the
torchvision model and cut it at chosen graph nodes with torchvision's own
feature-extraction utility, so the forward pass is exactly torchvision's.
"""
import copy
from typing import Dict, Optional, Sequence, Union

import torchvision
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torchvision.models.feature_extraction import (create_feature_extractor,
                                                   get_graph_node_names)

__all__ = ['TorchvisionBackbone', 'GoogLeNet']


def _has_node(model, name):
    """Whether ``name`` is a traced node or a module holding some.

    ``create_feature_extractor`` takes a module name (``'layer4'``) for the
    last operation inside that module, as well as exact node names.
    """
    train_nodes, eval_nodes = get_graph_node_names(model)
    return all(
        any(n == name or n.startswith(name + '.') for n in nodes)
        for nodes in (train_nodes, eval_nodes))


@MODELS.register_module()
class TorchvisionBackbone(BaseBackbone):
    """Any ``torchvision.models`` classifier, returning chosen feature maps.

    The model is built with ``weights=None`` (nothing is downloaded) and
    traced by :func:`torchvision.models.feature_extraction.
    create_feature_extractor`; only the modules needed up to the last
    requested node are kept, so the classifier of the torchvision model
    (pooling, dropout, fc) is dropped and its parameters are not counted.
    Training and eval mode are traced separately by torchvision, so modules
    that behave differently in training (dropout, auxiliary branches) keep
    their behaviour.

    Parameters keep torchvision's names under ``model.``: a torchvision
    checkpoint loads after prefixing its keys with ``backbone.model.``.

    Args:
        model_name (str): Name of a builder in ``torchvision.models``, e.g.
            ``'googlenet'`` or ``'resnet18'``.
        out_nodes (str | Sequence[str]): Graph node names whose outputs are
            returned, in this order: names from
            :func:`torchvision.models.feature_extraction.get_graph_node_names`
            or module names such as ``'layer4'``, meaning the output of the
            module's last operation.
        model_kwargs (dict, optional): Extra keyword arguments of the
            builder, e.g. ``dict(aux_logits=False)``. ``weights`` is refused:
            use ``init_cfg`` to load a checkpoint. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None, which keeps torchvision's own initialisation.
    """

    def __init__(self,
                 model_name: str,
                 out_nodes: Union[str, Sequence[str]],
                 model_kwargs: Optional[Dict] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        model_kwargs = dict(model_kwargs or {})
        if 'weights' in model_kwargs or 'pretrained' in model_kwargs:
            raise ValueError(
                f'{type(self).__name__}: model_kwargs must not set weights '
                'or pretrained (no downloads); load a checkpoint through '
                'init_cfg=dict(type="Pretrained", ...) instead')
        if model_name not in torchvision.models.list_models():
            raise KeyError(
                f'{type(self).__name__}: {model_name!r} is not a '
                'torchvision.models builder; see '
                'torchvision.models.list_models()')
        if isinstance(out_nodes, str):
            out_nodes = (out_nodes, )
        out_nodes = tuple(out_nodes)
        if not out_nodes or not all(isinstance(n, str) for n in out_nodes):
            raise TypeError(f'{type(self).__name__}: out_nodes must be a '
                            f'non-empty sequence of str, got {out_nodes!r}')

        model = torchvision.models.get_model(
            model_name, weights=None, **model_kwargs)
        unknown = [n for n in out_nodes if not _has_node(model, n)]
        if unknown:
            children = [name for name, _ in model.named_children()]
            raise KeyError(
                f'{type(self).__name__}: nodes {unknown} are not in the '
                f'graph of torchvision {model_name!r}; its top-level modules '
                f'are {children}')
        self.model_name = model_name
        self.out_nodes = out_nodes
        # Output keys are positions so that repeated nodes are allowed.
        self.model = create_feature_extractor(
            model, return_nodes={n: str(i)
                                 for i, n in enumerate(out_nodes)})

    def forward(self, x):
        outs = self.model(x)
        return tuple(outs[str(i)] for i in range(len(self.out_nodes)))


@MODELS.register_module()
class GoogLeNet(TorchvisionBackbone):
    """GoogLeNet (Inception v1, Szegedy et al. 2015), torchvision's version.

    Built as ``torchvision.models.googlenet(weights=None, aux_logits=False,
    init_weights=True)``, the model of the paper's table 2 (6.62 M
    parameters with the 1000-class classifier). Without ImageNet weights
    torchvision sets ``transform_input=False``, so inputs are normalised by
    the data preprocessor only.

    The stages are the outputs of the three inception groups:

    ======  ===============  ========  ======
    index   node             channels  stride
    ======  ===============  ========  ======
    0       ``inception3b``  480       8
    1       ``inception4e``  832       16
    2       ``inception5b``  1024      32
    ======  ===============  ========  ======

    Args:
        out_indices (Sequence[int] | int): Stages to return. Defaults to
            ``(2, )``, the final 1024-channel map that torchvision pools
            for its classifier.
        model_kwargs (dict, optional): Extra arguments of
            ``torchvision.models.googlenet`` (``aux_logits`` and
            ``init_weights`` default to False and True). Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """

    stage_nodes = ('inception3b', 'inception4e', 'inception5b')
    stage_channels = (480, 832, 1024)

    def __init__(self,
                 out_indices: Union[int, Sequence[int]] = (2, ),
                 model_kwargs: Optional[Dict] = None,
                 init_cfg=None):
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        num_stages = len(self.stage_nodes)
        out_indices = tuple(out_indices)
        for i in out_indices:
            if not isinstance(i, int) or not -num_stages <= i < num_stages:
                raise IndexError(
                    f'GoogLeNet: out_indices {out_indices} must be ints in '
                    f'[{-num_stages}, {num_stages})')
        out_indices = tuple(i % num_stages for i in out_indices)
        kwargs = dict(aux_logits=False, init_weights=True)
        kwargs.update(copy.deepcopy(model_kwargs or {}))
        super().__init__(
            'googlenet',
            out_nodes=[self.stage_nodes[i] for i in out_indices],
            model_kwargs=kwargs,
            init_cfg=init_cfg)
        self.out_indices = out_indices
