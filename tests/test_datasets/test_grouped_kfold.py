import numpy as np
import pytest

from mmdsp.datasets.grouped_kfold import grouped_stratified_kfold


def test_groups_stay_in_one_fold_and_classes_spread():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    groups = np.arange(200)
    groups[:45] = np.repeat(np.arange(15), 3)  # fifteen groups of three
    fold = grouped_stratified_kfold(labels, groups, 4, seed=1)
    for g in range(15):
        assert len(set(fold[groups == g])) == 1
    counts = np.stack([np.bincount(labels[fold == f], minlength=3)
                       for f in range(4)])
    assert (counts > 0).all()
    # Within a group's size of the even share of each class.
    assert (counts.max(0) - counts.min(0) <= 3).all()
    assert (grouped_stratified_kfold(labels, groups, 4, seed=1) == fold).all()
    assert (grouped_stratified_kfold(labels, groups, 4, seed=2) != fold).any()


def test_singletons_are_balanced_to_one_image():
    labels = np.array([0] * 10 + [1] * 7)
    fold = grouped_stratified_kfold(labels, np.arange(17), 3)
    counts = np.stack([np.bincount(labels[fold == f], minlength=2)
                       for f in range(3)])
    assert sorted(counts[:, 0]) == [3, 3, 4]
    assert sorted(counts[:, 1]) == [2, 2, 3]


def test_more_folds_than_groups_of_a_class_is_an_error():
    labels = np.array([0] * 6 + [1] * 4)
    groups = np.array([0, 1, 2, 3, 4, 5, 6, 6, 7, 7])  # class 1: 2 groups
    with pytest.raises(ValueError, match=r"class 'rare' has 2"):
        grouped_stratified_kfold(labels, groups, 3,
                                 class_names=['common', 'rare'])
    with pytest.raises(ValueError, match='num_folds'):
        grouped_stratified_kfold(labels, groups, 1)
