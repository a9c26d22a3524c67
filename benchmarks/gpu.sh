#!/usr/bin/env bash
# The GPU figures of issue #14 in one prepared run (under 8 minutes on one GPU): Hessian-vector
# products per second (ResNet-20, ResNet-18, batch 512), a 51x51 ResNet-20 surface over 10,000
# CIFAR-shaped inputs (extrapolated from measured points) and one SAM epoch, timed with CUDA
# events (benchmarks/bench_gpu.py). Then the collective path: a NCCL group and an all-reduce
# through landscape.distributed, and with 2+ GPUs `landscape train` under torchrun on 2 ranks.
# Paste the printed tables into the README with the date and the device.
#
#   bash benchmarks/gpu.sh              # on a GPU machine
#   bash benchmarks/gpu.sh --quick      # tiny sizes (on a CPU: checks that it runs end to end)
set -euo pipefail
cd "$(dirname "$0")/.."
# unbuffered: lines printed before a time limit cuts a step short still reach the terminal
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1

quick=()
device=cuda
if [[ "${1:-}" == "--quick" ]]; then
  quick=(--quick)
  python -c "import torch; raise SystemExit(0 if torch.cuda.is_available() else 1)" || device=cpu
fi
date -u "+date: %Y-%m-%d %H:%M UTC"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

timeout 420 python benchmarks/bench_gpu.py --device "$device" "${quick[@]}"

echo
timeout 120 python - "$device" <<'PY'
import datetime, os, sys, tempfile

import torch
import torch.distributed as dist

from landscape.distributed import TorchPartition

device = torch.device(sys.argv[1])
backend = "nccl" if device.type == "cuda" else "gloo"
store = dist.FileStore(os.path.join(tempfile.mkdtemp(), "store"), 1)
dist.init_process_group(
    backend, store=store, rank=0, world_size=1, timeout=datetime.timedelta(seconds=60)
)
value = TorchPartition.of_group().sum_(torch.ones(4, device=device))
assert value.tolist() == [1.0] * 4, value
print(f"{backend}: process group and all-reduce on {device}: ok")
dist.destroy_process_group()
PY

gpus=$(python -c "import torch; print(torch.cuda.device_count())")
if [[ $device == cuda && $gpus -ge 2 ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  timeout 180 python -m torch.distributed.run --standalone --nproc_per_node=2 -m landscape \
    train --device cuda --arch cnn-bn --epochs 2 --sam-start 1 --sync-bn \
    --out "$out" --run-name nccl -q
  python -c "import json, sys; c = json.load(open(sys.argv[1])); \
print(f\"torchrun: {c['world_size']} ranks, {c['backend']}, sync_bn {c['sync_bn']}: ok\")" \
    "$out/nccl/config.json"
fi
