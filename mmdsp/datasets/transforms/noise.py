"""Additive Gaussian noise, a paper augmentation (sections 3.1 and 4.1)."""
from numbers import Number
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS

__all__ = ['RandomGaussianNoise']


@TRANSFORMS.register_module()
class RandomGaussianNoise(BaseTransform):
    """Add i.i.d. Gaussian noise to every pixel and channel.

    Randomness comes from numpy's global RNG, like mmcv's transforms, so
    ``mmengine``'s seeding (``randomness=dict(seed=...)``) and
    ``np.random.seed`` make it reproducible.

    Required Keys:

    - img

    Modified Keys:

    - img (same shape and dtype)

    Args:
        prob (float): Probability of adding noise. Defaults to 0.5.
        mean (float): Noise mean, in pixel units. Defaults to 0.
        std (float | tuple[float, float]): Noise standard deviation in pixel
            units (0-255 scale for uint8 and for the float images of
            ``LoadImageFromFile(to_float32=True)``); a ``(low, high)`` pair
            draws it uniformly per image. Defaults to ``(0., 10.)``.
        clip (bool): Clip float results to ``clip_range``. Integer images are
            always clipped to their dtype's range (wrapping around would
            turn dark pixels white). Defaults to True.
        clip_range (tuple[float, float], optional): Range for float images.
            Defaults to ``(0, 255)``.
    """

    def __init__(self,
                 prob: float = 0.5,
                 mean: float = 0.,
                 std: Union[float, Sequence[float]] = (0., 10.),
                 clip: bool = True,
                 clip_range: Optional[Tuple[float, float]] = (0., 255.)):
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomGaussianNoise: prob must be in [0, 1], '
                             f'got {prob!r}')
        if isinstance(std, Number):
            std = (float(std), float(std))
        else:
            std = tuple(float(s) for s in std)
            if len(std) != 2:
                raise ValueError('RandomGaussianNoise: std must be a number '
                                 f'or a (low, high) pair, got {std!r}')
        if not 0 <= std[0] <= std[1]:
            raise ValueError('RandomGaussianNoise: need 0 <= low <= high for '
                             f'std, got {std!r}')
        if clip and clip_range is not None and clip_range[0] > clip_range[1]:
            raise ValueError(f'RandomGaussianNoise: bad clip_range '
                             f'{clip_range!r}')
        self.prob = prob
        self.mean = float(mean)
        self.std = std
        self.clip = clip
        self.clip_range = clip_range

    @cache_randomness
    def _draw(self):
        """Whether to apply, the std, and a seed for the noise field."""
        apply = np.random.rand() < self.prob
        std = np.random.uniform(*self.std)
        seed = np.random.randint(0, 2**31 - 1)
        return apply, std, seed

    def transform(self, results: Dict) -> Dict:
        img = results.get('img')
        if img is None:
            raise KeyError("RandomGaussianNoise: results has no 'img'")
        apply, std, seed = self._draw()
        if not apply or (std == 0 and self.mean == 0):
            return results
        # A float32 generator seeded from the global RNG is ~2x faster than
        # np.random.normal (float64) and still reproducible.
        noise = np.random.default_rng(seed).standard_normal(img.shape,
                                                            dtype=np.float32)
        noisy = img.astype(np.float32) + (noise * std + self.mean)
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            noisy = np.clip(np.rint(noisy), info.min, info.max)
        elif self.clip and self.clip_range is not None:
            noisy = np.clip(noisy, *self.clip_range)
        results['img'] = noisy.astype(img.dtype)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'mean={self.mean}, std={self.std}, clip={self.clip}, '
                f'clip_range={self.clip_range})')
