"""Procedural 4-class blood-smear images for demos and tests.

The real ALL images cannot ship with the package, so the demo trains on drawn
smears in the same ``Benign/ Early/ Pre/ Pro/`` layout. Each image shows a
pale pink background, red cells with a central pallor and one purple
lymphocyte. The classes differ the way the paper's figure 7 does, by the
lymphocyte: from Benign to Pro-B the cell and nucleus grow, the nucleus
outline becomes irregular, the chromatin goes from coarse dark clumps to a
fine pale texture and nucleoli appear. Every per-class parameter is drawn from
a range that overlaps its neighbours, and stain, blur, noise, position and
JPEG quality vary, so the task is learnable but not trivial.
"""
import os
import os.path as osp
import shutil
from typing import Dict, List, Sequence, Union

import cv2
import numpy as np

from .blood_cells_all import CLASS_FOLDERS
from mmdsp.utils.fileio import atomic_write_text, imwrite_atomic
from .grouped_split import grouped_stratified_split

__all__ = [
    'make_synthetic_all', 'make_synthetic_folders', 'draw_smear',
    'class_ranges', 'CLASS_PARAMS'
]

# Per class: (low, high) ranges, in units of the image side for sizes.
#   cell_r: lymphocyte radius; nc: nucleus radius / cell radius;
#   irregular: amplitude of the nucleus outline harmonics;
#   grain: chromatin blob size in pixels at 224 px (large = coarse clumps);
#   contrast: chromatin contrast; dark: nucleus darkness;
#   nucleoli: how many pale nucleoli (inclusive range).
CLASS_PARAMS = (
    dict(cell_r=(0.085, 0.115), nc=(0.78, 0.90), irregular=(0.00, 0.06),
         grain=(5.0, 8.0), contrast=(0.30, 0.45), dark=(0.80, 0.95),
         nucleoli=(0, 0)),
    dict(cell_r=(0.100, 0.135), nc=(0.74, 0.86), irregular=(0.04, 0.10),
         grain=(3.5, 6.0), contrast=(0.22, 0.36), dark=(0.70, 0.86),
         nucleoli=(0, 1)),
    dict(cell_r=(0.115, 0.150), nc=(0.72, 0.84), irregular=(0.07, 0.14),
         grain=(2.5, 4.5), contrast=(0.16, 0.28), dark=(0.62, 0.78),
         nucleoli=(1, 2)),
    dict(cell_r=(0.130, 0.170), nc=(0.70, 0.82), irregular=(0.10, 0.18),
         grain=(1.5, 3.0), contrast=(0.10, 0.20), dark=(0.55, 0.70),
         nucleoli=(1, 3)),
)


def _blob_mask(size, center, radius, irregular, rng):
    """Filled star-shaped polygon with random low harmonics."""
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(theta)
    for k in (2, 3, 4, 5):
        amp = irregular * rng.uniform(0.3, 1.0) / (k - 1)**0.5
        r += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    pts = np.stack([center[0] + radius * r * np.cos(theta),
                    center[1] + radius * r * np.sin(theta)], 1)
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1.0,
                 lineType=cv2.LINE_AA, shift=4)
    return mask


def _noise(size, grain, rng):
    """Smooth noise in [-1, 1] whose blobs are about ``grain`` pixels."""
    cells = max(2, int(round(size / grain)))
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    field = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(field / 2.0, -1, 1)


def class_ranges(label: int, spread: float = 1.0) -> Dict[str, tuple]:
    """The drawing ranges of class ``label``, each scaled about its centre.

    Args:
        label (int): Class index 0..3.
        spread (float): 1 gives :data:`CLASS_PARAMS`; smaller values narrow
            every continuous range about its centre, so neighbouring classes
            overlap less (at 0.6 every two neighbouring classes still overlap
            in cell radius and nucleus ratio, and in most other ranges).
            Defaults to 1.0.

    Returns:
        dict: ``{parameter: (low, high)}``; ``nucleoli`` is kept as is.
    """
    if not 0 < spread <= 1:
        raise ValueError(f'spread must be in (0, 1], got {spread}')
    out = {}
    for k, (lo, hi) in CLASS_PARAMS[label].items():
        if k != 'nucleoli':
            mid, half = (lo + hi) / 2, (hi - lo) / 2 * spread
            lo, hi = mid - half, mid + half
        out[k] = (lo, hi)
    return out


