"""Batch inference on image files with a trained classifier, for users.

One result per input image: predicted class, every class probability, the
segmentation fallback flag of the test pipeline, the reasons not to trust
the prediction (for a checkpoint with fitted thresholds) and the error, if
any. A file that cannot be read or processed gets its error and the others
go on.
"""
import contextlib
import copy
import os
import os.path as osp
import sys
from functools import partial
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar

from mmdsp.evaluation import (energy_score, feature_distance, flag_reasons,
                              stage_distance)
from .csv_io import write_csv
from .gradcam import GradCAM, overlay_cam, resolve_layer
from .inference import load_classifier, model_outputs
from .inputs import collect_inputs
from .stage_features import StageStatistics

_LOAD_TYPES = ('LoadImageFromFile', 'mmpretrain.LoadImageFromFile',
               'mmcv.LoadImageFromFile')
#: The columns of a result row (see :func:`predict`), in order.
ROW_COLUMNS = ('path', 'pred_label', 'pred_class', 'scores', 'seg_fallback',
               'confidence', 'energy', 'feature_distance', 'stage_distance',
               'flag_reason', 'error', 'cam_path')
_TEXT_COLUMNS = ('pred_class', 'flag_reason', 'error', 'cam_path')


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
        calibrated (bool): Apply the checkpoint's temperature (when it has
            one) to the probabilities. False also drops the confidence
            threshold, which was fitted on calibrated probabilities.
            Defaults to True.
        flags (bool, optional): Compute the reasons not to judge an image.
            None: when the checkpoint has fitted thresholds. Without
            thresholds only a segmentation fallback is a reason.
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: Optional[str] = None,
                 device: Optional[str] = None,
                 cam_layer: Optional[str] = None,
                 calibrated: bool = True,
                 flags: Optional[bool] = None):
        self.model, self.cfg, self.classes, self.calibration = \
            load_classifier(config, checkpoint, device, calibrated)
        self.temperature = self.calibration['temperature']
        self.thresholds = dict(self.calibration['thresholds'])
        if not calibrated:
            # Fitted on calibrated confidences: meaningless on raw ones.
            self.thresholds.pop('min_confidence', None)
        self.flags = bool(self.thresholds) if flags is None else bool(flags)
        bank = self.calibration['feature_bank']
        self.feature_bank = None if bank is None else bank.float()
        # float64 once here, so that stage_distance's conversion is a no-op
        # on every batch.
        self.stage_gaussians = [
            {k: v.double() if torch.is_tensor(v) else v for k, v in g.items()}
            for g in self.calibration['stage_gaussians'] or ()]
        self.stages = StageStatistics(
            self.model, self.calibration['stage_names']) \
            if self.stage_gaussians else None
        self.load, self.transforms = build_test_pipeline(self.cfg)
        self.gradcam = GradCAM(self.model,
                               resolve_layer(self.model, cam_layer))

    def _prepare(self, path: str) -> dict:
        """Run the test pipeline on one file; errors propagate."""
        if not osp.exists(path):
            raise FileNotFoundError('no such file')
        if osp.isdir(path):
            raise IsADirectoryError('is a directory')
        results = self.load(dict(img_path=path))
        if results is None:
            raise ValueError('image could not be read')
        return self.prepare_loaded(results)

    def prepare_loaded(self, results: dict) -> dict:
        """Run the pipeline after ``LoadImageFromFile`` on loaded results.

        Args:
            results (dict): At least ``img`` (BGR uint8, as loaded).

        Returns:
            dict: ``data`` (the packed inputs), ``image`` (as loaded) and
            ``seg_fallback`` (None without a segmentation step).
        """
        image = results['img']
        seg_fallback = None
        for t in self.transforms:
            results = t(results)
            if results is None:
                raise ValueError(f'{type(t).__name__} dropped the image')
            if 'seg_fallback' in results:
                seg_fallback = bool(results['seg_fallback'])
        return dict(data=results, image=image, seg_fallback=seg_fallback)

    def forward(self, items: List[dict]) -> dict:
        """Scores of prepared items: ``probs``, ``logits`` (raw, before the
        temperature), ``confidence``, ``energy``, ``feature_distance``
        (None without a feature bank), ``stage_distance`` (None without
        stage Gaussians), numpy arrays."""
        batch = pseudo_collate([it['data'] for it in items])
        with torch.no_grad(), (self.stages or contextlib.nullcontext()):
            data = self.model.data_preprocessor(batch, False)
            out = model_outputs(self.model, data['inputs'])
            stats = self.stages.pop() if self.stages else None
        # The head's temperature hook divided the logits; the energy score
        # was fitted on the raw ones.
        scaled = out['logits'].double()
        probs = scaled.softmax(1).numpy()
        logits = (scaled * self.temperature).numpy()
        dist = None
        if self.feature_bank is not None and out['features'] is not None:
            dist = feature_distance(out['features'], self.feature_bank,
                                    self.calibration['feature_k'])
        stage = None if stats is None else stage_distance(
            stats, self.stage_gaussians)
        return dict(probs=probs,
                    logits=logits,
                    features=out['features'],
                    confidence=probs.max(1),
                    energy=energy_score(logits),
                    feature_distance=dist,
                    stage_distance=stage)

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
        paths = collect_inputs(inputs)
        if cam_dir:
            os.makedirs(cam_dir, exist_ok=True)
        return self._predict([(p, partial(self._prepare, p)) for p in paths],
                             batch_size, cam_dir, progress)

    def predict_arrays(self,
                       images: Sequence[np.ndarray],
                       names: Optional[Sequence[str]] = None,
                       batch_size: int = 8) -> List[dict]:
        """Predict images already in memory (BGR uint8, as cv2 reads).

        The pipeline after ``LoadImageFromFile`` is applied, as for files.

        Args:
            images (Sequence[np.ndarray]): The images.
            names (Sequence[str], optional): Their ``path`` in the rows.
                Defaults to ``'<array i>'``.
            batch_size (int): Images per forward pass. Defaults to 8.

        Returns:
            list[dict]: Rows as :meth:`__call__` returns them.
        """
        names = names or [f'<array {i}>' for i in range(len(images))]
        sources = [(name,
                    partial(
                        self.prepare_loaded,
                        dict(img=img, img_path=name, img_shape=img.shape[:2],
                             ori_shape=img.shape[:2])))
                   for img, name in zip(images, names)]
        return self._predict(sources, batch_size)

    def _predict(self,
                 sources: List[tuple],
                 batch_size: int,
                 cam_dir: Optional[str] = None,
                 progress: bool = False) -> List[dict]:
        """One row per ``(name, prepare)`` of ``sources``, ``prepare()``
        giving the item of :meth:`prepare_loaded`; an image that cannot be
        prepared gets its error and the others go on."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        rows = [new_row(name) for name, _ in sources]
        bar = ProgressBar(len(rows), file=sys.stderr) \
            if progress and rows else None
        cam_names, pairs = set(), list(zip(rows, sources))
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            ready = []
            for row, (_, prepare) in chunk:
                try:
                    item = prepare()
                except Exception as e:  # noqa: BLE001  (reported per image)
                    row['error'] = describe_error(e)
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
            outputs = [self.forward([it for _, it in ready])]
        except Exception:  # noqa: BLE001
            # Isolate the file that breaks the batch (odd size, say).
            groups, outputs = [], []
            for pair in ready:
                try:
                    outputs.append(self.forward([pair[1]]))
                    groups.append([pair])
                except Exception as e:  # noqa: BLE001
                    pair[0]['error'] = describe_error(e)
        for group, out in zip(groups, outputs):
            score = out['probs']
            if score.shape[1] != len(self.classes):
                raise ValueError(
                    f'The model outputs {score.shape[1]} classes but '
                    f'{len(self.classes)} class names are known '
                    f'({self.classes}).')
            pred = score.argmax(axis=1)
            dist, stage = out['feature_distance'], out['stage_distance']
            for i, ((row, _), s, p) in enumerate(zip(group, score, pred)):
                row.update(scores=s,
                           pred_label=int(p),
                           pred_class=str(self.classes[p]),
                           confidence=float(out['confidence'][i]),
                           energy=float(out['energy'][i]),
                           feature_distance=None
                           if dist is None else float(dist[i]),
                           stage_distance=None
                           if stage is None else float(stage[i]))
                if self.flags:
                    row['flag_reason'] = '; '.join(
                        flag_reasons(self.thresholds, row['confidence'],
                                     row['energy'], row['feature_distance'],
                                     row['seg_fallback'],
                                     row['stage_distance']))
            if cam_dir:
                self._save_cams(group, pred, cam_dir, cam_names)

    def _save_cams(self, group, pred, cam_dir, cam_names) -> None:
        try:
            cams = self._cams([it for _, it in group], pred)
        except Exception as e:  # noqa: BLE001
            for row, _ in group:
                row['error'] = f'Grad-CAM failed: {describe_error(e)}'
            return
        write_cams(group, cams, cam_dir, cam_names)


def write_cams(group, cams, cam_dir: str, cam_names: set) -> None:
    """Write the Grad-CAM overlay of each ``(row, item)`` of ``group`` as
    ``<stem>_cam.png`` in ``cam_dir`` (``<stem>_<k>_cam.png`` for a stem
    already in ``cam_names``) and set the row's ``cam_path`` or error."""
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


