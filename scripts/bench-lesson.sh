#!/usr/bin/env bash
# The lesson's accuracy run, ours and the PyTorch reference side by side on the same data:
# resnet34 from scratch, 3 epochs of fit_one_cycle at the defaults, on the embedded lesson
# data (1,440 train / 360 valid). Prints both tables; compare error_rate and time per epoch.
#   usage: scripts/bench-lesson.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-3}"
python="$(scripts/setup-bench.sh)"
export LIBTORCH="$(scripts/setup-libtorch.sh)"
cargo build --release --quiet
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mednist=(target/release/mednist --workdir "$work")
"${mednist[@]}" fetch >/dev/null
"${mednist[@]}" split --valid-pct 0.2 --seed 42 >/dev/null
echo "== mednist (burn + LibTorch), $(nproc) CPUs"
/usr/bin/time -f "peak RSS %M KiB, %e s wall" "${mednist[@]}" train --epochs "$epochs" --arch resnet34 --device cpu
echo "== PyTorch reference"
"$python" ../shared/bench/torch_reference.py --data "$work/dataset" --epochs "$epochs" --arch resnet34 --head fastai --threads 2
