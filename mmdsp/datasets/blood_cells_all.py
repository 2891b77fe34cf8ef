"""The acute lymphoblastic leukemia (ALL) blood-smear dataset.

The paper trains and tests on "Blood Cells Cancer (ALL)" (3242 images, four
classes: benign, Early Pre-B, Pre-B, Pro-B) split 7:2:1. The same collection is
published as "Leukemia" (3256 images) with the folders ``Benign/ Early/ Pre/
Pro/``; the Kaggle variant names them ``Benign``, ``[Malignant] early Pre-B``,
``[Malignant] Pre-B`` and ``[Malignant] Pro-B``. Both layouts map to the same
four class indices through :data:`CLASS_ALIASES`.
"""
import os
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.fileio import list_from_file
from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS
from PIL import Image, UnidentifiedImageError

__all__ = [
    'BloodCellsALL', 'CLASS_ALIASES', 'CLASS_FOLDERS', 'resolve_class_folder',
    'check_image', 'scan_class_folders'
]

CLASSES = ('Benign', 'Early Pre-B', 'Pre-B', 'Pro-B')

# Canonical folder name of each class in the public layout, used by the
# converters when they write images.
CLASS_FOLDERS = ('Benign', 'Early', 'Pre', 'Pro')

# Accepted folder names of each class after normalisation (lower case, runs of
# blanks and underscores folded into one space).
CLASS_ALIASES = {
    0: ('benign', ),
    1: ('early', 'early pre-b', '[malignant] early pre-b',
        'malignant early pre-b'),
    2: ('pre', 'pre-b', '[malignant] pre-b', 'malignant pre-b'),
    3: ('pro', 'pro-b', '[malignant] pro-b', 'malignant pro-b'),
}
_ALIAS_TO_INDEX = {a: i for i, names in CLASS_ALIASES.items() for a in names}

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')


def _normalise(name: str) -> str:
    return re.sub(r'[\s_]+', ' ', name).strip().lower()


def resolve_class_folder(name: str) -> Optional[int]:
    """Class index of a folder name, or None when it is not an alias.

    Args:
        name (str): A folder name such as ``'Early'`` or
            ``'[Malignant] early Pre-B'`` (case-insensitive).
    """
    return _ALIAS_TO_INDEX.get(_normalise(name))


def _accepted_names() -> str:
    return '; '.join(f'{CLASSES[i]}: ' + ', '.join(repr(a) for a in names)
                     for i, names in CLASS_ALIASES.items())


