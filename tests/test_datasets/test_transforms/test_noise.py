import numpy as np
import pytest
from mmpretrain.registry import TRANSFORMS

import mmdsp  # noqa: F401
from mmdsp.datasets.transforms import RandomGaussianNoise


def test_registered():
    t = TRANSFORMS.build(dict(type='RandomGaussianNoise', std=3.))
    assert isinstance(t, RandomGaussianNoise)


def test_statistics_uint8():
    img = np.full((128, 128, 3), 128, np.uint8)
    np.random.seed(0)
    out = RandomGaussianNoise(prob=1., mean=2., std=10.)(dict(img=img))['img']
    assert out.dtype == np.uint8 and out.shape == img.shape
    diff = out.astype(np.float64) - 128
    assert abs(diff.mean() - 2.) < 0.2
    assert abs(diff.std() - 10.) < 0.3


def test_std_range_drawn_per_image_float():
    img = np.full((64, 64, 3), 100., np.float32)
    np.random.seed(1)
    t = RandomGaussianNoise(prob=1., std=(4., 8.))
    stds = [(t(dict(img=img.copy()))['img'] - 100).std() for _ in range(20)]
    assert all(3.8 < s < 8.2 for s in stds)
    assert max(stds) - min(stds) > 1.  # really drawn per image
    assert t(dict(img=img.copy()))['img'].dtype == np.float32


def test_clipping():
    img = np.zeros((32, 32), np.uint8)
    img[:, 16:] = 255
    np.random.seed(2)
    out = RandomGaussianNoise(prob=1., std=30.)(dict(img=img))['img']
    assert out.dtype == np.uint8
    # No wrap-around: black stays dark, white stays bright.
    assert out[:, :16].mean() < 20 and out[:, 16:].mean() > 235
    fimg = np.full((32, 32, 3), 250., np.float32)
    out = RandomGaussianNoise(prob=1., std=20.)(dict(img=fimg))['img']
    assert out.max() <= 255.
    out = RandomGaussianNoise(prob=1., std=20.,
                              clip=False)(dict(img=fimg))['img']
    assert out.max() > 255.


def test_prob_and_seeding():
    img = np.full((16, 16, 3), 128, np.uint8)
    t = RandomGaussianNoise(prob=0.5, std=5.)
    np.random.seed(3)
    changed = [
        not np.array_equal(t(dict(img=img))['img'], img) for _ in range(200)
    ]
    assert 0.38 < np.mean(changed) < 0.62
    np.random.seed(4)
    a = t(dict(img=img))['img']
    np.random.seed(4)
    b = t(dict(img=img))['img']
    np.testing.assert_array_equal(a, b)
    assert np.array_equal(
        RandomGaussianNoise(prob=0.)(dict(img=img))['img'], img)


def test_bad_arguments():
    with pytest.raises(ValueError, match='prob'):
        RandomGaussianNoise(prob=2)
    with pytest.raises(ValueError, match='std'):
        RandomGaussianNoise(std=(5, 1))
    with pytest.raises(ValueError, match='std'):
        RandomGaussianNoise(std=(1, 2, 3))
