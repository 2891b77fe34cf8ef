"""MMPretrain's `tools/analysis_tools/analyze_logs.py`, with mmdsp registered."""
from mmdsp.utils.mmpretrain_tools import run_mmpretrain_tool

if __name__ == '__main__':
    run_mmpretrain_tool('analysis_tools/analyze_logs.py')
