"""Finding the duplicate images of a classification dataset.

The public ALL blood-smear collection contains byte-identical copies and the
same microscope field photographed several times with a small or a large
shift. A random split puts the two shots of one field on different sides and
leaks test cells into training, so the split tool first groups such images
here and then assigns whole groups to one split (:mod:`.grouped_split`).

Detection runs in two stages:

1. Candidates: byte-identical files (MD5) are duplicates outright. Other
   candidate pairs are those whose 64-bit DCT perceptual hash differs in at
   most ``phash_thr`` bits, plus (optionally) images that are within
   ``neighbours`` positions of each other in file-name order inside one class
   folder, because sequential captures of a slide are where panned,
   overlapping fields come from.
2. Verification: the two images are registered with phase correlation and the
   normalised cross-correlation (NCC) of the overlapping area is computed. A
   pair is a near-duplicate when the overlap covers at least ``min_overlap``
   of the frame and the NCC reaches ``ncc_thr``.

The thresholds are justified by measurements on the real data in
``docs/dataset.md``.
"""
import hashlib
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'file_md5', 'load_gray', 'phash', 'hamming_matrix', 'aligned_ncc',
    'UnionFind', 'exact_duplicate_pairs', 'find_duplicates'
]

# Bit weights used to pack 64 booleans into one unsigned integer.
_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))


