#!/usr/bin/env bash
# Adds what the ONNX tests need to the LibTorch venv made by setup-libtorch.sh: onnxruntime,
# which runs the exported models, and onnx, whose checker validates them. Prints the venv's
# Python. Idempotent: versions already installed are kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/setup-libtorch.sh" >/dev/null
venv="${MEDNIST_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mednist/torch-venv}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "onnxruntime==1.31.1" "onnx==1.23.2" >&2
echo "$venv/bin/python"
