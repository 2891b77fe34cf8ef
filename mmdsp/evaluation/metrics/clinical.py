"""The clinical binary view: a named group of classes against the rest."""
from typing import Dict, List, Optional, Sequence, Union

from mmengine.logging import MMLogger
from mmpretrain.registry import METRICS

from ..functional import group_vs_rest
from .score_label import ScoreLabelMetric

ClassRef = Union[str, int]


def _all_benign_index(classes: Sequence[str]) -> Optional[int]:
    """Index of Benign when ``classes`` are the four ALL classes (any of
    their folder aliases), else None."""
    from mmdsp.datasets.blood_cells_all import resolve_class_folder
    found = [resolve_class_folder(str(c)) for c in classes]
    if None in found or sorted(found) != [0, 1, 2, 3]:
        return None
    return found.index(0)


@METRICS.register_module()
class BenignVsMalignant(ScoreLabelMetric):
    """Sensitivity, specificity, PPV, NPV and AUROC of a group of classes.

    Two named groups of the dataset's classes, e.g. ``dict(benign=
    ['Benign'], malignant=['Early Pre-B', 'Pre-B', 'Pro-B'])``, every class
    in exactly one; the ``positive`` group is the finding (malignant). An
    image counts as called positive when its predicted class is in that
    group; the AUROC ranks by the probability mass of the group. Keys:
    ``clinical/sensitivity``, ``/specificity``, ``/ppv``, ``/npv``,
    ``/auroc``, in %.

    Which groups, in order of precedence:

    - ``groups`` as given;
    - ``benign_index``: that class against all others;
    - neither, on the ALL classes (``Benign``, ``Early Pre-B``, ``Pre-B``,
      ``Pro-B`` or their folder aliases): Benign against the three B-ALL
      subtypes, as this metric always computed for ALL;
    - neither, on other classes: the metric is not run (one warning, no
      keys), since which classes are a finding is not for it to guess.

    The groups are checked when the dataset's class names arrive (at the
    start of a validation or test loop), so a group naming a class the data
    do not have fails before any image is run.

    Args:
        groups (dict[str, Sequence[str | int]], optional): Exactly two
            groups, name to class names (or indices). Defaults to None.
        positive (str, optional): The positive group's name. Defaults to
            the second group.
        benign_index (int, optional): Index of the one negative class.
            Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Defaults to ``'clinical'``.
    """
    default_prefix = 'clinical'

    def __init__(self,
                 groups: Optional[Dict[str, Sequence[ClassRef]]] = None,
                 positive: Optional[str] = None,
                 benign_index: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if groups is not None and benign_index is not None:
            raise ValueError('BenignVsMalignant: give groups or '
                             'benign_index, not both')
        if groups is not None:
            groups = {str(k): list(v) for k, v in dict(groups).items()}
            if len(groups) != 2 or not all(groups.values()):
                raise ValueError(
                    'BenignVsMalignant: groups must be two non-empty named '
                    f'groups of classes, got {groups}')
            positive = list(groups)[1] if positive is None else positive
            if positive not in groups:
                raise ValueError(f'BenignVsMalignant: positive group '
                                 f'{positive!r} is not one of {list(groups)}')
        elif positive is not None:
            raise ValueError('BenignVsMalignant: positive names one of the '
                             'groups; give groups too')
        self.groups = groups
        self.positive = positive
        self.benign_index = None if benign_index is None else int(benign_index)
        self._positive_idx: Optional[List[int]] = None
        self._warned = False

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dict(dataset_meta or {})
        classes = self._dataset_meta.get('classes')
        if classes:
            self._positive_idx = self.resolve(list(classes))

    def resolve(self, classes: Sequence[str]) -> Optional[List[int]]:
        """Indices of the positive classes among ``classes``, or None when
        no groups apply (the metric is then not run).

        Raises:
            ValueError: A group names a class that ``classes`` lack, or a
                class is in no group or in both.
        """
        k = len(classes)
        if self.groups is None:
            benign = self.benign_index
            if benign is None:
                benign = _all_benign_index(classes)
            if benign is None:
                return None
            if not 0 <= benign < k:
                raise ValueError(f'BenignVsMalignant: benign_index {benign} '
                                 f'is not a class index of {list(classes)}')
            return [c for c in range(k) if c != benign]
        where = {}
        for name, members in self.groups.items():
            for ref in members:
                if isinstance(ref, int) and 0 <= ref < k:
                    idx = ref
                elif str(ref) in classes:
                    idx = list(classes).index(str(ref))
                else:
                    raise ValueError(
                        f'BenignVsMalignant: group {name!r} names class '
                        f'{ref!r}, which is not a class of the dataset '
                        f'{list(classes)}')
                if idx in where and where[idx] != name:
                    raise ValueError(
                        f'BenignVsMalignant: class {classes[idx]!r} is in '
                        f'groups {where[idx]!r} and {name!r}')
                where[idx] = name
        missing = [classes[c] for c in range(k) if c not in where]
        if missing:
            raise ValueError(
                f'BenignVsMalignant: class(es) {missing} are in no group of '
                f'{self.groups}; every class must be in one')
        return [c for c in range(k) if where[c] == self.positive]

    def compute(self, probs, labels):
        positive = self._positive_idx
        if positive is None and not (self.dataset_meta or {}).get('classes'):
            # No class names came (a bare Evaluator): indices only.
            positive = self.resolve([str(c) for c in range(probs.shape[1])])
        if positive is None:
            if not self._warned:
                MMLogger.get_current_instance().warning(
                    'BenignVsMalignant: no class groups for the classes '
                    f'{list((self.dataset_meta or {}).get("classes", []))}, '
                    'so the clinical view is not computed. Name them: '
                    "dict(type='BenignVsMalignant', groups=dict(benign=[...], "
                    'malignant=[...])) (docs/own_data.md).')
                self._warned = True
            return {}
        return group_vs_rest(probs, labels, positive)
