#!/usr/bin/env bash
# Distributed training on one or more machines (torchrun, mmdet's layout).
#
#   tools/dist_train.sh CONFIG NUM_PROCS_PER_NODE [train.py arguments]
#
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# PORT (29500), PYTHON (python). On machines without a GPU add
# `--cfg-options env_cfg.dist_cfg.backend=gloo` (see docs/multi_gpu.md).

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCS_PER_NODE [train.py arguments]" >&2
    exit 2
fi

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-"python"}

# torch.distributed.launch is deprecated in torch 2.x; torch.distributed.run
# (torchrun) hands LOCAL_RANK to train.py through the environment.
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