def draw_smear(label: int, size: int = 224, rng=None,
               spread: float = 1.0) -> np.ndarray:
    """Draw one smear image of class ``label`` as a BGR uint8 array.

    Args:
        label (int): Class index 0..3 (Benign, Early Pre-B, Pre-B, Pro-B).
        size (int): Side of the square image. Defaults to 224.
        rng (np.random.Generator, optional): Source of randomness.
        spread (float): Width of the class ranges (:func:`class_ranges`).
            Defaults to 1.0.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 BGR image.
    """
    if not 0 <= label < len(CLASS_PARAMS):
        raise ValueError(f'label must be in 0..{len(CLASS_PARAMS) - 1}, '
                         f'got {label}')
    rng = rng if rng is not None else np.random.default_rng()
    p = {k: (rng.uniform(*v) if k != 'nucleoli' else rng.integers(
        v[0], v[1] + 1)) for k, v in class_ranges(label, spread).items()}
    s = float(size)

    # Background: pale pink with a slow illumination gradient; BGR in [0, 1].
    bg = np.array([0.90, 0.84, 0.95]) + rng.uniform(-0.04, 0.04, 3)
    img = np.ones((size, size, 3), np.float32) * bg.astype(np.float32)
    img *= (1 + 0.05 * _noise(size, size / 2, rng))[..., None]

    # The lymphocyte, placed first so the red cells can avoid it.
    cx, cy = rng.uniform(0.35, 0.65, 2) * s
    cell_r = p['cell_r'] * s

    # Red cells: discs with a lighter centre (central pallor), drawn on an
    # 8-bit canvas because OpenCV anti-aliases only 8-bit images.
    canvas = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    rbc = np.array([0.62, 0.55, 0.86]) + rng.uniform(-0.05, 0.05, 3)
    for _ in range(int(rng.integers(10, 22))):
        r = rng.uniform(0.055, 0.08) * s
        x, y = rng.uniform(-0.05, 1.05, 2) * s
        if np.hypot(x - cx, y - cy) < cell_r + 0.6 * r:
            continue
        centre = (int(x * 16), int(y * 16))
        axes = (int(r * 16), int(r * rng.uniform(0.9, 1.0) * 16))
        angle = float(rng.uniform(0, 180))
        shade = rbc * rng.uniform(0.95, 1.05) * 255
        cv2.ellipse(canvas, centre, axes, angle, 0, 360, shade.tolist(), -1,
                    cv2.LINE_AA, 4)
        pallor = 0.55 * shade + 0.45 * bg * 255
        k = rng.uniform(0.35, 0.5)
        cv2.ellipse(canvas, centre, (int(axes[0] * k), int(axes[1] * k)),
                    angle, 0, 360, pallor.tolist(), -1, cv2.LINE_AA, 4)
    img = canvas.astype(np.float32) / 255

    # Cytoplasm: pale blue-purple rim around the nucleus.
    cyto = _blob_mask(size, (cx, cy), cell_r, 0.04, rng)[..., None]
    cyto_col = np.array([0.85, 0.68, 0.70]) + rng.uniform(-0.05, 0.05, 3)
    img = img * (1 - cyto) + cyto * cyto_col.astype(np.float32)

    # Nucleus, slightly off-centre, with chromatin texture.
    off = rng.uniform(-0.12, 0.12, 2) * cell_r
    nuc = _blob_mask(size, (cx + off[0], cy + off[1]), cell_r * p['nc'],
                     p['irregular'], rng)
    nuc = cv2.GaussianBlur(nuc, (3, 3), 0)[..., None]
    purple = np.array([0.55, 0.22, 0.40]) + rng.uniform(-0.05, 0.05, 3)
    chroma = _noise(size, p['grain'] * s / 224, rng)[..., None]
    tone = np.clip(1 - p['dark'] * (1 - purple) * 1.6 *
                   (1 + p['contrast'] * chroma), 0, 1)
    nuc_col = tone
    for _ in range(int(p['nucleoli'])):
        a = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(0, 0.45) * cell_r * p['nc']
        nr = rng.uniform(0.10, 0.16) * cell_r
        spot = _blob_mask(size, (cx + off[0] + d * np.cos(a),
                                 cy + off[1] + d * np.sin(a)), nr, 0.1,
                          rng)
        spot = cv2.GaussianBlur(spot, (3, 3), 0)[..., None]
        nuc_col = nuc_col * (1 - 0.5 * spot) + 0.5 * spot * np.float32(0.85)
    img = img * (1 - nuc) + nuc * nuc_col

    # Acquisition: stain shift, defocus, sensor noise.
    img *= (1 + rng.uniform(-0.06, 0.06, 3)).astype(np.float32)
    sigma = rng.uniform(0.3, 1.2)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.normal(0, rng.uniform(0.005, 0.02), img.shape).astype(
        np.float32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def make_synthetic_all(out_dir: str,
                       num_per_class: Union[int, Sequence[int]] = 60,
                       size: int = 224,
                       seed: int = 0,
                       ratios: Sequence[float] = (7, 2, 1),
                       quality: int = 92,
                       spread: float = 1.0) -> Dict[str, int]:
    """Write a synthetic ALL dataset with split files.

    Layout: ``out_dir/{Benign,Early,Pre,Pro}/syn-<Folder>-NNNN.jpg`` and
    ``out_dir/{train,val,test}.txt`` with lines ``Folder/file.jpg label``,
    readable by :class:`mmdsp.datasets.BloodCellsALL` with
    ``data_root=out_dir`` and ``ann_file='train.txt'`` etc.

    Every image is drawn from its own generator seeded with ``(seed, label,
    index)``, so a file does not depend on how many images are made and a
    rerun with the same arguments writes identical bytes.

    Args:
        out_dir (str): Output folder, created if missing.
        num_per_class (int | Sequence[int]): Images per class, one number for
            all or four. Defaults to 60.
        size (int): Image side in pixels. Defaults to 224.
        seed (int): Seed of the drawing and of the split. Defaults to 0.
        ratios (Sequence[float]): train/val/test ratios. Defaults to
            ``(7, 2, 1)`` as in the paper.
        quality (int): JPEG quality. Defaults to 92.
        spread (float): Width of the class ranges, 1 the full
            :data:`CLASS_PARAMS` (:func:`class_ranges`). Defaults to 1.0.

    Returns:
        dict: Number of images written in total and in each split file.
    """
    if isinstance(num_per_class, (int, np.integer)):
        num_per_class = [int(num_per_class)] * len(CLASS_FOLDERS)
    num_per_class = [int(n) for n in num_per_class]
    if len(num_per_class) != len(CLASS_FOLDERS) or min(num_per_class) < 1:
        raise ValueError('num_per_class must be a positive int or 4 positive '
                         f'ints, got {num_per_class}')
    if size < 32:
        raise ValueError(f'size must be at least 32 pixels, got {size}')
    if len(ratios) != 3:
        raise ValueError(f'ratios must be 3 numbers (train, val, test), '
                         f'got {list(ratios)}')

    rel_paths, labels = [], []
    for label, (folder, n) in enumerate(zip(CLASS_FOLDERS, num_per_class)):
        os.makedirs(osp.join(out_dir, folder), exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, label, i])
            img = draw_smear(label, size, rng, spread)
            rel = f'{folder}/syn-{folder}-{i:04d}.jpg'
            imwrite_atomic(osp.join(out_dir, rel), img, jpeg_quality=quality)
            rel_paths.append(rel)
            labels.append(label)

    splits = grouped_stratified_split(
        labels, np.arange(len(labels)), ratios, seed=seed)
    counts = {'total': len(labels)}
    for s, name in enumerate(('train', 'val', 'test')):
        lines = [f'{p} {lab}\n' for p, lab, k in zip(rel_paths, labels, splits)
                 if k == s]
        atomic_write_text(osp.join(out_dir, f'{name}.txt'), ''.join(lines))
        counts[name] = len(lines)
    return counts


