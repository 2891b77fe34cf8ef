"""Atomic writes and resumable multi-process file jobs for offline tools.

An output file either does not exist or is complete: every writer goes
through :func:`atomic_write_bytes`, which writes a hidden temporary file in
the destination folder and ``os.replace``-s it into place. A run killed
half-way leaves at most ``.<name>.<pid>.<random>.tmp`` files, which never
match an output name, so a later run redoes exactly the unfinished jobs and
:func:`clean_temp_files` sweeps the leftovers.
"""
import json
import multiprocessing
import os
import os.path as osp
import re
import sys
import uuid
from typing import Callable, Iterable, List, Optional, Sequence

import cv2
import numpy as np
from mmengine.utils import ProgressBar

__all__ = [
    'atomic_write_bytes', 'atomic_write_text', 'imwrite_atomic',
    'is_temp_file', 'clean_temp_files', 'outputs_complete', 'run_jobs',
    'check_run_meta'
]

_TMP_RE = re.compile(r'^\..+\.\d+\.[0-9a-f]{32}\.tmp$')


def _temp_path(path: str) -> str:
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp')


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file.

    Args:
        path (str): Destination; missing parent folders are created.
        data (bytes): File content.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode('utf-8'))


def imwrite_atomic(path: str,
                   img: np.ndarray,
                   params: Optional[Sequence[int]] = None,
                   jpeg_quality: Optional[int] = None) -> None:
    """Encode ``img`` by the extension of ``path`` and write it atomically.

    Args:
        path (str): Destination image file (``.png``, ``.jpg``...).
        img (np.ndarray): Image in OpenCV's BGR order.
        params (Sequence[int], optional): ``cv2.imencode`` parameters, e.g.
            ``[cv2.IMWRITE_JPEG_QUALITY, 95]``.
        jpeg_quality (int, optional): JPEG quality, used only when ``path``
            ends in ``.jpg`` or ``.jpeg`` (callers write trees of mixed
            formats).
    """
    ext = osp.splitext(path)[1]
    if not ext:
        raise ValueError(f'cannot choose an image format for {path!r}: '
                         'no extension')
    params = list(params or [])
    if jpeg_quality is not None and ext.lower() in ('.jpg', '.jpeg'):
        params += [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f'OpenCV could not encode an image as {ext} for '
                         f'{path!r}')
    atomic_write_bytes(path, buf.tobytes())


def is_temp_file(path: str) -> bool:
    """Whether ``path`` is a leftover of an interrupted atomic write."""
    return bool(_TMP_RE.match(osp.basename(path)))


def clean_temp_files(root: str) -> int:
    """Remove atomic-write leftovers under ``root``; returns how many."""
    removed = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if is_temp_file(name):
                os.remove(osp.join(folder, name))
                removed += 1
    return removed


def outputs_complete(paths: Iterable[str]) -> bool:
    """True when every path exists and is non-empty.

    With atomic writes existence implies completeness; the size check also
    rejects empty files left by tools that did not write atomically.
    """
    return all(osp.isfile(p) and osp.getsize(p) > 0 for p in paths)


def run_jobs(func: Callable,
             tasks: Sequence,
             workers: int = 1,
             initializer: Optional[Callable] = None,
             initargs: tuple = (),
             chunksize: int = 8,
             file=sys.stdout) -> List:
    """Run ``func`` on every task with a progress bar; results in task order.

    Args:
        func (Callable): Top-level function of one task.
        tasks (Sequence): Task arguments, one per call.
        workers (int): Processes; 1 runs in this process (easier to debug).
            Workers are forked where the OS allows, so ``func`` may come
            from a script loaded by path.
        initializer (Callable, optional): Run once per worker (and once here
            when ``workers == 1``). Workers use one OpenCV thread each.
        initargs (tuple): Arguments of ``initializer``.
        chunksize (int): Tasks sent to a worker at a time.
        file: Stream of the progress bar.
    """
    tasks = list(tasks)
    if workers < 1:
        raise ValueError(f'workers must be >= 1, got {workers}')
    results = [None] * len(tasks)
    if not tasks:
        return results
    bar = ProgressBar(len(tasks), file=file)
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        for i, task in enumerate(tasks):
            results[i] = func(task)
            bar.update()
    else:
        method = 'fork' if 'fork' in multiprocessing.get_all_start_methods(
        ) else None
        ctx = multiprocessing.get_context(method)
        # One OpenCV thread per worker process, or the pools oversubscribe
        # the cores. It must be set here, before forking: a forked child
        # that calls cv2.setNumThreads after the parent has used OpenCV's
        # thread pool deadlocks.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with ctx.Pool(workers, initializer, initargs) as pool:
                for i, res in pool.imap_unordered(
                        _indexed, [(func, i, t) for i, t in enumerate(tasks)],
                        chunksize=chunksize):
                    results[i] = res
                    bar.update()
        finally:
            cv2.setNumThreads(threads)
    file.write('\n')
    return results


def _indexed(item):
    func, i, task = item
    return i, func(task)


def check_run_meta(path: str, meta: dict, overwrite: bool = False) -> None:
    """Refuse to resume into ``path``'s folder with different settings.

    A resumable tool skips finished outputs; if the settings changed since
    they were written, skipping would silently mix two kinds of output. The
    first run records ``meta`` (JSON) at ``path``; later runs must match it
    unless ``overwrite`` is set, which re-records it.

    Args:
        path (str): JSON file recording the settings.
        meta (dict): JSON-serialisable settings of this run.
        overwrite (bool): Accept changed settings (the caller then redoes
            every output).
    """
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    if osp.isfile(path) and not overwrite:
        with open(path, encoding='utf-8') as f:
            try:
                old = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path} is not valid JSON ({e}); delete it '
                                 'or pass --overwrite') from e
        new = json.loads(text)
        if old != new:
            changed = sorted(k for k in set(old) | set(new)
                             if old.get(k) != new.get(k))
            raise ValueError(
                f'{path} records different settings ({", ".join(changed)}) '
                'for the outputs already in this folder; use a new output '
                'folder or pass --overwrite to redo everything')
        return
    atomic_write_text(path, text + '\n')
