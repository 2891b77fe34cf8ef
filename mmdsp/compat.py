"""Fixes that let the pinned OpenMMLab stack run on today's torch and numpy.

Each fix is applied once, when :mod:`mmdsp` is imported, and touches nothing in
site-packages. Every one is documented in ``docs/compat.md`` and tested in
``tests/test_compat.py``.

1. Safe checkpoint loading. torch >= 2.6 loads with ``weights_only=True`` by
   default; mmengine 0.10.7 checkpoints hold a ``MessageHub`` state with
   :class:`~mmengine.logging.HistoryBuffer` objects and numpy arrays and
   scalars, so ``--resume``, ``tools/test.py``, ``load_checkpoint`` and the
   inferencers fail. We allow-list exactly those types. Safe loading stays on:
   a checkpoint that pickles any other callable (``os.system``, say) is still
   refused by torch, and mmengine's loaders re-raise that refusal as an
   :class:`UnsafeCheckpointError` that names the file and the global.
2. CPU distributed training. mmengine 0.10.7 calls ``torch.cuda.set_device``
   unconditionally when it initialises a ``pytorch`` or ``slurm`` launch, and
   wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail without
   CUDA. When CUDA is absent we initialise gloo and give DDP
   ``device_ids=None``.
3. ``mmdsp::`` config bases. mmengine 0.10.7 accepts ``pkg::path`` bases only
   for the OpenMMLab packages it lists and only for paths inside a folder
   (``mmdsp::effdsp_all.py`` fails its pattern), and finds a package's
   ``.mim/configs`` through ``pkg_resources``, which points an editable
   (PEP 660) install at site-packages. For the ``mmdsp`` prefix only, we
   split the path ourselves and answer the lookup with the imported package's
   own folder; every other prefix goes through mmengine unchanged.
"""
import inspect
import os
import pickle
import re
import subprocess

import numpy as np
import torch
import torch.distributed as torch_dist

__all__ = ['mmengine_safe_globals', 'UnsafeCheckpointError', 'apply_all']

_APPLIED = False


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr`` while unpickling checkpoints.

    A pickled ``HistoryBuffer`` stores its statistics methods (``min``,
    ``max``, ``current``, ``mean`` and any registered later) as
    ``getattr(HistoryBuffer, name)``. Allowing the real ``getattr`` would let a
    checkpoint fetch any attribute of any allowed object, so only functions
    defined on ``HistoryBuffer`` itself are handed out.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str):
        attr = inspect.getattr_static(HistoryBuffer, name, None)
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isfunction(attr):
            return getattr(HistoryBuffer, name)
    raise torch.serialization.pickle.UnpicklingError(
        f'mmdsp refuses getattr({obj!r}, {name!r}) while loading a '
        'checkpoint: only HistoryBuffer statistics methods are allowed.')


def mmengine_safe_globals():
    """The globals that mmengine 0.10.7 checkpoints pickle, and nothing more.

    Returns:
        list: Entries for :func:`torch.serialization.add_safe_globals`.
    """
    from mmengine.logging import HistoryBuffer
    multiarray = np._core.multiarray
    dtype_classes = [
        cls for cls in vars(np.dtypes).values()
        if isinstance(cls, type) and issubclass(cls, np.dtype)
    ]
    return [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        *dtype_classes,
        multiarray._reconstruct,
        multiarray.scalar,
        # numpy 1.x checkpoints name the private module without underscore.
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
    ]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint pickles something outside the safe allow-list."""


def _explain_refusal(filename, err):
    # torch words it 'Unsupported global: GLOBAL x.y' or, for a blocked
    # module such as os, 'unsupported GLOBAL x.y whose module ...'.
    found = re.search(r'GLOBAL ([\w.]+)', str(err))
    culprit = found.group(1) if found else 'an object outside the allow-list'
    return (f'mmdsp refused to load checkpoint {filename}: it pickles '
            f'{culprit}, which is neither a tensor nor part of an mmengine '
            'checkpoint (docs/compat.md). Loading it with weights_only=False '
            'would run that code: only do so for a file you trust.')


def _patch_safe_loading():
    torch.serialization.add_safe_globals(mmengine_safe_globals())

    from mmengine.runner.checkpoint import CheckpointLoader
    local_loader = CheckpointLoader._schemes['']

    def load_from_local(filename, map_location):
        try:
            return local_loader(filename, map_location)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(_explain_refusal(filename,
                                                         err)) from err

    # Every mmengine path (Runner.resume, load_checkpoint, the inferencers)
    # goes through the scheme registry, so one registration covers them.
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


def _cpu_init_dist_pytorch(backend='gloo', init_backend='torch', **kwargs):
    """``mmengine.dist.utils._init_dist_pytorch`` without the CUDA calls."""
    torch_dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


def _cpu_init_dist_slurm(backend='gloo', port=None, init_backend='torch',
                         **kwargs):
    """``mmengine.dist.utils._init_dist_slurm`` without the CUDA calls."""
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['RANK'] = str(proc_id)
    torch_dist.init_process_group(backend='gloo', **kwargs)


def _patch_cpu_distributed():
    if torch.cuda.is_available():
        return
    from mmengine.dist import utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel
    dist_utils._init_dist_pytorch = _cpu_init_dist_pytorch
    dist_utils._init_dist_slurm = _cpu_init_dist_slurm

    ddp_init = MMDistributedDataParallel.__init__

    def __init__(self, module, detect_anomalous_params=False, **kwargs):
        # Runner.wrap_model passes device_ids=[LOCAL_RANK]; DDP needs None
        # for a module that lives on the CPU.
        kwargs['device_ids'] = None
        ddp_init(self, module, detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = __init__


def _patch_config_package():
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils
    # Lets mmengine's registry name the package in its hints.
    config_utils.MODULE2PACKAGE.setdefault('mmdsp', 'mmdsp')
    package_and_cfg_path = config_module._get_package_and_cfg_path
    installed_path = config_module.get_installed_path

    def get_package_and_cfg_path(cfg_path):
        package, sep, path = cfg_path.partition('::')
        if package == 'mmdsp' and sep and '::' not in path:
            return package, path
        return package_and_cfg_path(cfg_path)

    def get_installed_path(package):
        if package == 'mmdsp':
            return os.path.dirname(os.path.abspath(__file__))
        return installed_path(package)

    config_module._get_package_and_cfg_path = get_package_and_cfg_path
    config_module.get_installed_path = get_installed_path


def apply_all():
    """Apply every fix once; later calls do nothing."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_safe_loading()
    _patch_cpu_distributed()
    _patch_config_package()
    _APPLIED = True


apply_all()
