#!/usr/bin/env bash
# The GPU protocol (docs/experiments.md): on one CUDA GPU, from the raw ALL
# images to a table-2 comparison of EfficientNetV2-S and EfficientNet-DSP,
# data preparation included:
#   1. the leak-free 7:2:1 split (split_all.py, seed 0; must equal splits/)
#   2. a pre-segmented mask cache (segment_dataset.py, all CPU cores), only
#      when a model's config removes the background (the paper's recipe,
#      configs/paper_recipe/; the default recipe does not)
#   3. both models trained with tools/train.py (tools/dist_train.sh when
#      GPUS > 1), --amp, channels_last batches, cuDNN autotuning, many
#      loader workers
#   4. both tested on the test split, and the table printed.
# Usage: tools/gpu/compare.sh DATA_ROOT [WORK_DIR]
#   DATA_ROOT: the folder holding Benign/ Early/ Pre/ Pro/
# Environment: EPOCHS (20), GPUS (1), NUM_WORKERS (nproc-2, at most 12),
#   AMP (1; 0 for a CPU dry run), TRAIN_TIMEOUT (seconds per model, 0 = none),
#   MODELS (default "efficientnetv2-s_all effdsp_all"), PYTHON (python),
#   SPLIT_DIR (use these train/val/test.txt instead of making the split),
#   IMG (input side, default 224) and ARCH (EfficientNetV2 arch table of
#   both models, default s): the CPU proxy (tools/cpu_proxy.sh) shrinks both;
#   SEED (training seed, default the configs' 0) or SEEDS (several, e.g.
#   "0 1 2": each model once per seed, runs in WORK_DIR/seed<k>/, and the
#   table gives mean +- std over them).
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=$(realpath "${1:?usage: tools/gpu/compare.sh DATA_ROOT [WORK_DIR]}")
WORK=$(realpath -m "${2:-work_dirs/gpu_compare}")
EPOCHS=${EPOCHS:-20}
GPUS=${GPUS:-1}
NW=${NUM_WORKERS:-$(( $(nproc) > 14 ? 12 : ($(nproc) > 2 ? $(nproc) - 2 : 1) ))}
AMP=${AMP:-1}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-0}
MODELS=${MODELS:-"efficientnetv2-s_all effdsp_all"}
PYTHON=${PYTHON:-python}
export PYTHON
mkdir -p "$WORK"
t0=$(date +%s)
stamp() { echo "[compare.sh +$(( $(date +%s) - t0 ))s] $*"; }

if [ -n "${SPLIT_DIR:-}" ]; then
    mkdir -p "$WORK/split" && cp "$SPLIT_DIR"/{train,val,test}.txt "$WORK/split/"
else
    stamp "split $DATA"
    "$PYTHON" tools/dataset_converters/split_all.py "$DATA" "$WORK/split" \
        --ratios 7 2 1 --seed 0 | tail -n 7
fi
if [ -z "${SPLIT_DIR:-}" ] && [ -f splits/all_leukemia/test.txt ] && \
        [ "$(basename "$DATA")" = Original ]; then
    for s in train val test; do
        cmp -s "$WORK/split/$s.txt" "splits/all_leukemia/$s.txt" \
            && echo "  $s.txt equals splits/all_leukemia/$s.txt" \
            || echo "  WARNING: $s.txt differs from splits/all_leukemia"
    done
fi

export MMDSP_DATA_ROOT="$DATA"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
segments=$("$PYTHON" - $MODELS <<'EOF'
import contextlib, sys
from mmengine.config import Config
def segments(name):
    try:
        cfg = Config.fromfile(f'configs/{name}.py')
    except Exception:  # a missing config is reported by its training
        return False
    # The dataloaders' pipelines only: the dataset base also defines the
    # paper's pipelines as variables that the default configs leave unused.
    return any(step.get('type') == 'LabKMeansSegment'
               for split in ('train', 'val', 'test')
               for step in cfg[f'{split}_dataloader'].dataset.pipeline)
# mmengine logs the MMDSP_DATA_ROOT substitution to stdout: keep it out
# of the answer.
with contextlib.redirect_stdout(sys.stderr):
    answer = int(any(segments(name) for name in sys.argv[1:]))
print(answer)
EOF
)
if [ "$segments" = 1 ]; then
    stamp "segment into $WORK/seg_cache"
    "$PYTHON" tools/dataset_converters/segment_dataset.py "$DATA" \
        "$WORK/seg_cache" --workers "$(nproc)" | tail -n 3
    export MMDSP_SEG_CACHE="$WORK/seg_cache"
else
    stamp "no background removal in these configs: no mask cache"
