"""The clinical binary view: benign against the malignant classes."""
from mmpretrain.registry import METRICS

from ..functional import benign_vs_malignant
from .score_label import ScoreLabelMetric


@METRICS.register_module()
class BenignVsMalignant(ScoreLabelMetric):
    """Sensitivity, specificity, PPV, NPV and AUROC for "malignant", in %.

    Every class other than ``benign_index`` is malignant (for ALL: Early,
    Pre and Pro B-ALL). An image counts as called malignant when its
    predicted class is a malignant one; the AUROC ranks by
    ``1 - p(benign)``. Keys: ``clinical/sensitivity``, ``/specificity``,
    ``/ppv``, ``/npv``, ``/auroc``.

    Args:
        benign_index (int): Index of the benign class. Defaults to 0.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Defaults to ``'clinical'``.
    """
    default_prefix = 'clinical'

    def __init__(self, benign_index=0, collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.benign_index = int(benign_index)

    def compute(self, probs, labels):
        return benign_vs_malignant(probs, labels, self.benign_index)
