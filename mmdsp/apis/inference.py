"""Building a trained classifier and running it to logits and features."""
import contextlib
import copy
import os.path as osp
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

import mmdsp  # noqa: F401  (registers modules, applies mmdsp.compat)
from mmdsp.datasets.img_size import apply_img_size
from mmdsp.utils.mmpretrain_tools import fix_dataloaders
from mmdsp.evaluation import apply_temperature, read_calibration


def class_names(cfg: Config, dataset_meta: dict,
                num_classes: Optional[int]) -> List[str]:
    """Class names: checkpoint ``dataset_meta``, config dataset, indices."""
    classes = dataset_meta.get('classes') if dataset_meta else None
    if not classes:
        ds = cfg.get('test_dataloader', {}).get('dataset', {})
        classes = (ds.get('metainfo') or {}).get('classes')
        if not classes and ds.get('type'):
            from mmpretrain.registry import DATASETS
            ds_cls = DATASETS.get(ds['type'])
            classes = getattr(ds_cls, 'METAINFO', {}).get('classes')
    if not classes:
        if num_classes is None:
            raise ValueError('Cannot tell the class names: the checkpoint '
                             'has no dataset_meta and the config no classes.')
        classes = [f'class_{i}' for i in range(num_classes)]
    return list(classes)


def load_classifier(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    device: Optional[str] = None,
                    calibrated: bool = True):
    """:func:`init_classifier`, plus the checkpoint's calibration entry.

    Returns:
        tuple: ``(model, cfg, classes, calibration)``; ``calibration`` is
        :func:`mmdsp.evaluation.read_calibration` of the checkpoint's meta
        (temperature 1.0 and no thresholds when it has none).
    """
    cfg = copy.deepcopy(config) if isinstance(config, Config) \
        else Config.fromfile(config)
    # The pipelines and loaders this returns are what our tools/train.py and
    # tools/test.py would run: one input size, loaders fitted to the machine.
    fix_dataloaders(apply_img_size(cfg))
    from mmpretrain.registry import MODELS
    if 'model' not in cfg:
        raise KeyError(f'Config {cfg.filename} has no `model`.')
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor',
                                                      None))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    meta = {}
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'Checkpoint {checkpoint} not found.')
        try:
            ckpt = load_checkpoint(model,
                                   checkpoint,
                                   map_location='cpu',
                                   strict=True,
                                   logger='silent')
        except RuntimeError as e:
            raise RuntimeError(f'Checkpoint {checkpoint} does not match the '
                               f'model of the config: {e}') from None
        meta = ckpt.get('meta') or {}
    calibration = read_calibration(meta, checkpoint or 'checkpoint')
    if not calibrated:
        calibration['temperature'] = 1.0
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model.to(device).eval()
    if calibration['temperature'] != 1.0:
        apply_temperature(model, calibration['temperature'])
    head = getattr(model, 'head', None)
    classes = class_names(cfg, meta.get('dataset_meta', {}),
                          getattr(head, 'num_classes', None))
    return model, cfg, classes, calibration


def init_classifier(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    device: Optional[str] = None,
                    calibrated: bool = True):
    """Build a classifier from its config and load a checkpoint strictly.

    A checkpoint calibrated by ``tools/analysis_tools/fit_temperature.py``
    gets its temperature applied to the head's logits (see
    :func:`mmdsp.evaluation.apply_temperature`), so ``model.test_step``
    returns calibrated ``pred_score``.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str, optional): Checkpoint file. None keeps the
            initial weights.
        device (str, optional): Defaults to ``'cuda'`` when available,
            else ``'cpu'``.
        calibrated (bool): Apply the checkpoint's temperature. False gives
            the raw probabilities. Defaults to True.

    Returns:
        tuple: ``(model, cfg, classes)``, the model in eval mode on
        ``device``, a copy of the config and the class names (from the
        checkpoint's ``dataset_meta``, else the config's dataset).
    """
    return load_classifier(config, checkpoint, device, calibrated)[:3]


