#!/usr/bin/env bash
# Installs LibTorch (PyPI's torch wheel, CPU and CUDA in one) into a cached virtual
# environment outside the repository, and prints the folder to build against (LIBTORCH).
# Idempotent: an environment that already holds the right torch is reused as it is.
#   MEDNIST_TORCH_VENV     where it lives (default: ~/.cache/mednist/torch-venv)
#   MEDNIST_TORCH_VERSION  torch version (default 2.9.0, the one burn-tch 0.22 expects)
#   PYTHON                 the Python to install with (default python3)
set -euo pipefail

venv="${MEDNIST_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mednist/torch-venv}"
version="${MEDNIST_TORCH_VERSION:-2.9.0}"
python="${PYTHON:-python3}"

installed_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.stdout.write(m.version("torch").split("+")[0])' 2>/dev/null || true
}

if [[ "$(installed_version)" != "$version" ]]; then
    echo "setup-libtorch: installing torch==$version into $venv (about 3 minutes and 7 GB, once)" >&2
    if ! "$python" -m venv --clear "$venv" >&2; then
        echo "setup-libtorch: '$python -m venv' failed; on Debian install python3-venv (apt-get install python3-venv)" >&2
        exit 1
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$version" numpy >&2
fi

# The NCCL process group (src/dist/nccl.cpp) compiles against the CUDA runtime's headers, which
# the wheel's nvidia-* packages ship, and nvcc's and CCCL's, which they do not: add those two, for
# their headers alone, in the CUDA version of the wheel's runtime. Without them (no CUDA wheel, no
# such packages) mednist builds without NCCL and says so.
if [[ ! -d "$("$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("nvidia").submodule_search_locations[0])' 2>/dev/null)/cuda_cccl/include" ]]; then
    headers="$("$venv/bin/python" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
for dist in m.distributions():
    name = dist.metadata["Name"] or ""
    if name.lower().startswith("nvidia-cuda-runtime"):
        suffix, version = name[len("nvidia-cuda-runtime"):], ".".join(dist.version.split(".")[:2])
        print(f"nvidia-cuda-nvcc{suffix}~={version}.0 nvidia-cuda-cccl{suffix}~={version}.0")
        break
PY
)"
    if [[ -n "$headers" ]]; then
        echo "setup-libtorch: adding the CUDA headers NCCL's process group needs ($headers)" >&2
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps $headers >&2 \
            || echo "setup-libtorch: could not install $headers: mednist will be built without NCCL" >&2
    fi
fi

"$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])'
