#!/usr/bin/env bash
# Issue 15's figures on the full MedNIST (11,790 validation images with the default split):
# interpret's metrics + bootstrap and its 9 Grad-CAMs (as differences between runs), ONNX
# export time and size, and onnxruntime's CPU img/s against `mednist predict` on the same
# validation files. Trains a resnet18 for EPOCHS (default 1) first.
#   usage: scripts/bench-clinical.sh MedNIST.tar.gz [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
archive="$(realpath "$1")"
epochs="${2:-1}"
python="$(scripts/setup-test-python.sh)"
"$python" -m pip install --quiet --disable-pip-version-check pillow >&2
export LIBTORCH="$(scripts/setup-libtorch.sh)"
cargo build --release --quiet
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mednist=("${CARGO_TARGET_DIR:-target}/release/mednist" --workdir "$work")
seconds() { local start; start=$(date +%s.%N); "$@" >/dev/null 2>&1; python3 -c "import time; print(f'{time.time() - $start:.1f}')"; }
echo "== $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
"${mednist[@]}" fetch --source "$archive" >/dev/null
"${mednist[@]}" split --valid-pct 0.2 --seed 42 >/dev/null
"${mednist[@]}" train --epochs "$epochs" --arch resnet18 --device cpu >/dev/null
plain=$(seconds "${mednist[@]}" --json interpret --resamples 2 --device cpu)
boot=$(seconds "${mednist[@]}" --json interpret --resamples 1000 --device cpu)
cams=$(seconds "${mednist[@]}" --json interpret --resamples 1000 --cam --device cpu)
echo "interpret (load + predict + metrics, 2 resamples): ${plain} s; with 1000 resamples: ${boot} s; and 9 Grad-CAMs: ${cams} s"
onnx=$(seconds "${mednist[@]}" export --format onnx "$work/model.onnx")
echo "ONNX export: ${onnx} s, $(stat -c %s "$work/model.onnx") bytes"
"${mednist[@]}" export >/dev/null
python3 -c "
import json; s = json.load(open('$work/split.json'))
print('\n'.join('$work/dataset/' + item['path'] for item in s['valid']))" > "$work/valid.txt"
count=$(wc -l < "$work/valid.txt")
predict=$(seconds xargs -s 1500000 -a "$work/valid.txt" "${mednist[@]}" --json predict --device cpu)
echo "mednist predict: $count images in ${predict} s (decode + predict + start-up)"
"$python" - "$work/model.onnx" "$work/valid.txt" <<'PY'
import json, sys, time
import numpy as np, onnx, onnxruntime as ort
from PIL import Image
path, listing = sys.argv[1], sys.argv[2]
meta = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}
start = time.time()
files = open(listing).read().split()
gray = np.stack([np.asarray(Image.open(f).convert("L").resize((meta["size"],) * 2, Image.BILINEAR)) for f in files])
x = (np.repeat(gray[:, None].astype(np.float32) / 255, 3, axis=1) - np.array(meta["mean"], np.float32)[None, :, None, None]) / np.array(meta["std"], np.float32)[None, :, None, None]
decoded = time.time()
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
run = time.time()
for i in range(0, len(x), 64):
    session.run(None, {"image": x[i:i + 64].astype(np.float32)})
end = time.time()
print(f"onnxruntime {ort.__version__}: {len(x)} images, inference {len(x) / (end - run):.0f} img/s (batches of 64), "
      f"{len(x) / (end - start):.0f} img/s with decoding ({end - start:.1f} s)")
PY
