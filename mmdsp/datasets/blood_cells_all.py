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
from typing import List, Optional, Sequence, Tuple

from mmpretrain.registry import DATASETS

from .class_folder_dataset import ClassFolderDataset
from .class_folders import (IMG_EXTENSIONS, check_image, list_class_folders,
                            scan_image_folders)

__all__ = [
    'BloodCellsALL', 'CLASS_ALIASES', 'CLASS_FOLDERS', 'IMG_EXTENSIONS',
    'resolve_class_folder', 'check_image', 'scan_class_folders',
    'scan_dataset_folders'
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


def scan_dataset_folders(
        root: str) -> Tuple[Tuple[str, ...], List[Tuple[str, int]]]:
    """Class names and ``(relative_path, label)`` of any class-folder tree.

    The four ALL folders, under any of their aliases, give the ALL classes in
    the paper's order (the shipped split depends on it); any other tree gives
    its sorted folder names
    (:func:`~mmdsp.datasets.class_folders.scan_image_folders`).

    Args:
        root (str): Folder holding one sub-folder per class.
    """
    indices = [resolve_class_folder(d) for d in list_class_folders(root)]
    if None not in indices and sorted(indices) == list(range(len(CLASSES))):
        return CLASSES, scan_class_folders(root)
    return scan_image_folders(root)


@DATASETS.register_module()
class BloodCellsALL(ClassFolderDataset):
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
        data_root, data_prefix, ann_file, verify_images, on_bad_image,
        min_size, **kwargs: As for :class:`ClassFolderDataset`; the classes
            are the four above.
    """

    METAINFO = {'classes': CLASSES}

    def _scan_folders(self) -> List[Tuple[str, int]]:
        # The folder names are matched against the aliases, not sorted.
        return scan_class_folders(self.img_prefix, self.extensions)

    def _list_samples(self) -> List[Tuple[str, int]]:
        if len(self.CLASSES) != len(CLASSES):
            raise ValueError(f'BloodCellsALL has {len(CLASSES)} classes '
                             f'{CLASSES}, got classes={self.CLASSES}')
        return super()._list_samples()
