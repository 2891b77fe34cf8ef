"""Bootstrap confidence intervals of the paper's metrics and the AUROC."""
import numpy as np
from mmpretrain.registry import METRICS

from ..bootstrap import bootstrap_ci
from ..functional import accuracy, one_vs_rest_auroc, precision_recall_f1
from .score_label import ScoreLabelMetric


def _macro_auroc(probs, labels):
    per_class = one_vs_rest_auroc(probs, labels)
    if not np.isfinite(per_class).any():
        return np.nan
    return np.nanmean(per_class) * 100


STATISTICS = {
    'accuracy': accuracy,
    'precision': lambda p, y: precision_recall_f1(p, y)[0],
    'recall': lambda p, y: precision_recall_f1(p, y)[1],
    'f1-score': lambda p, y: precision_recall_f1(p, y)[2],
    'auroc': _macro_auroc,
}


@METRICS.register_module()
class BootstrapCI(ScoreLabelMetric):
    """Percentile bootstrap intervals over the test images.

    For each item, ``bootstrap/<item>_low`` and ``bootstrap/<item>_high``
    (in %, the unit of MMPretrain's metrics): ``accuracy`` is top-1
    accuracy, ``precision`` / ``recall`` / ``f1-score`` are macro averages
    computed like ``SingleLabelMetric(average='macro')``, ``auroc`` is the
    macro one-vs-rest AUROC. The point estimates are the other metrics'.

    Args:
        items (Sequence[str]): Any of ``'accuracy'``, ``'precision'``,
            ``'recall'``, ``'f1-score'``, ``'auroc'``. Defaults to all.
        n_resamples (int): Defaults to 1000.
        seed (int): Defaults to 0, so a test run is reproducible.
        alpha (float): 0.05 gives 95 % intervals. Defaults to 0.05.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Defaults to ``'bootstrap'``.
    """
    default_prefix = 'bootstrap'

    def __init__(self,
                 items=tuple(STATISTICS),
                 n_resamples=1000,
                 seed=0,
                 alpha=0.05,
                 collect_device='cpu',
                 prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = [i for i in items if i not in STATISTICS]
        if unknown or not items:
            raise ValueError(f'BootstrapCI: items {unknown or items} '
                             f'unknown; choose from {list(STATISTICS)}')
        self.items = tuple(items)
        self.n_resamples = n_resamples
        self.seed = seed
        self.alpha = alpha

    def compute(self, probs, labels):
        fns = [STATISTICS[i] for i in self.items]

        def stats(p, y):
            return np.array([fn(p, y) for fn in fns], float)

        ci = bootstrap_ci(stats, probs, labels, n_resamples=self.n_resamples,
                          seed=self.seed, alpha=self.alpha)
        out = {}
        for item, low, high in zip(self.items, ci.low, ci.high):
            out[f'{item}_low'] = float(low)
            out[f'{item}_high'] = float(high)
        return out
