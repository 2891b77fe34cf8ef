"""Mix mmdsp bricks into any stage-structured MMPretrain backbone by config."""
import copy
import inspect

import torch
import torch.nn as nn
from mmcv.cnn import build_plugin_layer
from mmengine.registry import MODELS as ROOT_MODELS
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS

from ...utils.checks import is_int

_POSITIONS = ('after_block', 'after_stage')
_PLUGIN_KEYS = {'cfg', 'stages', 'blocks', 'position'}
_STAGE_ATTRS = ('res_layers', 'layers', 'stages')


class _PluginChain(nn.Sequential):
    """The plugins inserted after one block, applied in config order.

    It is attached to the block as a forward hook through a bound method, so
    ``copy.deepcopy`` of the owning model (EMA, SWA) rebinds the hook to the
    copied chain instead of the original one.
    """

    def forward_hook(self, module, args, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f'PluginBackbone: {type(module).__name__} returned '
                f'{type(output).__name__}; plugins need a tensor output')
        return self(output)


def _as_index_tuple(value, key, i):
    if value is None:
        return None
    if is_int(value):
        value = (value, )
    if not isinstance(value, (tuple, list)) or not all(map(is_int, value)):
        raise TypeError(f'PluginBackbone: plugins[{i}].{key} must be None, '
                        f'an int or a sequence of ints, got {value!r}')
    return tuple(int(v) for v in value)