def scan_class_folders(
        root: str,
        extensions: Sequence[str] = IMG_EXTENSIONS) -> List[Tuple[str, int]]:
    """List the images of a class-folder tree as ``(relative_path, label)``.

    Args:
        root (str): Folder holding one sub-folder per class.
        extensions (Sequence[str]): Image file extensions (any case).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: A sub-folder is not a known class name (the message lists
            the accepted names), two folders are the same class, a class has
            no folder, or a class folder holds no image.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'BloodCellsALL: data folder {root!r} does '
                                'not exist')
    exts = tuple(e.lower() for e in extensions)
    folders = sorted(
        d for d in os.listdir(root)
        if osp.isdir(osp.join(root, d)) and not d.startswith('.'))
    seen = {}
    for d in folders:
        idx = resolve_class_folder(d)
        if idx is None:
            raise ValueError(
                f'BloodCellsALL: unknown class folder {osp.join(root, d)!r}. '
                f'Accepted folder names (case-insensitive) are {{'
                f'{_accepted_names()}}}. Point data_root/data_prefix at the '
                'folder that holds the class folders.')
        if idx in seen:
            raise ValueError(
                f'BloodCellsALL: folders {seen[idx]!r} and {d!r} under '
                f'{root!r} are both class {CLASSES[idx]!r}')
        seen[idx] = d
    missing = [CLASSES[i] for i in range(len(CLASSES)) if i not in seen]
    if missing:
        raise ValueError(f'BloodCellsALL: no folder for class(es) {missing} '
                         f'under {root!r}; found {folders}')
    samples = []
    for idx in sorted(seen):
        folder = seen[idx]
        files = []
        for dirpath, dirnames, filenames in os.walk(osp.join(root, folder)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
            rel = osp.relpath(dirpath, root)
            files += [
                osp.join(rel, f).replace(osp.sep, '/')
                for f in sorted(filenames)
                if f.lower().endswith(exts) and not f.startswith('.')
            ]
        if not files:
            raise ValueError(
                f'BloodCellsALL: class folder {osp.join(root, folder)!r} '
                f'holds no image (extensions {", ".join(exts)})')
        samples += [(f, idx) for f in files]
    return samples


def check_image(path: str, decode: bool = False, min_size: int = 1) -> \
        Optional[str]:
    """Why an image file cannot be used, or None when it can.

    The default check reads the header with Pillow and makes sure a JPEG ends
    with its end-of-image marker and a PNG with its ``IEND`` chunk, which
    catches empty, corrupt and truncated files at about 0.3 ms per image.
    Grayscale, palette and RGBA files pass: ``LoadImageFromFile`` decodes
    them to 3-channel BGR.

    Args:
        path (str): Image file.
        decode (bool): Also decode the pixels with OpenCV, as
            ``LoadImageFromFile`` will (about 1 ms per image). Catches
            corruption inside the compressed data. Defaults to False.
        min_size (int): Images whose width or height is smaller are
            rejected. Defaults to 1.

    Returns:
        str | None: A short reason, e.g. ``'truncated JPEG (no end-of-image
        marker)'``.
    """
    try:
        size = osp.getsize(path)
    except OSError as e:
        return f'cannot read file ({e.strerror})'
    if size == 0:
        return 'empty file (0 bytes)'
    try:
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
    except UnidentifiedImageError:
        return 'not an image Pillow can identify (corrupt or wrong format)'
    except Exception as e:  # Pillow raises several types on bad headers
        return f'unreadable header ({type(e).__name__}: {e})'
    with open(path, 'rb') as f:
        f.seek(max(0, size - 1024))
        tail = f.read()
    if fmt == 'JPEG' and b'\xff\xd9' not in tail:
        return 'truncated JPEG (no end-of-image marker)'
    if fmt == 'PNG' and b'IEND' not in tail:
        return 'truncated PNG (no IEND chunk)'
    if w < min_size or h < min_size:
        return f'image is {w}x{h}, smaller than min_size={min_size}'
    if decode:
        import cv2
        import numpy as np
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            return 'OpenCV cannot decode the pixel data'
    return None


@DATASETS.register_module()
class BloodCellsALL(CustomDataset):
    """Acute lymphoblastic leukemia blood-smear images, four classes.

    Without ``ann_file`` the images are found in class folders under
    ``data_root/data_prefix``; folder names are matched case-insensitively
    against :data:`CLASS_ALIASES`, so the public layout (``Benign/ Early/
    Pre/ Pro/``) and the Kaggle "Blood Cells Cancer (ALL)" layout
    (``Benign``, ``[Malignant] early Pre-B``, ``[Malignant] Pre-B``,
    ``[Malignant] Pro-B``) give the same labels. With ``ann_file`` each line
    is ``relative/path label_index`` (as written by
    ``tools/dataset_converters/split_all.py``), paths relative to
    ``data_root/data_prefix``; a path may contain blanks.

    Unusable image files are screened at initialisation (see
    :func:`check_image`): each is logged with its reason and dropped, and the
    number dropped is logged, or an error listing them is raised when
    ``on_bad_image='error'``.

    Args:
        data_root (str): Root of ``data_prefix`` and ``ann_file``.
            Defaults to ''.
        data_prefix (str | dict): Folder of the images (or of the class
            folders), relative to ``data_root``. Defaults to ''.
        ann_file (str): Split file; empty means scan the class folders.
            Defaults to ''.
        verify_images (bool | str): ``True`` checks headers and end markers,
            ``'decode'`` also decodes every image, ``False`` checks nothing.
            Defaults to True.
        on_bad_image (str): ``'skip'`` or ``'error'``. Defaults to 'skip'.
        min_size (int): Smallest accepted width and height, in pixels.
            Defaults to 1.
        **kwargs: Other arguments of
            :class:`mmpretrain.datasets.CustomDataset`.
    """

    METAINFO = {'classes': CLASSES}

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 ann_file: str = '',
                 verify_images: Union[bool, str] = True,
                 on_bad_image: str = 'skip',
                 min_size: int = 1,
                 **kwargs):
        if verify_images not in (True, False, 'decode'):
            raise ValueError('BloodCellsALL: verify_images must be True, '
                             f"False or 'decode', got {verify_images!r}")
        if on_bad_image not in ('skip', 'error'):
            raise ValueError("BloodCellsALL: on_bad_image must be 'skip' or "
                             f"'error', got {on_bad_image!r}")
        if not kwargs.pop('with_label', True):
            raise ValueError('BloodCellsALL is a labelled dataset; '
                             'with_label=False is not supported')
        if data_root and not osp.isdir(osp.expanduser(data_root)):
            raise FileNotFoundError(
                f'BloodCellsALL: data_root {data_root!r} does not exist')
        self.verify_images = verify_images
        self.on_bad_image = on_bad_image
        self.min_size = min_size
        kwargs.setdefault('extensions', IMG_EXTENSIONS)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file=ann_file,
            with_label=True,
            **kwargs)

    def _read_ann_file(self) -> List[Tuple[str, int]]:
        ann_file = self.ann_file
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'BloodCellsALL: ann_file {ann_file!r} does not exist')
        samples = []
        num_classes = len(self.CLASSES)
        for lineno, line in enumerate(list_from_file(ann_file), 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not re.fullmatch(r'-?\d+', parts[1]):
                raise ValueError(
                    f'BloodCellsALL: {ann_file}:{lineno}: expected '
                    f"'relative/path label_index', got {line!r}")
            label = int(parts[1])
            if not 0 <= label < num_classes:
                raise ValueError(
                    f'BloodCellsALL: {ann_file}:{lineno}: label {label} is '
                    f'outside 0..{num_classes - 1} {self.CLASSES}')
            path = osp.join(self.img_prefix, parts[0])
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'BloodCellsALL: {ann_file}:{lineno}: image {path!r} '
                    'does not exist')
            samples.append((parts[0], label))
        if not samples:
            raise ValueError(f'BloodCellsALL: ann_file {ann_file!r} lists no '
                             'image')
        return samples

    def load_data_list(self) -> List[dict]:
        """Read the split file or scan the class folders, then screen files.

        Returns:
            list[dict]: ``img_path`` and ``gt_label`` of each usable image.
        """
        if len(self.CLASSES) != len(CLASSES):
            raise ValueError(f'BloodCellsALL has {len(CLASSES)} classes '
                             f'{CLASSES}, got classes={self.CLASSES}')
        if self.ann_file:
            samples = self._read_ann_file()
        else:
            samples = scan_class_folders(self.img_prefix, self.extensions)

        data_list, bad = [], []
        for rel, label in samples:
            path = osp.join(self.img_prefix, rel)
            if self.verify_images:
                reason = check_image(
                    path,
                    decode=self.verify_images == 'decode',
                    min_size=self.min_size)
                if reason is not None:
                    bad.append((path, reason))
                    continue
            data_list.append({'img_path': path, 'gt_label': int(label)})

        if bad:
            listing = '\n'.join(f'  {p}: {r}' for p, r in bad)
            if self.on_bad_image == 'error':
                raise ValueError(f'BloodCellsALL: {len(bad)} unusable image '
                                 f'file(s):\n{listing}')
            logger = MMLogger.get_current_instance()
            for p, r in bad:
                logger.warning(f'BloodCellsALL: skipping {p}: {r}')
            logger.warning(f'BloodCellsALL: skipped {len(bad)} of '
                           f'{len(samples)} image files under '
                           f'{self.img_prefix!r}')
        self.skipped_images = bad
        if not data_list:
            raise ValueError('BloodCellsALL: no usable image under '
                             f'{self.img_prefix!r}')
        return data_list
