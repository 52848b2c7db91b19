#!/usr/bin/env bash
# Adds what ../shared/bench/torch_reference.py needs (torchvision 0.24.0 matches torch 2.9.0,
# Pillow) to the LibTorch venv made by setup-libtorch.sh, so both run on the same LibTorch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/setup-libtorch.sh" >/dev/null
venv="${MEDNIST_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mednist/torch-venv}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torchvision==0.24.0" pillow >&2
echo "$venv/bin/python"