@MODELS.register_module()
class PluginBackbone(BaseBackbone):
    """Wrap a backbone and insert plugin bricks after chosen blocks.

    The inner backbone is built unchanged; each plugin is attached to its
    block as a forward hook, so the block's output passes through the
    plugin before reaching the next block. Nothing is inserted into the
    backbone's own ``nn.Sequential`` stages, which keeps their indices and
    therefore every state_dict key of the inner backbone.

    A backbone qualifies when it lists its stages in one of the attributes
    ``res_layers`` / ``layers`` (names of child modules, as ResNet and
    MobileNetV2 do) or ``stages`` / ``layers`` (an ``nn.ModuleList``, as
    ConvNeXt and EfficientNet do). A stage that is an ``nn.Sequential`` is a
    sequence of blocks; any other stage module counts as one block.

    The channels of each chosen block are found by one dummy forward pass in
    eval mode without gradients (so BatchNorm statistics are untouched), and
    are passed as ``in_channels`` to every plugin whose constructor has that
    parameter (SAR, SE, ECA, CBAM, ...); others (e.g. DyDropBlock) get only
    their own config.

    State dict layout: the inner backbone's keys appear under ``backbone.``
    (e.g. ``backbone.layer1.0.conv1.weight``), the plugins' under
    ``plugins.<stage>_<block>.<name>`` (e.g.
    ``plugins.layer3_0.sar0.conv_h.weight``). To start from a plain backbone
    checkpoint, put ``init_cfg=dict(type='Pretrained', checkpoint=...,
    prefix='backbone.')`` in the inner ``backbone`` dict.

    Args:
        backbone (dict | nn.Module): Config (built with MMPretrain's
            ``MODELS``) or instance of the backbone to wrap.
        plugins (list[dict]): One dict per plugin with keys

            - cfg (dict): Plugin config with ``type``, built by
              :func:`mmcv.cnn.build_plugin_layer`.
            - stages (int | Sequence[int], optional): 0-based stage indices
              in the order of the stage attribute. None (default) means all.
            - blocks (int | Sequence[int], optional): Block indices within
              each chosen stage, negatives counted from the end. None
              (default) means all blocks. Only for ``after_block``.
            - position (str): ``'after_block'`` (default) or
              ``'after_stage'`` (after the last block of the stage).
        stage_attr (str, optional): Name of the attribute that lists the
            stages. Defaults to None, meaning the first of ``res_layers``,
            ``layers``, ``stages`` that the backbone has.
        in_channels (int): Input channels of the dummy forward pass.
            Defaults to 3.
        dummy_size (int): Side of the square dummy input. Defaults to 64,
            enough for stride-32 backbones.
        init_cfg (dict | list[dict], optional): Initialization config of the
            wrapper. Defaults to None; the inner backbone keeps its own.
    """

    def __init__(self,
                 backbone,
                 plugins,
                 stage_attr=None,
                 in_channels=3,
                 dummy_size=64,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(backbone, dict):
            backbone = MODELS.build(backbone)
        if not isinstance(backbone, nn.Module):
            raise TypeError('PluginBackbone: backbone must be a config dict '
                            f'or an nn.Module, got {type(backbone).__name__}')
        self.backbone = backbone
        if not isinstance(plugins, (list, tuple)) or not plugins:
            raise ValueError('PluginBackbone: plugins must be a non-empty '
                             f'list of dicts, got {plugins!r}')

        stages = self._find_stages(stage_attr)
        targets = self._resolve_targets(plugins, stages)
        channels = self._infer_channels(
            [stages[s][1][b] for s, b in targets], in_channels, dummy_size)

        self.plugins = nn.ModuleDict()
        for (s, b), specs in targets.items():
            block = stages[s][1][b]
            chain = _PluginChain()
            for i, cfg in specs:
                name, layer = self._build_plugin(cfg, i, channels[id(block)])
                chain.add_module(name, layer)
            self.plugins[f'{stages[s][0]}_{b}'] = chain
            block.register_forward_hook(chain.forward_hook)

    def _find_stages(self, stage_attr):
        """Return ``[(key_name, [block, ...]), ...]`` in stage order."""
        attrs = (stage_attr, ) if stage_attr else _STAGE_ATTRS
        bb_name = type(self.backbone).__name__
        for attr in attrs:
            value = getattr(self.backbone, attr, None)
            if value is None:
                continue
            if isinstance(value, (list, tuple)) and value and all(
                    isinstance(v, str) for v in value):
                named = [(v, getattr(self.backbone, v)) for v in value]
            elif isinstance(value, (nn.ModuleList, nn.Sequential)):
                named = [(f'{attr}{i}', m) for i, m in enumerate(value)]
            else:
                continue
            return [(name.replace('.', '_'),
                     list(m) if isinstance(m, nn.Sequential) else [m])
                    for name, m in named]
        raise ValueError(
            f'PluginBackbone: cannot find the stages of {bb_name}; expected '
            f'one of the attributes {attrs} to be a list of child-module '
            'names or an nn.ModuleList (set stage_attr)')

    @staticmethod
    def _resolve_targets(plugins, stages):
        """Map ``(stage, block)`` to ``[(plugin_index, cfg), ...]``."""
        targets = {}
        for i, spec in enumerate(plugins):
            if not isinstance(spec, dict) or 'cfg' not in spec:
                raise KeyError(f'PluginBackbone: plugins[{i}] must be a dict '
                               f'with a "cfg" key, got {spec!r}')
            unknown = set(spec) - _PLUGIN_KEYS
            if unknown:
                raise KeyError(f'PluginBackbone: plugins[{i}] has unknown '
                               f'keys {sorted(unknown)}; allowed: '
                               f'{sorted(_PLUGIN_KEYS)}')
            position = spec.get('position', 'after_block')
            if position not in _POSITIONS:
                raise ValueError(f'PluginBackbone: plugins[{i}].position must '
                                 f'be one of {_POSITIONS}, got {position!r}')
            stage_ids = _as_index_tuple(spec.get('stages'), 'stages', i)
            block_ids = _as_index_tuple(spec.get('blocks'), 'blocks', i)
            if position == 'after_stage':
                if block_ids is not None:
                    raise ValueError(f'PluginBackbone: plugins[{i}] sets '
                                     'blocks with position="after_stage"')
                block_ids = (-1, )
            if stage_ids is None:
                stage_ids = tuple(range(len(stages)))
            for s in stage_ids:
                if not 0 <= s < len(stages):
                    raise IndexError(
                        f'PluginBackbone: plugins[{i}].stages has {s}, but '
                        f'the backbone has {len(stages)} stages')
                n_blocks = len(stages[s][1])
                ids = range(n_blocks) if block_ids is None else block_ids
                for b in ids:
                    if not -n_blocks <= b < n_blocks:
                        raise IndexError(
                            f'PluginBackbone: plugins[{i}].blocks has {b}, '
                            f'but stage {s} has {n_blocks} blocks')
                    targets.setdefault((s, b % n_blocks), []).append(
                        (i, spec['cfg']))
        return dict(sorted(targets.items()))

    def _infer_channels(self, blocks, in_channels, dummy_size):
        """Output channels of each block, keyed by ``id(block)``."""
        channels = {}

        def record(module, args, output):
            if not isinstance(output, torch.Tensor) or output.dim() < 2:
                raise TypeError(
                    f'PluginBackbone: cannot plug after '
                    f'{type(module).__name__}: its output is not an '
                    f'(N, C, ...) tensor')
            channels[id(module)] = output.shape[1]

        handles = [b.register_forward_hook(record) for b in blocks]
        param = next(self.backbone.parameters(), None)
        kwargs = {} if param is None else dict(
            device=param.device, dtype=param.dtype)
        was_training = self.backbone.training
        try:
            self.backbone.eval()
            with torch.no_grad():
                self.backbone(
                    torch.zeros(1, in_channels, dummy_size, dummy_size,
                                **kwargs))
        finally:
            for h in handles:
                h.remove()
            self.backbone.train(was_training)
        missing = [type(b).__name__ for b in blocks if id(b) not in channels]
        if missing:
            raise RuntimeError(
                f'PluginBackbone: blocks {missing} of '
                f'{type(self.backbone).__name__} were not run by its '
                'forward, so no plugin can follow them')
        return channels

    @staticmethod
    def _build_plugin(cfg, index, channels):
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise KeyError(f'PluginBackbone: plugins[{index}].cfg must be a '
                           f'dict with a "type" key, got {cfg!r}')
        cfg = copy.deepcopy(cfg)
        layer_type = cfg['type']
        if inspect.isclass(layer_type):
            cls = layer_type
        else:
            # Same lookup as build_plugin_layer: the current default scope
            # first, then mmengine's root registry.
            with ROOT_MODELS.switch_scope_and_registry(None) as registry:
                cls = registry.get(layer_type)
            if cls is None:
                raise KeyError(f'PluginBackbone: plugins[{index}].cfg type '
                               f'{layer_type!r} is not registered')
        params = inspect.signature(cls).parameters
        kwargs = {}
        if 'in_channels' in params and 'in_channels' not in cfg:
            kwargs['in_channels'] = channels
        return build_plugin_layer(cfg, postfix=index, **kwargs)

    def train(self, mode=True):
        # nn.Module.train reaches the inner backbone's own train(), which
        # applies its frozen_stages / norm_eval; BaseBackbone.train returns
        # None, so return self here to keep `model.eval()` chainable.
        super().train(mode)
        return self

    def forward(self, x):
        return self.backbone(x)
