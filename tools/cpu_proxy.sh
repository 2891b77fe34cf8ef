#!/usr/bin/env bash
# The CPU proxy of the GPU protocol (docs/experiments.md): the same script,
# tools/gpu/compare.sh, reduced for a 2-core CPU:
# EfficientNetV2-B0 against EfficientNet-DSP at B0 size, 128 px, 12 epochs,
# fp32, on the same leak-free split (and pre-segmented masks, for configs
# with the paper's background removal).
# Usage: [SEEDS="0 1 2"] tools/cpu_proxy.sh DATA_ROOT [WORK_DIR]
#   SEEDS: each model once per seed, and table 2 with mean +- std (about
#   35 min per seed on 2 cores with the default flips-only recipe: 13-15 min
#   EfficientNetV2-B0, 19 min DSP-B0, measured in the recipe study).
set -euo pipefail
export EPOCHS=${EPOCHS:-12} IMG=${IMG:-128} ARCH=${ARCH:-b0} AMP=0
export NUM_WORKERS=${NUM_WORKERS:-2}
exec "$(dirname "$0")/gpu/compare.sh" "${1:?usage: tools/cpu_proxy.sh DATA_ROOT [WORK_DIR]}" \
    "${2:-work_dirs/cpu_proxy}"
