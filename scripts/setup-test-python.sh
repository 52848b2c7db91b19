#!/usr/bin/env bash
# Adds what the tests need beyond torch to the LibTorch venv made by setup-libtorch.sh:
# pydicom writes the DICOM tests' files (scripts/make-test-dicom.py) and computes their
# reference gray levels, imagecodecs encodes JPEG lossless, JPEG 2000, JPEG-LS and 12-bit JPEG;
# onnxruntime runs the exported ONNX models and onnx's checker validates them. Idempotent;
# prints the venv's python (the tests find it there, or in $MEDNIST_TEST_PYTHON).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/setup-libtorch.sh" >/dev/null
venv="${MEDNIST_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mednist/torch-venv}"
python="$venv/bin/python"
wanted=("pydicom==3.0.2" "imagecodecs==2026.3.6" "onnxruntime==1.31.1" "onnx==1.23.2")
if ! "$python" - "${wanted[@]}" <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
sys.exit(any(m.version(name) != version for name, version in (w.split("==") for w in sys.argv[1:])))
PY
    echo "setup-test-python: installing ${wanted[*]} into $venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check "${wanted[@]}" >&2
fi
echo "$python"
