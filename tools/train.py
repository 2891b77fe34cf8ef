"""MMPretrain's `tools/train.py`, with mmdsp registered (same arguments)."""
from mmdsp.utils.mmpretrain_tools import run_mmpretrain_tool

if __name__ == '__main__':
    run_mmpretrain_tool('train.py')