def make_synthetic_folders(out_dir: str,
                           classes: Dict[str, int],
                           num_per_class: Union[int, Sequence[int]] = 20,
                           size: int = 64,
                           seed: int = 0,
                           exact_duplicates: int = 0,
                           shifted_duplicates: int = 0,
                           shift: float = 0.06,
                           spread: float = 1.0,
                           quality: int = 92) -> List[List[str]]:
    """Write a class-folder data set of any class names, with duplicates.

    Layout: ``out_dir/<class name>/<class name>-NNNN.jpg``, no split file:
    the input of ``split_all.py`` as a user's own data would be. Each class
    is drawn like one of the four ALL classes (``classes`` maps its name to
    that class index), so ``{'benign': 0, 'malignant': 3}`` is a 2-class
    set. Planted duplicates, spread over the classes in turn:
    ``exact_duplicates`` byte-identical copies (``...-NNNN-copy.jpg``) and
    ``shifted_duplicates`` second shots of a field moved by ``shift`` of the
    side (``...-NNNN-shift.jpg``, drawn from one larger smear), which the
    duplicate finder must group with their original.

    Args:
        out_dir (str): Output folder, created if missing.
        classes (dict[str, int]): Folder name -> drawn ALL class (0..3).
        num_per_class (int | Sequence[int]): Distinct images per class.
            Defaults to 20.
        size (int): Image side in pixels, at least 32. Defaults to 64.
        seed (int): Seed of the drawing. Defaults to 0.
        exact_duplicates (int): Byte-identical copies to plant.
        shifted_duplicates (int): Shifted second shots to plant.
        shift (float): Shift of those, as a fraction of the side.
        spread (float): Width of the class ranges (:func:`class_ranges`).
        quality (int): JPEG quality. Defaults to 92.

    Returns:
        list[list[str]]: The planted groups, paths relative to ``out_dir``.
    """
    names = list(classes)
    if isinstance(num_per_class, (int, np.integer)):
        num_per_class = [int(num_per_class)] * len(names)
    num_per_class = [int(n) for n in num_per_class]
    if len(num_per_class) != len(names) or min(num_per_class, default=0) < 1:
        raise ValueError(f'num_per_class must be a positive int or one per '
                         f'class of {names}, got {num_per_class}')
    if size < 32:
        raise ValueError(f'size must be at least 32 pixels, got {size}')
    pad = int(round(shift * size))
    planted, first = [], {}
    for c, (name, n) in enumerate(zip(names, num_per_class)):
        os.makedirs(osp.join(out_dir, name), exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, c, i])
            # Every image is cropped from a larger smear, so a shifted
            # second shot of it is another crop of the same drawing.
            big = draw_smear(classes[name], size + pad, rng, spread)
            rel = f'{name}/{name}-{i:04d}.jpg'
            imwrite_atomic(osp.join(out_dir, rel), big[:size, :size],
                           jpeg_quality=quality)
            first.setdefault(c, []).append((rel, big))
    plants = ['exact'] * exact_duplicates + ['shift'] * shifted_duplicates
    for k, kind in enumerate(plants):
        c = k % len(names)
        rel, big = first[c][(k // len(names)) % len(first[c])]
        stem = rel[:-len('.jpg')]
        if kind == 'exact':
            dup = f'{stem}-copy.jpg'
            shutil.copyfile(osp.join(out_dir, rel), osp.join(out_dir, dup))
        else:
            dup = f'{stem}-shift.jpg'
            imwrite_atomic(osp.join(out_dir, dup),
                           big[pad:pad + size, pad:pad + size],
                           jpeg_quality=quality)
        planted.append([rel, dup])
    return planted