fi

amp_flag=()
[ "$AMP" = 1 ] && amp_flag=(--amp)
# Linear warm-up for 3 epochs (fewer in a short run), then cosine decay.
[ "$EPOCHS" -ge 2 ] || { echo "EPOCHS must be at least 2"; exit 2; }
warm=$(( EPOCHS > 3 ? 3 : EPOCHS - 1 ))
opts=(
    "train_cfg.max_epochs=$EPOCHS"
    "param_scheduler.0.end=$warm"
    "param_scheduler.1.begin=$warm"
    "param_scheduler.1.end=$EPOCHS"
    "train_dataloader.num_workers=$NW"
    "val_dataloader.num_workers=$NW"
    "test_dataloader.num_workers=$NW"
    "train_dataloader.dataset.ann_file=$WORK/split/train.txt"
    "val_dataloader.dataset.ann_file=$WORK/split/val.txt"
    "test_dataloader.dataset.ann_file=$WORK/split/test.txt"
    "data_preprocessor.type=ChannelsLastPreprocessor"
    "env_cfg.cudnn_benchmark=True"
)
[ "$AMP" = 1 ] && opts+=("val_cfg.fp16=True" "test_cfg.fp16=True")
# The input side: ImgSizeHook applies it to every pipeline.
[ -n "${IMG:-}" ] && opts+=("img_size=$IMG")
[ -n "${ARCH:-}" ] && opts+=("model.backbone.arch=$ARCH")
SEEDS=${SEEDS:-${SEED:-}}

# One GPU: one process, no torchrun. Under torchrun, NCCL held each
# tools/test.py exit for about 60 s on the H100 (docs/experiments.md).
if [ "$GPUS" = 1 ]; then
    train_cmd=("$PYTHON" tools/train.py) test_cmd=("$PYTHON" tools/test.py)
    gpus_arg=()
else
    train_cmd=(bash tools/dist_train.sh) test_cmd=(bash tools/dist_test.sh)
    gpus_arg=("$GPUS")
fi

run_dirs=()
failed=()
n_seeds=$(wc -w <<< "$SEEDS")
# Seeds outermost: a run cut short by the device's time limit still has
# every model at its first seed.
for seed in ${SEEDS:-configs}; do
  seed_opts=()
  root=$WORK
  if [ "$seed" != configs ]; then
      # Training seed (the split keeps seed 0); paper_tables.py averages.
      seed_opts=("randomness.seed=$seed")
      [ "$n_seeds" -gt 1 ] && root=$WORK/seed$seed && mkdir -p "$root"
  fi
  for name in $MODELS; do
    cfg=configs/$name.py
    dir=$root/$name
    mkdir -p "$(dirname "$dir")"
    run_dirs+=("$dir")
    stamp "train $name ($EPOCHS epochs, seed $seed, $GPUS GPU(s), workers $NW)"
    limit=()
    [ "$TRAIN_TIMEOUT" != 0 ] && limit=(timeout --signal=INT "$TRAIN_TIMEOUT")
    "${limit[@]}" "${train_cmd[@]}" "$cfg" "${gpus_arg[@]}" --work-dir "$dir" \
        "${amp_flag[@]}" --cfg-options "${opts[@]}" "${seed_opts[@]}" \
        > "$dir.train.log" 2>&1 \
        || stamp "training $name stopped early (exit $?; see $dir.train.log)"
    grep -E "Epoch\(val\)" "$dir.train.log" | grep accuracy | tail -n 2 || true
    ckpt=$(ls -t "$dir"/best_*.pth 2>/dev/null | head -n 1 || true)
    [ -n "$ckpt" ] || { stamp "no checkpoint for $name"; failed+=("$name"); continue; }
    stamp "test $name with $(basename "$ckpt")"
    "${test_cmd[@]}" "$cfg" "$ckpt" "${gpus_arg[@]}" --work-dir "$dir" \
        --cfg-options "${opts[@]}" "${seed_opts[@]}" > "$dir.test.log" 2>&1 \
        || { stamp "testing $name failed (see $dir.test.log)"; failed+=("$name"); }
    grep -E "Epoch\(test\)" "$dir.test.log" | tail -n 1 || true
  done
done

stamp "tables"
"$PYTHON" tools/analysis_tools/paper_tables.py "${run_dirs[@]}" \
    --out-dir "$WORK/tables" | tail -n 20 || true
cat "$WORK/tables/table2.md" 2>/dev/null || true
if [ ${#failed[@]} -gt 0 ]; then
    stamp "done; no test result for: ${failed[*]}"
    exit 1
fi
stamp "done"