def file_md5(path: str) -> str:
    """MD5 hex digest of a file's bytes.

    Args:
        path (str): The file to hash.
    """
    h = hashlib.md5()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def load_gray(path: str, size: int = 128) -> np.ndarray:
    """Load an image as a ``size`` x ``size`` uint8 grayscale array.

    Args:
        path (str): Image file.
        size (int): Side of the square working resolution. Defaults to 128.

    Raises:
        ValueError: If OpenCV cannot decode the file; the message names it.
    """
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f'cannot decode image {path!r}')
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def phash(gray: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of a grayscale image.

    The image is reduced to 32x32, the 8x8 lowest DCT frequencies are kept
    and each bit says whether a coefficient is above the median of the 63 AC
    coefficients (the DC term only encodes brightness).

    Args:
        gray (np.ndarray): 2-D grayscale image of any size.

    Returns:
        np.uint64: The packed hash.
    """
    if gray.ndim != 2:
        raise ValueError(f'phash expects a 2-D image, got shape {gray.shape}')
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(small.astype(np.float32))[:8, :8].ravel()
    bits = coeffs > np.median(coeffs[1:])
    return np.uint64(_BIT_WEIGHTS[bits].sum(dtype=np.uint64))


def hamming_matrix(hashes: Sequence[int]) -> np.ndarray:
    """All-pairs Hamming distances of 64-bit hashes, as an ``(N, N)`` uint8.

    Args:
        hashes (Sequence[int]): The packed hashes.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    return np.bitwise_count(h[:, None] ^ h[None, :]).astype(np.uint8)


def aligned_ncc(a: np.ndarray,
                b: np.ndarray,
                min_overlap: float = 0.25) -> Tuple[float, int, int, float]:
    """Register ``b`` onto ``a`` (phase correlation), correlate the overlap.

    Args:
        a (np.ndarray): 2-D image.
        b (np.ndarray): 2-D image of the same shape.
        min_overlap (float): Smallest overlapping fraction of the frame for
            which a correlation is computed. Defaults to 0.25.

    Returns:
        tuple: ``(ncc, dx, dy, overlap)`` where ``b(x + dx, y + dy)`` matches
        ``a(x, y)``. ``ncc`` is -1 when the overlap is below ``min_overlap``
        and 0 when either overlapping patch is flat.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError('aligned_ncc expects two 2-D images of one shape, '
                         f'got {a.shape} and {b.shape}')
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    h, w = a.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    # phaseCorrelate multiplies float32 inputs by the window in place.
    (fx, fy), _ = cv2.phaseCorrelate(a.copy(), b.copy(), window)
    dx, dy = int(round(fx)), int(round(fy))
    overlap = max(0, w - abs(dx)) * max(0, h - abs(dy)) / float(w * h)
    if overlap < min_overlap:
        return -1.0, dx, dy, overlap
    ya, xa = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx),
                                                       w - max(0, dx))
    yb, xb = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx),
                                                       w - max(0, -dx))
    pa = a[ya, xa] - a[ya, xa].mean()
    pb = b[yb, xb] - b[yb, xb].mean()
    denom = float(np.sqrt((pa * pa).sum() * (pb * pb).sum()))
    if denom < 1e-6:
        return 0.0, dx, dy, overlap
    return float((pa * pb).sum() / denom), dx, dy, overlap


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving and union by size.

    Args:
        n (int): Number of elements.
    """

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return
        if self.size[rx] < self.size[ry]:
            rx, ry = ry, rx
        self.parent[ry] = rx
        self.size[rx] += self.size[ry]

    def groups(self) -> List[List[int]]:
        """All sets as sorted index lists, ordered by their smallest index."""
        out: Dict[int, List[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return sorted(out.values(), key=lambda g: g[0])


def exact_duplicate_pairs(digests: Sequence[str]) -> List[Tuple[int, int]]:
    """Pairs ``(first, other)`` of items sharing a digest, in index order.

    Args:
        digests (Sequence[str]): One content digest (e.g. MD5) per item.
    """
    by_digest: Dict[str, List[int]] = {}
    for i, d in enumerate(digests):
        by_digest.setdefault(d, []).append(i)
    return sorted((members[0], j) for members in by_digest.values()
                  for j in members[1:])


def find_duplicates(paths: Sequence[str],
                    labels: Sequence[int],
                    phash_thr: int = 18,
                    ncc_thr: float = 0.6,
                    neighbours: int = 5,
                    min_overlap: float = 0.25,
                    work_size: int = 128) -> dict:
    """Find exact and near duplicates and group them with union-find.

    Args:
        paths (Sequence[str]): Image files; every one must be decodable
            (screen them with :func:`mmdsp.datasets.check_image` first).
        labels (Sequence[int]): Class index of each image; used for the
            neighbour candidates and to flag groups spanning classes.
        phash_thr (int): Largest pHash Hamming distance (of 64 bits) that
            makes a pair a candidate. Defaults to 18.
        ncc_thr (float): Smallest aligned NCC that confirms a candidate.
            Defaults to 0.6.
        neighbours (int): Also test each image against the next
            ``neighbours`` images of its class in file-name order; 0 turns
            this off. Defaults to 5.
        min_overlap (float): Smallest overlapping fraction of the frame after
            registration. Defaults to 0.25.
        work_size (int): Side of the grayscale working resolution.
            Defaults to 128.

    Returns:
        dict: ``exact_pairs`` (list of ``(i, j)``), ``near_pairs`` (list of
        dicts with ``i, j, hamming, ncc, dx, dy, overlap, kind``, the shift
        ``dx, dy`` as a fraction of the frame and kind
        ``'near'`` when the pHash found the pair and ``'overlap'`` when only
        the neighbour search did), ``groups`` (index lists with more than one
        member), ``conflicts`` (the groups whose labels differ), and the
        number of ``candidates`` verified.
    """
    if len(paths) != len(labels):
        raise ValueError(f'{len(paths)} paths but {len(labels)} labels')
    n = len(paths)
    digests = [file_md5(p) for p in paths]
    grays = [load_gray(p, work_size) for p in paths]
    hashes = [phash(g) for g in grays]
    uf = UnionFind(n)
    exact_pairs = exact_duplicate_pairs(digests)
    for i, j in exact_pairs:
        uf.union(i, j)

    dist = hamming_matrix(hashes) if n else np.zeros((0, 0), np.uint8)
    iu, ju = np.nonzero(np.triu(dist <= phash_thr, k=1))
    candidates = set(zip(iu.tolist(), ju.tolist()))
    if neighbours > 0:
        # Neighbours in file-name order inside each class.
        order = sorted(range(n), key=lambda k: (labels[k], paths[k]))
        for pos, i in enumerate(order):
            for j in order[pos + 1:pos + 1 + neighbours]:
                if labels[j] == labels[i]:
                    candidates.add((min(i, j), max(i, j)))
    candidates = sorted((i, j) for i, j in candidates
                        if digests[i] != digests[j])

    near_pairs = []
    for i, j in candidates:
        ncc, dx, dy, overlap = aligned_ncc(grays[i], grays[j], min_overlap)
        if ncc >= ncc_thr:
            near_pairs.append(
                dict(
                    i=i,
                    j=j,
                    hamming=int(dist[i, j]),
                    ncc=round(ncc, 4),
                    dx=round(dx / work_size, 3),
                    dy=round(dy / work_size, 3),
                    overlap=round(overlap, 3),
                    kind='near' if dist[i, j] <= phash_thr else 'overlap'))
            uf.union(i, j)

    groups = [g for g in uf.groups() if len(g) > 1]
    conflicts = [g for g in groups if len({labels[k] for k in g}) > 1]
    return dict(
        exact_pairs=exact_pairs,
        near_pairs=near_pairs,
        groups=groups,
        conflicts=conflicts,
        candidates=len(candidates))