def new_row(path: str) -> dict:
    """The result row of one image before its prediction: every column of
    :data:`ROW_COLUMNS`, the text ones empty, the others None."""
    row = dict.fromkeys(ROW_COLUMNS)
    row.update(dict.fromkeys(_TEXT_COLUMNS, ''), path=path)
    return row


def build_test_pipeline(cfg: Config) -> tuple:
    """``LoadImageFromFile`` and the transforms after it, built from the
    config's ``test_dataloader.dataset.pipeline``."""
    from mmpretrain.registry import TRANSFORMS
    try:
        pipeline = copy.deepcopy(list(cfg.test_dataloader.dataset.pipeline))
    except AttributeError:
        raise KeyError(f'Config {cfg.filename} has no '
                       '`test_dataloader.dataset.pipeline`.') from None
    load_idx = [
        i for i, t in enumerate(pipeline) if t.get('type') in _LOAD_TYPES
    ]
    if not load_idx:
        raise KeyError(f'The test pipeline of {cfg.filename} has no '
                       'LoadImageFromFile step.')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return TRANSFORMS.build(pipeline[load_idx[0]]), [
            TRANSFORMS.build(t) for t in pipeline[load_idx[0] + 1:]
        ]


def describe_error(e: Exception) -> str:
    """``'TypeName: first line of the message'``, for a CSV cell."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ''
    return f'{type(e).__name__}: {msg}' if msg else type(e).__name__


def predict(config: Union[str, Config],
            checkpoint: Optional[str],
            inputs: Union[str, Sequence[str]],
            out: Optional[str] = None,
            batch_size: int = 8,
            device: Optional[str] = None,
            cam_dir: Optional[str] = None,
            cam_layer: Optional[str] = None,
            progress: bool = True,
            calibrated: bool = True,
            flags: Optional[bool] = None) -> List[Dict]:
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
        calibrated (bool): Use the checkpoint's temperature, if any.
            Defaults to True.
        flags (bool, optional): Fill ``flag_reason`` (and the CSV's reject
            columns). None: when the checkpoint has fitted thresholds.

    Returns:
        list[dict]: One dict per image with ``path``, ``pred_label``,
        ``pred_class``, ``scores`` (class probabilities, np.ndarray),
        ``seg_fallback`` (bool or None), ``confidence`` (largest
        probability), ``energy``, ``feature_distance`` (None without a
        feature bank), ``stage_distance`` (None without stage Gaussians),
        ``flag_reason`` (empty string: fine to judge),
        ``error`` (empty string on success) and ``cam_path``.
    """
    predictor = Predictor(config, checkpoint, device, cam_layer, calibrated,
                          flags)
    rows = predictor(inputs, batch_size, cam_dir, progress)
    if out:
        write_csv(rows, predictor.classes, out, with_cam=bool(cam_dir),
                  with_flags=predictor.flags)
    return rows
