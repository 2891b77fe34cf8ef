#!/usr/bin/env bash
# MMPretrain's tools/dist_train.sh arguments, launched with torchrun:
#   tools/dist_train.sh CONFIG GPUS [tools/train.py arguments...]
# NCCL on CUDA machines; without CUDA, mmdsp switches to gloo on the CPU
# (docs/compat.md), so `tools/dist_train.sh CONFIG 2` also works on a laptop.
# SyncBN: add `--cfg-options sync_bn=torch`; mixed precision: `--amp`.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
