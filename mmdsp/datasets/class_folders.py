"""Any image classification dataset laid out as one folder per class.

The ALL data set has its own folder aliases (:mod:`.blood_cells_all`); every
other data set, a hospital's own smears with two classes or seven, is read
here the way MMPretrain's ``CustomDataset`` reads a folder tree: the class
names are the folder names, sorted, and the label of an image is the index
of its folder. What this adds is the checks a new data set needs before it
is split or trained on, each failing with the file or folder it is about,
and the ``classes.txt`` that ties a split's label indices to class names.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from PIL import Image, UnidentifiedImageError

__all__ = [
    'IMG_EXTENSIONS', 'check_image', 'list_class_folders',
    'scan_image_folders', 'read_classes_file', 'classes_file_text'
]

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')

# What a split folder calls the file listing its class names, one a line, in
# label order (label i is line i + 1).
CLASSES_FILE = 'classes.txt'

# Files a file manager or an OS leaves in folders; never images, never data.
_SYSTEM_FILES = ('thumbs.db', 'desktop.ini')


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


def list_class_folders(root: str) -> List[str]:
    """The visible sub-folders of ``root``, sorted (the class folders).

    Args:
        root (str): Folder holding one sub-folder per class.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'data folder {root!r} does not exist')
    return sorted(d for d in os.listdir(root)
                  if osp.isdir(osp.join(root, d)) and not d.startswith('.'))


def _walk_files(root: str, folder: str) -> List[str]:
    """Every visible file under ``root/folder``, relative to ``root``."""
    files = []
    for dirpath, dirnames, filenames in os.walk(osp.join(root, folder)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        rel = osp.relpath(dirpath, root)
        files += [
            osp.join(rel, f).replace(osp.sep, '/') for f in sorted(filenames)
            if not f.startswith('.') and f.lower() not in _SYSTEM_FILES
        ]
    return files


def scan_image_folders(
    root: str,
    extensions: Sequence[str] = IMG_EXTENSIONS
) -> Tuple[Tuple[str, ...], List[Tuple[str, int]]]:
    """Class names and ``(relative_path, label)`` of a class-folder tree.

    The classes are the sub-folders of ``root`` in sorted order, as in
    MMPretrain's ``CustomDataset``; images may sit in nested folders below
    their class folder. Hidden files and folders are ignored.

    Args:
        root (str): Folder holding one sub-folder per class.
        extensions (Sequence[str]): Image file extensions (any case).

    Returns:
        tuple: ``(classes, samples)``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: With the folder or file named: ``root`` holds fewer than
            two class folders (images lying in ``root`` itself are named, a
            common mistake), a class folder holds no image, or a class folder
            holds a file whose extension is not an image's (a ``.heic`` or
            ``.dcm`` would otherwise be dropped without a word, and with it
            maybe a whole class).
    """
    exts = tuple(e.lower() for e in extensions)
    folders = list_class_folders(root)
    if len(folders) < 2:
        loose = [f for f in sorted(os.listdir(root))
                 if f.lower().endswith(exts)]
        hint = (f' It holds {len(loose)} image(s) directly (e.g. '
                f'{loose[0]!r}); put each class in its own folder.'
                if loose else '')
        found = (f'only one class folder, {osp.join(root, folders[0])!r}'
                 if folders else 'no class folder')
        raise ValueError(
            f'{root!r} holds {found}; a classifier needs at least two '
            f'classes, one folder each (e.g. {osp.join(root, "Class A")}/ '
            f'and {osp.join(root, "Class B")}/).{hint}')
    samples = []
    for label, folder in enumerate(folders):
        files = _walk_files(root, folder)
        others = [f for f in files if not f.lower().endswith(exts)]
        if others:
            raise ValueError(
                f'{osp.join(root, others[0])!r} is not an image file (it '
                f'has none of the extensions {", ".join(exts)}); '
                f'{len(others)} such file(s) under '
                f'{osp.join(root, folder)!r}. Convert or remove them, so '
                'that no image is left out unseen.')
        if not files:
            raise ValueError(f'class folder {osp.join(root, folder)!r} holds '
                             f'no image (extensions {", ".join(exts)})')
        samples += [(f, label) for f in files]
    return tuple(folders), samples


def read_classes_file(path: str) -> Tuple[str, ...]:
    """Class names of a split, from its ``classes.txt``.

    Args:
        path (str): The file; one class name a line, in label order.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: It lists no class or one name twice.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'classes file {path!r} does not exist')
    with open(path, encoding='utf-8') as f:
        names = tuple(line.rstrip('\n') for line in f if line.strip())
    if not names:
        raise ValueError(f'classes file {path!r} lists no class')
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f'classes file {path!r} lists {dup} twice')
    return names


def classes_file_text(classes: Sequence[str]) -> str:
    """The text of a ``classes.txt``: one name a line, in label order."""
    return ''.join(f'{c}\n' for c in classes)
