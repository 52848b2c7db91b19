#!/usr/bin/env bash
# Data-parallel training on this machine's CPU: one epoch of resnet34 (batch 64 per process,
# 64 px) on the embedded lesson data, trained by 1 process with 2 threads, then by 2 Gloo ranks
# of 1 thread each under torchrun (the same learner to start from). Prints each epoch's seconds
# and training img/s from the JSON epoch rows, and their ratio. What the gradient all-reduce
# costs a step is `cargo bench --bench allreduce`.
#
#     scripts/bench-distributed.sh [ARCH]      # MEDNIST=path/to/mednist to pick the binary
set -euo pipefail
bin="$(realpath "${MEDNIST:-target/release/mednist}")"
arch="${1:-resnet34}"
python="$("$(dirname "$0")/setup-libtorch.sh" >/dev/null && echo "${MEDNIST_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mednist/torch-venv}/bin/python")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ws="$work/ws"
"$bin" --workdir "$ws" fetch >/dev/null 2>&1
"$bin" --workdir "$ws" split >/dev/null 2>&1
# A saved learner both start from: the first epoch's one-time costs are not counted.
"$bin" --workdir "$ws" train --arch "$arch" --device cpu --epochs 1 --max-lr 1e-4 >/dev/null 2>&1
cp -r "$ws/runs" "$work/runs-start"

epoch_row() { python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
row = [r for r in rows if r.get("event") == "epoch"][-1]
print(row["seconds"], row["train_images_per_second"])'; }

lscpu | sed -n 's/^Model name: *//p' | head -1
read -r alone_s alone_ips < <(OMP_NUM_THREADS=2 "$bin" --workdir "$ws" --json train --device cpu --epochs 1 2>/dev/null | epoch_row)
echo "1 process x 2 threads: epoch $alone_s s, $alone_ips img/s"
rm -rf "$ws/runs" && cp -r "$work/runs-start" "$ws/runs"
read -r ranks_s ranks_ips < <("$python" -m torch.distributed.run --standalone --nproc_per_node 2 --no-python \
    "$bin" --workdir "$ws" --json train --device cpu --epochs 1 2>/dev/null | epoch_row)
echo "2 ranks x 1 thread (Gloo): epoch $ranks_s s, $ranks_ips img/s per rank"
python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'epoch time, 2 ranks / 1 process: {b / a:.2f}')" "$alone_s" "$ranks_s"
