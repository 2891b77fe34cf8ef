"""Grad-CAM maps and their overlay on the input image."""
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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


def resolve_layer(model: nn.Module, name: Optional[str]) -> nn.Module:
    """The Grad-CAM target: submodule ``name``, else the backbone.

    Args:
        model (nn.Module): The classifier.
        name (str, optional): Dotted submodule name, e.g.
            ``'backbone.layers.7'``.
    """
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
