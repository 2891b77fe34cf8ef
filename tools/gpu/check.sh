#!/usr/bin/env bash
# The GPU check, sized for one call of at most 8 minutes on one CUDA GPU:
#   1. the unit tests that need CUDA (pytest -m cuda: the device kernels
#      against the reference forwards, fp16 / bf16 autocast dtypes, one AMP
#      fp16 and one bf16 training step of DSP and EfficientNetV2, B0);
#   2. a 1-process NCCL DDP training through tools/dist_train.sh (demo
#      config, a few iterations on a small synthetic set);
#   3. bench_memory.py --device cuda (saved activations and peak memory of a
#      training step, DSP / EfficientNetV2, S/224 and B0/128);
#   4. bench_models.py --device cuda (eager and compiled inference and train
#      step, DSP / EfficientNetV2-S).
# Each step has its own time limit; a failing step is reported and the next
# one runs. Output: $OUT (default work_dirs/gpu_check)/*.txt and summary.txt.
# Usage: tools/gpu/check.sh
# Environment:
#   DEVICE   cuda (default) or cpu: the dry run of every step a CPU can run
#            (the CUDA tests skip, DDP uses gloo, the benchmarks are tiny)
#   WHEELS   folder of the pure-Python wheels (../shared/wheels/*.whl copied
#            into the checkout, e.g. .whl), installed into /tmp/site when
#            mmpretrain is not importable
#   PYTHON   the interpreter (python3)
#   STEPS    which steps, default "tests ddp memory speed"
set -uo pipefail
cd "$(dirname "$0")/../.."
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-"tests ddp memory speed"}
OUT=$(realpath -m "${OUT:-work_dirs/gpu_check}")
mkdir -p "$OUT"
export PYTHON OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

if ! "$PYTHON" -c 'import mmpretrain' 2>/dev/null; then
    WHEELS=${WHEELS:-.whl}
    ls "$WHEELS"/*.whl >/dev/null 2>&1 || {
        echo "check.sh: mmpretrain is not importable and $WHEELS holds no wheels" >&2
        exit 2; }
    "$PYTHON" -m pip install -q --no-index --no-deps --upgrade \
        --target /tmp/site "$WHEELS"/*.whl || exit 2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

t0=$(date +%s)
: > "$OUT/summary.txt"
# run NAME LIMIT_S CMD...: output to $OUT/NAME.txt, a line in summary.txt
run() {
    local name=$1 limit=$2; shift 2
    local s=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    local line="$name: rc=$rc, $(( $(date +%s) - s )) s (limit $limit s)"
    echo "$line" | tee -a "$OUT/summary.txt"
    tail -n 3 "$OUT/$name.txt" | sed 's/^/    /'
}

"$PYTHON" - <<'PY' | tee "$OUT/env.txt"
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')
PY

small() { [ "$DEVICE" = cpu ]; }
for step in $STEPS; do
case $step in
tests)
    run tests 150 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider \
        tests/test_models/test_cuda.py ;;
ddp)
    data="$OUT/synthetic"
    if [ ! -f "$data/train.txt" ]; then
        "$PYTHON" tools/dataset_converters/make_synthetic_all.py "$data" \
            --num-per-class 24 --size 96 --spread 0.5 > "$OUT/ddp_data.txt" 2>&1
    fi
    MMDSP_DEMO_DATA="$data" PORT=${PORT:-29511} \
        run ddp 120 tools/dist_train.sh configs/demo/effdsp_synthetic.py 1 \
        --work-dir "$OUT/ddp" --cfg-options train_cfg.max_epochs=1 \
        train_cfg.val_interval=1 train_dataloader.batch_size=16 \
        $(small || echo --amp) ;;
memory)
    if small; then
        run memory 120 "$PYTHON" tools/benchmarks/bench_memory.py \
            --models b0:64 --impls fast device
    else
        run memory 120 "$PYTHON" tools/benchmarks/bench_memory.py \
            --device cuda --batch 8 --impls fast reference --with-cp
    fi ;;
speed)
    if small; then
        run speed 150 "$PYTHON" tools/benchmarks/bench_models.py \
            --img-size 64 --repeats 1 --no-breakdown --skip-train
    else
        run speed 240 "$PYTHON" tools/benchmarks/bench_models.py \
            --device cuda --compile --repeats 10 --no-breakdown
    fi ;;
*) echo "check.sh: unknown step $step" >&2; exit 2 ;;
esac
done
echo "check.sh: $(( $(date +%s) - t0 )) s in all; $OUT" | tee -a "$OUT/summary.txt"
! grep -q 'rc=[1-9]' "$OUT/summary.txt"
