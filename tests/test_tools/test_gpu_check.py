"""tools/gpu/check.sh: its CPU dry run of the cheapest step, and that a
failing step is reported without stopping the others."""
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'gpu', 'check.sh')


def _run(tmp_path, steps, python=sys.executable):
    env = dict(os.environ, DEVICE='cpu', STEPS=steps, PYTHON=python,
               OUT=str(tmp_path / 'out'), OMP_NUM_THREADS='1')
    return subprocess.run(['bash', SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)


def test_dry_run_of_the_cuda_tests(tmp_path):
    proc = _run(tmp_path, 'tests')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (tmp_path / 'out' / 'summary.txt').read_text()
    assert 'tests: rc=0' in summary
    # Without a GPU every CUDA test skips, none errors.
    log = (tmp_path / 'out' / 'tests.txt').read_text()
    assert 'skipped' in log and 'error' not in log.lower()


def test_failing_step_is_reported(tmp_path):
    proc = _run(tmp_path, 'nosuchstep')
    assert proc.returncode == 2 and 'unknown step nosuchstep' in proc.stderr
    # A step whose command fails: the summary says so and the exit is 1.
    fake = tmp_path / 'python'
    real = sys.executable
    fake.write_text(f'#!/bin/sh\ncase "$*" in *pytest*) exit 3;; esac\n'
                    f'exec {real} "$@"\n')
    fake.chmod(0o755)
    proc = _run(tmp_path, 'tests', python=str(fake))
    assert proc.returncode == 1
    assert 'tests: rc=3' in (tmp_path / 'out' / 'summary.txt').read_text()
