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
4. Warning noise. Before any OpenMMLab import, :func:`filter_known_warnings`
   hides the third-party warnings that say nothing to an mmdsp user (by
   exact message, :data:`KNOWN_WARNINGS`, :data:`KNOWN_LOG_MESSAGES`); every
   other warning still shows.

Fixes 1-3 replace private mmengine symbols, so :func:`check_versions` names
the versions they were written for and warns outside them; a symbol that has
gone is refused with the fix it belongs to.
"""
import inspect
import os
import pickle
import re
import subprocess
import warnings
import zipfile

import numpy as np
import torch
import torch.distributed as torch_dist

__all__ = [
    'mmengine_safe_globals', 'UnsafeCheckpointError', 'NotACheckpointError',
    'apply_all', 'check_versions', 'filter_known_warnings', 'WRITTEN_FOR'
]

_APPLIED = False

# The releases each fix was written and tested against (requirements/).
WRITTEN_FOR = {
    'mmengine': ('0.10.7', ),
    'torch': ('2.6', '2.14'),  # oldest with weights_only=True, newest tested
    'numpy': ('2.0', '2.99'),
}

# Third-party warnings that every command would print and that ask nothing of
# an mmdsp user, matched from their first words (docs/compat.md, fix 5).
KNOWN_WARNINGS = (
    # mmcv-lite has no compiled ops; mmdsp uses none of them.
    (UserWarning, r'Fail to import ``MultiScaleDeformableAttention``'),
    # mmengine 0.10.7 imports pkg_resources; setuptools<82 keeps it working.
    (UserWarning, r'pkg_resources is deprecated as an API'),
)


# The same for mmengine's own deprecation notices, which go through its
# logger instead of the warnings module.
KNOWN_LOG_MESSAGES = (
    '"FileClient" will be deprecated in future.',
    '"HardDiskBackend" is the alias of "LocalBackend"',
    # MMPretrain's tools/test.py --out adds this metric without a prefix.
    'The prefix is not set in metric class DumpResults.',
)


def filter_known_warnings():
    """Hide :data:`KNOWN_WARNINGS` (and only those), in this process and in
    the loader workers it forks."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)


filter_known_warnings()


def _known_log_message(record):
    message = record.getMessage()
    return not any(message.startswith(m) for m in KNOWN_LOG_MESSAGES)


def _patch_logger_filter():
    from mmengine.logging import MMLogger
    init = MMLogger.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.addFilter(_known_log_message)

    MMLogger.__init__ = __init__
    for logger in getattr(MMLogger, '_instance_dict', {}).values():
        logger.addFilter(_known_log_message)


def _version_tuple(version):
    return tuple(int(p) for p in re.findall(r'\d+', version)[:2])


def check_versions(versions=None):
    """Warn when a package differs from the releases the fixes were written
    for (:data:`WRITTEN_FOR`).

    Args:
        versions (dict, optional): ``{package: version string}``; defaults to
            the installed mmengine, torch and numpy.

    Returns:
        list[str]: The mismatches, each also issued as a warning.
    """
    if versions is None:
        import mmengine
        versions = dict(mmengine=mmengine.__version__,
                        torch=torch.__version__, numpy=np.__version__)
    problems = []
    for package, version in versions.items():
        allowed = WRITTEN_FOR[package]
        have = _version_tuple(version)
        if len(allowed) == 1:
            ok = version.split('+')[0] == allowed[0]
            wanted = allowed[0]
        else:
            ok = _version_tuple(allowed[0]) <= have <= _version_tuple(
                allowed[1])
            wanted = f'{allowed[0]} to {allowed[1]}'
        if not ok:
            problems.append(
                f'mmdsp.compat was written for {package} {wanted} and found '
                f'{package} {version}: its fixes (docs/compat.md) may not '
                'fit; install the versions in requirements/runtime.txt.')
    for problem in problems:
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    return problems


def _require(owner, name, fix):
    """The private attribute ``owner.name`` a fix replaces, or a clear
    error naming the fix when this mmengine no longer has it."""
    if not hasattr(owner, name):
        raise ImportError(
            f'mmdsp.compat fix {fix} replaces {owner.__name__}.{name}, which '
            f'this mmengine does not have; mmdsp needs mmengine '
            f'{WRITTEN_FOR["mmengine"][0]} (requirements/runtime.txt).')
    return getattr(owner, name)


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


class NotACheckpointError(pickle.UnpicklingError, ValueError):
    """The file is not a ``torch.save`` file at all (text, an image, ...)."""


def _is_torch_file(filename):
    # torch.save writes a zip archive; files from torch < 1.6 start with
    # the pickle protocol 2 opcode.
    if zipfile.is_zipfile(filename):
        return True
    with open(filename, 'rb') as f:
        return f.read(1) == b'\x80'


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
    local_loader = _require(CheckpointLoader, '_schemes', 1)['']

    def load_from_local(filename, map_location):
        # Checked first: torch's errors for such files (KeyError, "invalid
        # load key") do not say what is wrong.
        if os.path.isfile(filename) and not _is_torch_file(filename):
            raise NotACheckpointError(
                f'{filename} is not a checkpoint: torch.save files are zip '
                'archives (or, before torch 1.6, pickles) and this one is '
                'neither. Pass the .pth file that training wrote.')
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
    _require(dist_utils, '_init_dist_pytorch', 2)
    _require(dist_utils, '_init_dist_slurm', 2)
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
    package_and_cfg_path = _require(config_module,
                                    '_get_package_and_cfg_path', 3)
    installed_path = _require(config_module, 'get_installed_path', 3)

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
    check_versions()
    _patch_safe_loading()
    _patch_cpu_distributed()
    _patch_config_package()
    _patch_logger_filter()
    _APPLIED = True


apply_all()
