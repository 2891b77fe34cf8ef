import os
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def real_data_root():
    """The public ALL dataset, from $MMDSP_DATA_ROOT or ../shared/data.

    Returns the folder holding ``Original/`` or None when it is absent.
    """
    candidates = [
        os.environ.get('MMDSP_DATA_ROOT'),
        osp.join(REPO_ROOT, '..', 'shared', 'data', 'all_leukemia'),
    ]
    for root in filter(None, candidates):
        root = osp.abspath(root)
        if osp.basename(root) == 'Original':
            root = osp.dirname(root)
        if osp.isdir(osp.join(root, 'Original')):
            return root
    return None


@pytest.fixture
def real_data():
    root = real_data_root()
    if root is None:
        pytest.skip('real ALL dataset absent: set MMDSP_DATA_ROOT or place '
                    'it at ../shared/data/all_leukemia (Original/...)')
    return root


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(autouse=True, scope='session')
def _one_intra_op_thread():
    """Run the suite's tiny tensors on one thread.

    CI has 2 cores; a second intra-op thread mostly waits for a busy core,
    turning millisecond forwards into seconds.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
