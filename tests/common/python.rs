//! The Python of the LibTorch venv, where the tests find torch (scripts/setup-libtorch.sh),
//! pydicom, onnxruntime and onnx (scripts/setup-test-python.sh).

use std::path::PathBuf;

/// `MEDNIST_TEST_PYTHON`, else the setup script's venv: `MEDNIST_TORCH_VENV`, or
/// `${XDG_CACHE_HOME:-$HOME/.cache}/mednist/torch-venv` as scripts/setup-libtorch.sh has it.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("MEDNIST_TEST_PYTHON") {
        return python.into();
    }
    let venv = std::env::var_os("MEDNIST_TORCH_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"));
        cache.join("mednist/torch-venv")
    });
    let python = venv.join("bin/python");
    assert!(python.is_file(), "no Python with torch at {}: run scripts/setup-libtorch.sh", python.display());
    python
}
