"""Batch inference on image files with a trained classifier, for users.

One result per input image: predicted class, every class probability, the
segmentation fallback flag of the test pipeline and the error, if any. A file
that cannot be read or processed gets its error and the others go on.
"""
import copy
import csv
import glob
import os
import os.path as osp
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from mmengine.utils import ProgressBar

import mmdsp  # noqa: F401  (registers modules, applies mmdsp.compat)
from mmdsp.datasets.blood_cells_all import \
    IMG_EXTENSIONS as DATASET_EXTENSIONS

# Inference also takes formats nobody trains on.
IMG_EXTENSIONS = DATASET_EXTENSIONS + ('.webp', '.ppm', '.pgm')
_LOAD_TYPES = ('LoadImageFromFile', 'mmpretrain.LoadImageFromFile',
               'mmcv.LoadImageFromFile')


def collect_inputs(inputs: Union[str, Sequence[str]]) -> List[str]:
    """Expand files, folders (recursive) and glob patterns into file paths.

    Files named explicitly are kept whatever their extension, so that a bad
    one is reported; files found in folders or by globs must have an image
    extension (:data:`IMG_EXTENSIONS`). A path that matches nothing is kept
    as is and reported as missing by :func:`predict`. Order: as given, each
    folder or glob sorted; duplicates removed.

    Args:
        inputs (str | Sequence[str]): Paths, folders or glob patterns.

    Returns:
        list[str]: File paths.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in map(str, inputs):
        if osp.isdir(item):
            found = []
            for root, _, names in os.walk(item):
                found += [
                    osp.join(root, n) for n in names
                    if n.lower().endswith(IMG_EXTENSIONS)
                ]
            files += sorted(found)
        elif osp.exists(item) or not glob.has_magic(item):
            files.append(item)
        else:
            matches = sorted(
                p for p in glob.glob(item, recursive=True)
                if osp.isfile(p) and p.lower().endswith(IMG_EXTENSIONS))
            files += matches if matches else [item]
    return list(dict.fromkeys(files))


class GradCAM:
    """Grad-CAM (Selvaraju et al., 2017) through hooks on one layer.

    A forward hook keeps the layer's output (the last tensor if it returns a
    tuple, as backbones do) and a tensor hook on it keeps its gradient. The
    map is ``ReLU(sum_c mean_hw(dy/dA_c) * A_c)``, normalised per image to
    [0, 1].

    Args:
        model (nn.Module): The classifier, called as
            ``model(inputs, mode='tensor')`` to get logits.
        target_layer (nn.Module): The layer whose output is explained.
    """

    def __init__(self, model: nn.Module, target_layer: nn.Module):
        self.model = model
        self.target_layer = target_layer
        self._act = None
        self._grad = None

    def _forward_hook(self, module, args, output):
        if isinstance(output, (tuple, list)):
            output = output[-1]
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise TypeError(
                f'Grad-CAM needs a (N, C, H, W) output from the target layer '
                f'{type(module).__name__}, got '
                f'{getattr(output, "shape", type(output))}.')
        self._act = output
        output.register_hook(self._save_grad)

    def _save_grad(self, grad):
        self._grad = grad

    def __call__(self,
                 inputs: torch.Tensor,
                 targets: Optional[torch.Tensor] = None) -> np.ndarray:
        """Compute the maps.

        Args:
            inputs (torch.Tensor): Preprocessed batch (N, 3, H, W).
            targets (torch.Tensor, optional): Class to explain per image;
                the predicted class when None.

        Returns:
            np.ndarray: Float maps of shape (N, h, w) in [0, 1], at the
            target layer's resolution.
        """
        handle = self.target_layer.register_forward_hook(self._forward_hook)
        try:
            with torch.enable_grad():
                inputs = inputs.detach().requires_grad_(True)
                logits = self.model(inputs, mode='tensor')
                if isinstance(logits, (tuple, list)):
                    logits = logits[-1]
                if self._act is None:
                    raise RuntimeError(
                        'The Grad-CAM target layer was not run by the '
                        'forward pass; choose another layer.')
                if targets is None:
                    targets = logits.argmax(dim=1)
                score = logits.gather(1, targets.view(-1, 1)).sum()
                # Backpropagate only down to the target layer (fires the
                # tensor hook) and leave the parameters' .grad untouched.
                torch.autograd.grad(score, self._act)
        finally:
            handle.remove()
        act, grad = self._act.detach(), self._grad.detach()
        self._act = self._grad = None
        cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1))
        cam = cam - cam.flatten(1).min(1)[0].view(-1, 1, 1)
        peak = cam.flatten(1).max(1)[0].view(-1, 1, 1)
        return (cam / peak.clamp_min(1e-12)).float().cpu().numpy()


def overlay_cam(image: np.ndarray,
                cam: np.ndarray,
                alpha: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] map, resized to the image, as a JET heat map.

    Args:
        image (np.ndarray): BGR (or grey) image as loaded.
        cam (np.ndarray): 2-D map in [0, 1].
        alpha (float): Weight of the heat map. Defaults to 0.5.

    Returns:
        np.ndarray: uint8 BGR image.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    h, w = image.shape[:2]
    cam = cv2.resize(cam.astype(np.float32), (w, h),
                     interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255),
                             cv2.COLORMAP_JET)
    return cv2.addWeighted(heat, alpha, image, 1 - alpha, 0)


def _resolve_layer(model: nn.Module, name: Optional[str]) -> nn.Module:
    if name:
        try:
            return model.get_submodule(name)
        except AttributeError as e:
            raise ValueError(f'Grad-CAM target layer {name!r} is not a '
                             f'submodule of the model: {e}') from None
    if not hasattr(model, 'backbone'):
        raise ValueError('The model has no `backbone`; give the Grad-CAM '
                         'target layer by name (cam_layer).')
    # The backbone's output is the output of its last stage.
    return model.backbone


def _class_names(cfg: Config, dataset_meta: dict,
                 num_classes: Optional[int]) -> List[str]:
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


def init_classifier(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    device: Optional[str] = None):
    """Build a classifier from its config and load a checkpoint strictly.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str, optional): Checkpoint file. None keeps the
            initial weights.
        device (str, optional): Defaults to ``'cuda'`` when available,
            else ``'cpu'``.

    Returns:
        tuple: ``(model, cfg, classes)``, the model in eval mode on
        ``device``, a copy of the config and the class names (from the
        checkpoint's ``dataset_meta``, else the config's dataset).
    """
    cfg = copy.deepcopy(config) if isinstance(config, Config) \
        else Config.fromfile(config)
    from mmpretrain.registry import MODELS
    if 'model' not in cfg:
        raise KeyError(f'Config {cfg.filename} has no `model`.')
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor',
                                                      None))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    dataset_meta = {}
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
        dataset_meta = ckpt.get('meta', {}).get('dataset_meta', {})
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model.to(device).eval()
    head = getattr(model, 'head', None)
    classes = _class_names(cfg, dataset_meta, getattr(head, 'num_classes',
                                                      None))
    return model, cfg, classes


class Predictor:
    """Model and test pipeline ready for :meth:`__call__`.

    Args:
        config (str | Config): Config file or object; its
            ``test_dataloader.dataset.pipeline`` is the pipeline applied.
        checkpoint (str, optional): Checkpoint, loaded strictly.
        device (str, optional): Defaults to ``'cuda'`` when available,
            else ``'cpu'``.
        cam_layer (str, optional): Dotted name of the Grad-CAM target layer
            (e.g. ``'backbone.layers.7'``). Defaults to the backbone output,
            i.e. its last stage.
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: Optional[str] = None,
                 device: Optional[str] = None,
                 cam_layer: Optional[str] = None):
        self.model, self.cfg, self.classes = init_classifier(
            config, checkpoint, device)
        cfg = self.cfg
        from mmpretrain.registry import TRANSFORMS
        try:
            pipeline = cfg.test_dataloader.dataset.pipeline
        except AttributeError:
            raise KeyError(f'Config {cfg.filename} has no '
                           '`test_dataloader.dataset.pipeline`.') from None
        pipeline = copy.deepcopy(list(pipeline))
        load_idx = [
            i for i, t in enumerate(pipeline) if t.get('type') in _LOAD_TYPES
        ]
        if not load_idx:
            raise KeyError(f'The test pipeline of {cfg.filename} has no '
                           'LoadImageFromFile step.')
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.load = TRANSFORMS.build(pipeline[load_idx[0]])
            self.transforms = [
                TRANSFORMS.build(t) for t in pipeline[load_idx[0] + 1:]
            ]
        self.gradcam = GradCAM(self.model,
                               _resolve_layer(self.model, cam_layer))

    def _prepare(self, path: str) -> dict:
        """Run the test pipeline on one file; errors propagate."""
        if not osp.exists(path):
            raise FileNotFoundError('no such file')
        if osp.isdir(path):
            raise IsADirectoryError('is a directory')
        results = self.load(dict(img_path=path))
        if results is None:
            raise ValueError('image could not be read')
        image = results['img']
        seg_fallback = None
        for t in self.transforms:
            results = t(results)
            if results is None:
                raise ValueError(f'{type(t).__name__} dropped the image')
            if 'seg_fallback' in results:
                seg_fallback = bool(results['seg_fallback'])
        return dict(data=results, image=image, seg_fallback=seg_fallback)

    def _forward(self, items: List[dict]) -> np.ndarray:
        batch = pseudo_collate([it['data'] for it in items])
        with torch.no_grad():
            samples = self.model.test_step(batch)
        return np.stack([s.pred_score.float().cpu().numpy() for s in samples])

    def _cams(self, items: List[dict], pred: np.ndarray) -> np.ndarray:
        batch = pseudo_collate([it['data'] for it in items])
        data = self.model.data_preprocessor(batch, False)
        targets = torch.as_tensor(pred, device=data['inputs'].device)
        return self.gradcam(data['inputs'], targets)

    def __call__(self,
                 inputs: Union[str, Sequence[str]],
                 batch_size: int = 8,
                 cam_dir: Optional[str] = None,
                 progress: bool = True) -> List[dict]:
        """Predict every image of ``inputs``; see :func:`predict`."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        paths = collect_inputs(inputs)
        if cam_dir:
            os.makedirs(cam_dir, exist_ok=True)
        rows = [
            dict(path=p,
                 pred_label=None,
                 pred_class='',
                 scores=None,
                 seg_fallback=None,
                 error='',
                 cam_path='') for p in paths
        ]
        bar = ProgressBar(len(rows), file=sys.stderr) \
            if progress and rows else None
        cam_names = set()
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            ready = []
            for row in chunk:
                try:
                    item = self._prepare(row['path'])
                except Exception as e:  # noqa: BLE001  (reported per file)
                    row['error'] = _describe(e)
                    continue
                row['seg_fallback'] = item['seg_fallback']
                ready.append((row, item))
            self._run(ready, cam_dir, cam_names)
            if bar is not None:
                for _ in chunk:
                    bar.update()
        if bar is not None:
            sys.stderr.write('\n')
        return rows

    def _run(self, ready, cam_dir, cam_names) -> None:
        if not ready:
            return
        try:
            groups = [ready]
            scores = [self._forward([it for _, it in ready])]
        except Exception:  # noqa: BLE001
            # Isolate the file that breaks the batch (odd size, say).
            groups, scores = [], []
            for pair in ready:
                try:
                    scores.append(self._forward([pair[1]]))
                    groups.append([pair])
                except Exception as e:  # noqa: BLE001
                    pair[0]['error'] = _describe(e)
        for group, score in zip(groups, scores):
            if score.shape[1] != len(self.classes):
                raise ValueError(
                    f'The model outputs {score.shape[1]} classes but '
                    f'{len(self.classes)} class names are known '
                    f'({self.classes}).')
            pred = score.argmax(axis=1)
            for (row, _), s, p in zip(group, score, pred):
                row.update(scores=s,
                           pred_label=int(p),
                           pred_class=str(self.classes[p]))
            if cam_dir:
                self._save_cams(group, pred, cam_dir, cam_names)

    def _save_cams(self, group, pred, cam_dir, cam_names) -> None:
        try:
            cams = self._cams([it for _, it in group], pred)
        except Exception as e:  # noqa: BLE001
            for row, _ in group:
                row['error'] = f'Grad-CAM failed: {_describe(e)}'
            return
        for (row, item), cam in zip(group, cams):
            stem = osp.splitext(osp.basename(row['path']))[0]
            name, k = f'{stem}_cam.png', 1
            while name in cam_names:
                name, k = f'{stem}_{k}_cam.png', k + 1
            cam_names.add(name)
            out = osp.join(cam_dir, name)
            if cv2.imwrite(out, overlay_cam(item['image'], cam)):
                row['cam_path'] = out
            else:
                row['error'] = f'could not write {out}'


def _describe(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ''
    return f'{type(e).__name__}: {msg}' if msg else type(e).__name__


def write_csv(rows: Iterable[dict],
              classes: Sequence[str],
              out: str,
              with_cam: bool = False) -> None:
    """Write :func:`predict` rows: path, pred_class, one probability column
    per class name, seg_fallback (``True``/``False``, empty when the pipeline
    has no segmentation step), error (empty on success) and, with
    ``with_cam``, cam_path."""
    header = ['path', 'pred_class', *classes, 'seg_fallback', 'error']
    if with_cam:
        header.append('cam_path')
    if len(set(header)) != len(header):
        raise ValueError(f'Class names {list(classes)} clash with the CSV '
                         f'columns {header}.')
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            probs = [''] * len(classes) if r['scores'] is None else \
                [f'{float(p):.6f}' for p in r['scores']]
            seg = '' if r['seg_fallback'] is None else str(r['seg_fallback'])
            line = [r['path'], r['pred_class'], *probs, seg, r['error']]
            if with_cam:
                line.append(r['cam_path'])
            writer.writerow(line)


def predict(config: Union[str, Config],
            checkpoint: Optional[str],
            inputs: Union[str, Sequence[str]],
            out: Optional[str] = None,
            batch_size: int = 8,
            device: Optional[str] = None,
            cam_dir: Optional[str] = None,
            cam_layer: Optional[str] = None,
            progress: bool = True) -> List[Dict]:
    """Classify image files with the config's test pipeline.

    Args:
        config (str | Config): Model config.
        checkpoint (str, optional): Trained checkpoint (loaded strictly).
        inputs (str | Sequence[str]): Files, folders (searched recursively
            for image extensions) or glob patterns.
        out (str, optional): CSV file to write (see :func:`write_csv`).
        batch_size (int): Images per forward pass. Defaults to 8.
        device (str, optional): Defaults to cuda when available, else cpu.
        cam_dir (str, optional): Write a Grad-CAM overlay PNG per image,
            for the predicted class, here.
        cam_layer (str, optional): Grad-CAM target layer name; defaults to
            the backbone's last stage.
        progress (bool): Show a progress bar on stderr. Defaults to True.

    Returns:
        list[dict]: One dict per image with ``path``, ``pred_label``,
        ``pred_class``, ``scores`` (class probabilities, np.ndarray),
        ``seg_fallback`` (bool or None), ``error`` (empty string on
        success) and ``cam_path``.
    """
    predictor = Predictor(config, checkpoint, device, cam_layer)
    rows = predictor(inputs, batch_size, cam_dir, progress)
    if out:
        write_csv(rows, predictor.classes, out, with_cam=bool(cam_dir))
    return rows
