"""The part every probability metric of mmdsp shares: collecting scores."""
from typing import List, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric


class ScoreLabelMetric(BaseMetric):
    """Base of metrics computed from ``pred_score`` and ``gt_label``.

    :meth:`process` keeps, per image, the class probabilities and the true
    label, as MMPretrain's ``SingleLabelMetric`` does; subclasses implement
    :meth:`compute` on the stacked arrays.

    Args:
        collect_device (str): Device to collect results on in distributed
            runs, ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to the
            class's ``default_prefix``.
    """

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'pred_score' not in sample:
                raise KeyError(
                    f'{type(self).__name__} needs `pred_score` (class '
                    'probabilities) in the data samples; the head returned '
                    'only `pred_label`.')
            if 'gt_label' not in sample:
                raise KeyError(f'{type(self).__name__} needs `gt_label` in '
                               'the data samples (a labelled split).')
            self.results.append(
                dict(pred_score=sample['pred_score'].float().cpu().numpy(),
                     gt_label=int(sample['gt_label'].reshape(-1)[0])))

    def compute_metrics(self, results: List[dict]) -> dict:
        probs = np.stack([r['pred_score'] for r in results])
        labels = np.array([r['gt_label'] for r in results])
        return self.compute(probs, labels)

    def compute(self, probs: np.ndarray, labels: np.ndarray) -> dict:
        """The metrics of stacked ``(N, K)`` probabilities and labels."""
        raise NotImplementedError

    def class_names(self, num_classes: int) -> List[str]:
        """Class names from ``dataset_meta``, else the indices."""
        classes = (self.dataset_meta or {}).get('classes')
        if classes and len(classes) == num_classes:
            return [str(c) for c in classes]
        return [str(i) for i in range(num_classes)]
