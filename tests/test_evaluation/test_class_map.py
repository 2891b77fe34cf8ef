import json

import numpy as np
import pytest

from mmdsp.evaluation.class_map import (class_map_indices, load_class_map,
                                        map_probs, mapped_metrics)

MODEL = ('Benign', 'Early Pre-B', 'Pre-B', 'Pro-B')
PAIRS = ['Benign=benign', 'Early Pre-B=malignant', 'Pre-B = malignant',
         'Pro-B=malignant']


def test_load_pairs_json_and_dict(tmp_path):
    expected = dict(zip(MODEL, ['benign'] + ['malignant'] * 3))
    assert load_class_map(PAIRS) == expected
    path = tmp_path / 'map.json'
    path.write_text(json.dumps(expected))
    assert load_class_map(str(path)) == expected
    assert load_class_map(expected) == expected
    with pytest.raises(ValueError, match='twice'):
        load_class_map(PAIRS + ['Benign=malignant'])
    with pytest.raises(ValueError, match="'Benign'"):
        load_class_map(['Benign'])


def test_indices_and_their_errors():
    cmap = load_class_map(PAIRS)
    data = ('benign', 'malignant')
    assert class_map_indices(cmap, MODEL, data).tolist() == [0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"misses the model class\(es\) "
                       r"\['Pro-B'\]"):
        class_map_indices(load_class_map(PAIRS[:3]), MODEL, data)
    with pytest.raises(ValueError, match=r"\['tumour'\], not classes of the "
                       'data'):
        class_map_indices(dict(cmap, Benign='tumour'), MODEL, data)
    with pytest.raises(ValueError, match=r"names \['Blast'\]"):
        class_map_indices(dict(cmap, Blast='benign'), MODEL, data)
    with pytest.raises(ValueError, match=r"no model class maps to .*"
                       r"'other'"):
        class_map_indices(cmap, MODEL, data + ('other', ))


def test_mass_decides_and_metrics():
    index = np.array([0, 1, 1, 1])
    probs = np.array([[0.4, 0.3, 0.3, 0.0],   # malignant by mass
                      [0.7, 0.1, 0.1, 0.1],
                      [0.1, 0.0, 0.0, 0.9],
                      [0.6, 0.2, 0.1, 0.1]])
    mapped = map_probs(probs, index, 2)
    np.testing.assert_allclose(mapped[0], [0.4, 0.6])
    np.testing.assert_allclose(mapped.sum(1), 1)
    labels = np.array([1, 0, 1, 1])
    out = mapped_metrics(mapped, labels, ('benign', 'malignant'),
                         positive=[1], n_resamples=50)
    assert out['accuracy'] == pytest.approx(75)
    assert out['confusion'] == [[1, 0], [1, 2]]
    assert out['recall/malignant'] == pytest.approx(200 / 3)
    assert out['clinical/sensitivity'] == pytest.approx(200 / 3)
    assert out['clinical/specificity'] == pytest.approx(100)
    assert out['accuracy_low'] <= 75 <= out['accuracy_high']
