"""Post-hoc temperature scaling (Guo et al., 2017).

One scalar ``T > 0`` divides the logits before the softmax. It is fitted on
the validation split by minimising the NLL with LBFGS, keeps every argmax
(so accuracy, precision, recall and F1 do not change) and only reshapes the
probabilities. It is applied by a forward hook on the classifier's head, so
``model.test_step`` (what ``tools/test.py`` runs), ``model(x,
mode='tensor')`` and mmdsp.apis all see the scaled logits without a new
head class.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['fit_temperature', 'apply_temperature', 'get_temperature']

_ATTR = '_mmdsp_temperature'


def fit_temperature(logits, labels, max_iter=200):
    """The temperature that minimises the NLL of ``softmax(logits / T)``.

    ``log T`` is optimised, so that ``T`` stays positive without a bound.

    Args:
        logits (array-like): (N, K) raw logits (not probabilities).
        labels (array-like): (N, ) integer labels.
        max_iter (int): LBFGS iterations. Defaults to 200.

    Returns:
        float: The fitted temperature.
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if logits.ndim != 2 or labels.shape != (logits.shape[0], ):
        raise ValueError(f'fit_temperature: logits (N, K) and labels (N, ) '
                         f'expected, got {tuple(logits.shape)} and '
                         f'{tuple(labels.shape)}')
    if logits.shape[0] == 0:
        raise ValueError('fit_temperature: no images to fit on')
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t],
                            lr=1.0,
                            max_iter=max_iter,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    t = float(log_t.detach().exp())
    if not math.isfinite(t):
        raise RuntimeError(f'fit_temperature: LBFGS diverged (T = {t})')
    return t


def _head(model: nn.Module) -> nn.Module:
    model = getattr(model, 'module', model)  # DDP / MMDistributedDataParallel
    head = getattr(model, 'head', None)
    if not isinstance(head, nn.Module):
        raise TypeError(f'{type(model).__name__} has no `head` module to '
                        'apply a temperature to (an MMPretrain '
                        'ImageClassifier has one).')
    return head


def _divide(module, args, output):
    t = getattr(module, _ATTR)[0]
    if isinstance(output, torch.Tensor):
        return output / t
    if isinstance(output, (tuple, list)):
        return type(output)(o / t for o in output)
    raise TypeError(f'Temperature scaling: {type(module).__name__} returned '
                    f'{type(output).__name__}, not logits.')


def apply_temperature(model: nn.Module, temperature=None) -> None:
    """Divide the head's logits by ``temperature`` from now on.

    Calling it again replaces the temperature; ``None`` (or 1) removes it.

    Args:
        model (nn.Module): An ImageClassifier (or a wrapper of one).
        temperature (float, optional): ``T > 0``.
    """
    head = _head(model)
    old = getattr(head, _ATTR, None)
    if old is not None:
        old[1].remove()
        delattr(head, _ATTR)
    if temperature is None or float(temperature) == 1.0:
        return
    temperature = float(temperature)
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f'temperature must be positive and finite, got '
                         f'{temperature}')
    handle = head.register_forward_hook(_divide)
    setattr(head, _ATTR, (temperature, handle))


def get_temperature(model: nn.Module) -> float:
    """The temperature applied to ``model``'s head (1.0 when none)."""
    state = getattr(_head(model), _ATTR, None)
    return 1.0 if state is None else state[0]
