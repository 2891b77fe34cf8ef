"""MMPretrain's `tools/visualization/vis_cam.py`, with mmdsp registered.

Same arguments as MMPretrain's::

    python tools/visualization/vis_cam.py IMAGE CONFIG CHECKPOINT \\
        [--method GradCAM++] [--target-layers backbone.layers.7] \\
        [--save-path cam.png] [--device cuda]

MMPretrain's tool needs ``pytorch_grad_cam`` from grad-cam 1.4.x:
``pip install mmdsp[cam]`` installs the pinned 1.4.8
(``requirements/optional.txt``). From 1.5 on, grad-cam's CAM classes no longer
take the ``use_cuda`` argument MMPretrain 1.2.0 passes. For Grad-CAM overlays
of several images without grad-cam, see ``cam_grid.py``.
"""
from importlib.metadata import PackageNotFoundError, version

from mmdsp.utils.mmpretrain_tools import run_mmpretrain_tool

INSTALL_HINT = ('pip install "grad-cam==1.4.8" (or pip install mmdsp[cam]; '
                'requirements/optional.txt)')


def check_grad_cam():
    """Fail early, naming the package, unless grad-cam 1.4.x is installed.

    Returns:
        str: The installed grad-cam version.
    """
    try:
        found = version('grad-cam')
    except PackageNotFoundError:
        raise SystemExit('tools/visualization/vis_cam.py (MMPretrain\'s) '
                         f'needs grad-cam 1.4.x, which is not installed: '
                         f'{INSTALL_HINT}. tools/visualization/cam_grid.py '
                         'draws Grad-CAM without it.') from None
    if not found.startswith('1.4.'):
        raise SystemExit(f'tools/visualization/vis_cam.py needs grad-cam '
                         f'1.4.x, found {found} (its CAM classes differ from '
                         f'what MMPretrain 1.2.0 calls): {INSTALL_HINT}')
    return found


if __name__ == '__main__':
    check_grad_cam()
    run_mmpretrain_tool('visualization/vis_cam.py')
