"""Which files an inference call reads."""
import glob
import os
import os.path as osp
from typing import List, Sequence, Union

from mmdsp.datasets.blood_cells_all import \
    IMG_EXTENSIONS as DATASET_EXTENSIONS

# Inference also takes formats nobody trains on.
IMG_EXTENSIONS = DATASET_EXTENSIONS + ('.webp', '.ppm', '.pgm')


def collect_inputs(inputs: Union[str, Sequence[str]]) -> List[str]:
    """Expand files, folders (recursive) and glob patterns into file paths.

    Files named explicitly are kept whatever their extension, so that a bad
    one is reported; files found in folders or by globs must have an image
    extension (:data:`IMG_EXTENSIONS`). A path that matches nothing is kept
    as is and reported as missing by :func:`predict`. Order: as given, each
    folder or glob sorted; duplicates removed.

    Args:
        inputs (str | Sequence[str]): Paths, folders or glob patterns.

    Returns:
        list[str]: File paths.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in map(str, inputs):
        if osp.isdir(item):
            found = []
            for root, _, names in os.walk(item):
                found += [
                    osp.join(root, n) for n in names
                    if n.lower().endswith(IMG_EXTENSIONS)
                ]
            files += sorted(found)
        elif osp.exists(item) or not glob.has_magic(item):
            files.append(item)
        else:
            matches = sorted(
                p for p in glob.glob(item, recursive=True)
                if osp.isfile(p) and p.lower().endswith(IMG_EXTENSIONS))
            files += matches if matches else [item]
    return list(dict.fromkeys(files))
