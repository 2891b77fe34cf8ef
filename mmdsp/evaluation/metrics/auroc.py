"""One-vs-rest AUROC per class and macro."""
import numpy as np
from mmpretrain.registry import METRICS

from ..functional import one_vs_rest_auroc
from .score_label import ScoreLabelMetric


@METRICS.register_module()
class AUROC(ScoreLabelMetric):
    """Area under the ROC curve of each class against the rest, in %.

    Reports ``auroc/macro`` (mean over the classes present in the split)
    and ``auroc/<class name>`` per class (the class index when the dataset
    has no names).

    Args:
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Defaults to ``'auroc'``.
    """
    default_prefix = 'auroc'

    def compute(self, probs, labels):
        per_class = one_vs_rest_auroc(probs, labels) * 100
        out = dict(macro=float(np.nanmean(per_class))
                   if np.isfinite(per_class).any() else float('nan'))
        for name, value in zip(self.class_names(probs.shape[1]), per_class):
            out[name] = float(value)
        return out
