"""A labelled class-folder dataset with its class names checked, for any data.

MMPretrain's ``CustomDataset`` reads ``path label`` split files and class
folders, but it takes the label indices on trust: a config whose ``classes``
are in another order than the split's labels trains and reports every class
under the wrong name, and a corrupt file stops training at the epoch that
draws it. :class:`ClassFolderDataset` is that dataset with the checks.
"""
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.fileio import list_from_file
from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .class_folders import (CLASSES_FILE, IMG_EXTENSIONS, check_image,
                            read_classes_file, scan_image_folders)

__all__ = ['ClassFolderDataset']


@DATASETS.register_module()
class ClassFolderDataset(CustomDataset):
    """Images of any classes, from a split file or from class folders.

    With ``ann_file`` each line is ``relative/path label_index`` (as written
    by ``tools/dataset_converters/split_all.py``), paths relative to
    ``data_root/data_prefix``; a path may contain blanks. Without it the
    images are found in the class folders under ``data_root/data_prefix``
    (class names = folder names, sorted).

    The class names are ``classes``, else the ``classes.txt`` that
    ``split_all.py`` writes beside the split file, else the folder names.
    When two of these are there they must agree, name for name and in order:
    the split's label ``i`` is the ``i``-th class of its ``classes.txt``.

    Unusable image files are screened at initialisation (see
    :func:`~mmdsp.datasets.class_folders.check_image`): each is logged with
    its reason and dropped, and the number dropped is logged, or an error
    listing them is raised when ``on_bad_image='error'``.

    Args:
        data_root (str): Root of ``data_prefix`` and ``ann_file``.
            Defaults to ''.
        data_prefix (str | dict): Folder of the images (or of the class
            folders), relative to ``data_root``. Defaults to ''.
        ann_file (str): Split file; empty means scan the class folders.
            Defaults to ''.
        classes (str | Sequence[str], optional): Class names in label order,
            or a ``classes.txt`` file. Defaults to None (see above).
        verify_images (bool | str): ``True`` checks headers and end markers,
            ``'decode'`` also decodes every image, ``False`` checks nothing.
            Defaults to True.
        on_bad_image (str): ``'skip'`` or ``'error'``. Defaults to 'skip'.
        min_size (int): Smallest accepted width and height, in pixels.
            Defaults to 1.
        **kwargs: Other arguments of
            :class:`mmpretrain.datasets.CustomDataset`.
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 ann_file: str = '',
                 classes: Union[str, Sequence[str], None] = None,
                 verify_images: Union[bool, str] = True,
                 on_bad_image: str = 'skip',
                 min_size: int = 1,
                 **kwargs):
        name = type(self).__name__
        if verify_images not in (True, False, 'decode'):
            raise ValueError(f'{name}: verify_images must be True, '
                             f"False or 'decode', got {verify_images!r}")
        if on_bad_image not in ('skip', 'error'):
            raise ValueError(f"{name}: on_bad_image must be 'skip' or "
                             f"'error', got {on_bad_image!r}")
        if not kwargs.pop('with_label', True):
            raise ValueError(f'{name} is a labelled dataset; '
                             'with_label=False is not supported')
        if data_root and not osp.isdir(osp.expanduser(data_root)):
            raise FileNotFoundError(
                f'{name}: data_root {data_root!r} does not exist')
        self.verify_images = verify_images
        self.on_bad_image = on_bad_image
        self.min_size = min_size
        # Resolved as mmengine will join it, to find the split's classes.txt.
        ann_path = ann_file if not ann_file or osp.isabs(ann_file) else \
            osp.join(data_root, ann_file)
        self.split_classes = self._split_classes(ann_path)
        if isinstance(classes, str):
            classes = read_classes_file(osp.expanduser(classes))
        if classes is not None and self.split_classes is not None and \
                tuple(classes) != self.split_classes:
            raise ValueError(
                f'{name}: classes {list(classes)} differ from '
                f'{list(self.split_classes)} in '
                f'{osp.join(osp.dirname(ann_path), CLASSES_FILE)!r}, which '
                f'names the labels of {ann_file!r}: every image would be '
                'reported under another class. Use the names of that file, '
                'in its order.')
        if classes is None:
            classes = self.split_classes
        kwargs.setdefault('extensions', IMG_EXTENSIONS)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file=ann_file,
            with_label=True,
            classes=classes,
            **kwargs)

    def _split_classes(self, ann_path: str) -> Optional[Tuple[str, ...]]:
        """The ``classes.txt`` beside a split file, if there is one."""
        if not ann_path:
            return None
        path = osp.join(osp.dirname(osp.expanduser(ann_path)), CLASSES_FILE)
        return read_classes_file(path) if osp.isfile(path) else None

    def _read_ann_file(self) -> List[Tuple[str, int]]:
        ann_file, name = self.ann_file, type(self).__name__
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'{name}: ann_file {ann_file!r} does not exist')
        samples = []
        num_classes = len(self.CLASSES)
        for lineno, line in enumerate(list_from_file(ann_file), 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not re.fullmatch(r'-?\d+', parts[1]):
                raise ValueError(
                    f'{name}: {ann_file}:{lineno}: expected '
                    f"'relative/path label_index', got {line!r}")
            label = int(parts[1])
            if not 0 <= label < num_classes:
                raise ValueError(
                    f'{name}: {ann_file}:{lineno}: label {label} is '
                    f'outside 0..{num_classes - 1} {self.CLASSES}')
            path = osp.join(self.img_prefix, parts[0])
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{name}: {ann_file}:{lineno}: image {path!r} '
                    'does not exist')
            samples.append((parts[0], label))
        if not samples:
            raise ValueError(f'{name}: ann_file {ann_file!r} lists no '
                             'image')
        return samples

    def _scan_folders(self) -> List[Tuple[str, int]]:
        """``(relative_path, label)`` of the class folders; sets classes."""
        folders, samples = scan_image_folders(self.img_prefix,
                                              self.extensions)
        if self.CLASSES and tuple(self.CLASSES) != folders:
            raise ValueError(
                f'{type(self).__name__}: classes {list(self.CLASSES)} are '
                f'not the class folders {list(folders)} of '
                f'{self.img_prefix!r} (sorted, as the labels follow them)')
        self._metainfo['classes'] = folders
        return samples

    def _list_samples(self) -> List[Tuple[str, int]]:
        if self.ann_file:
            if not self.CLASSES:
                raise ValueError(
                    f'{type(self).__name__}: no class names for '
                    f'{self.ann_file!r}: give classes=[...] or put the '
                    f'{CLASSES_FILE} that split_all.py writes beside it')
            return self._read_ann_file()
        return self._scan_folders()

    def load_data_list(self) -> List[dict]:
        """Read the split file or scan the class folders, then screen files.

        Returns:
            list[dict]: ``img_path`` and ``gt_label`` of each usable image.
        """
        name = type(self).__name__
        samples = self._list_samples()
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
                raise ValueError(f'{name}: {len(bad)} unusable image '
                                 f'file(s):\n{listing}')
            logger = MMLogger.get_current_instance()
            for p, r in bad:
                logger.warning(f'{name}: skipping {p}: {r}')
            logger.warning(f'{name}: skipped {len(bad)} of '
                           f'{len(samples)} image files under '
                           f'{self.img_prefix!r}')
        self.skipped_images = bad
        if not data_list:
            raise ValueError(f'{name}: no usable image under '
                             f'{self.img_prefix!r}')
        return data_list