def model_outputs(model: nn.Module, inputs: torch.Tensor) -> dict:
    """Logits and pre-logits features of a preprocessed batch.

    The same computation as ``model.test_step`` (``extract_feat`` then the
    head) stopped before the softmax, so the probabilities are
    ``logits.softmax(1)``; a temperature applied to the model is in
    ``logits``.

    Args:
        model (nn.Module): An ImageClassifier in eval mode (others give
            ``model(inputs, mode='tensor')`` and no features).
        inputs (torch.Tensor): The data preprocessor's output (N, 3, H, W).

    Returns:
        dict: ``logits`` (N, K) and ``features`` ((N, C) or None), float
        tensors on the CPU.
    """
    head = getattr(model, 'head', None)
    features = None
    if head is not None and hasattr(model, 'extract_feat'):
        feats = model.extract_feat(inputs)
        logits = head(feats)
        if hasattr(head, 'pre_logits'):
            features = head.pre_logits(feats)
    else:
        logits = model(inputs, mode='tensor')
    if isinstance(logits, (tuple, list)):
        logits = logits[-1]
    if isinstance(features, (tuple, list)):
        features = features[-1]
    if features is not None:
        features = features.flatten(1).float().cpu()
    return dict(logits=logits.float().cpu(), features=features)


def collect_outputs(model: nn.Module,
                    dataloader,
                    progress: bool = True,
                    stages: Optional[List[str]] = None):
    """Raw logits, features and labels of every batch of a dataloader.

    Args:
        model (nn.Module): The classifier, in eval mode, without a
            temperature (``load_classifier(..., calibrated=False)``).
        dataloader (Iterable): Yields mmengine data batches (``inputs``,
            ``data_samples``), e.g. ``Runner.build_dataloader(cfg)``.
        progress (bool): Show a progress bar on stderr. Defaults to True.
        stages (list[str], optional): Also record these stages' feature
            statistics (:class:`mmdsp.apis.StageStatistics`).

    Returns:
        dict: ``logits`` (N, K), ``features`` ((N, C) or None), ``labels``
        (N, ) numpy arrays and ``img_paths`` (list); with ``stages``,
        ``stage_stats``: one (N, D_s) array per stage that gave a feature
        map, and ``stage_names``: those stages.
    """
    import sys

    import numpy as np
    from mmengine.utils import ProgressBar
    from .stage_features import StageStatistics
    logits, feats, labels, paths, stats = [], [], [], [], []
    recorder = StageStatistics(model, stages) if stages else None
    total = len(dataloader.dataset) if hasattr(dataloader, 'dataset') \
        else 0
    bar = ProgressBar(total, file=sys.stderr) if progress and total else None
    with torch.no_grad(), (recorder or contextlib.nullcontext()):
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            out = model_outputs(model, data['inputs'])
            if recorder is not None:
                stats.append([x.numpy() for x in recorder.pop()])
            logits.append(out['logits'].double().numpy())
            if out['features'] is not None:
                feats.append(out['features'].numpy())
            for sample in data['data_samples']:
                if 'gt_label' not in sample:
                    raise KeyError('collect_outputs: a data sample has no '
                                   '`gt_label`; the split must be labelled.')
                labels.append(int(sample.gt_label.reshape(-1)[0]))
                paths.append(sample.get('img_path', ''))
            if bar is not None:
                for _ in range(len(data['data_samples'])):
                    bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    if not logits:
        raise ValueError('collect_outputs: the dataloader yielded no batch')
    out = dict(logits=np.concatenate(logits),
               features=np.concatenate(feats) if feats else None,
               labels=np.array(labels),
               img_paths=paths)
    if recorder is not None:
        out['stage_stats'] = [np.concatenate(s) for s in zip(*stats)]
        out['stage_names'] = list(recorder.recorded)
    return out
