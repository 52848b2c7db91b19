//! What this machine offers the learner: versions, LibTorch, CUDA devices, CPU threads.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    pub mednist_version: &'static str,
    pub burn_version: &'static str,
    pub libtorch: LibTorch,
    pub cuda: Cuda,
    /// Threads LibTorch uses for CPU work.
    pub cpu_threads: Option<i32>,
    pub logical_cpus: usize,
    pub workspace: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct LibTorch {
    /// Version read from the installation next to the loaded library (e.g. "2.9.0+cu128").
    pub version: Option<String>,
    /// Folder of the libtorch_cpu library actually loaded by this process.
    pub lib_dir: Option<PathBuf>,
    /// Why a basic tensor operation failed, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cuda {
    pub available: bool,
    pub cudnn: bool,
    pub devices: Vec<Gpu>,
    /// Why GPU names could not be read (no NVIDIA driver, say), when CUDA reports devices.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub memory_bytes: Option<u64>,
}

impl SystemReport {
    pub fn probe(workspace: &Path) -> Self {
        let lib_dir = loaded_libtorch_dir().or_else(|| option_env!("MEDNIST_LIBTORCH_LIB").map(PathBuf::from));
        let libtorch = LibTorch {
            version: lib_dir.as_deref().and_then(libtorch_version),
            lib_dir,
            error: libtorch_smoke_test().err(),
        };
        let cuda = if libtorch.error.is_none() { probe_cuda() } else { Cuda::none() };
        Self {
            mednist_version: env!("CARGO_PKG_VERSION"),
            burn_version: env!("MEDNIST_BURN_VERSION"),
            cpu_threads: libtorch.error.is_none().then(tch::get_num_threads),
            libtorch,
            cuda,
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            workspace: workspace.to_path_buf(),
        }
    }
}

/// Keeps the memory LibTorch frees for the next training step instead of giving it back to the
/// kernel. glibc serves blocks above a moving threshold (at most 32 MB) with fresh mmaps and
/// trims a freed heap top, so each ResNet34 step at batch 64 faulted in and zeroed much of its
/// activations again (8,000-27,000 page faults a step; about 2% of the step, issue 3).
/// Process-wide, so it is the program's entry point that asks for it. Does nothing off glibc.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Blocks up to this size come from the heap, where freed ones are reused.
        const MMAP_THRESHOLD: i32 = 1 << 30;
        /// Free memory at the heap's top kept for reuse rather than returned. 128 MiB: one
        /// lesson epoch of ResNet34 peaked at 1.71 GB RSS (1.64 GB with glibc's defaults, 1.81
        /// GB keeping 1 GiB) and spent 1.4 s in the kernel (4.4 s with the defaults).
        const TRIM_THRESHOLD: i32 = 128 << 20;
        // SAFETY: mallopt only sets allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Gives the memory freed since start-up back to the kernel, from every allocator arena:
/// decoding a dataset on many threads leaves hundreds of MB free in their arenas, which
/// [`reuse_freed_memory`]'s settings would otherwise keep resident for the whole training.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Cuda {
    fn none() -> Self {
        Self { available: false, cudnn: false, devices: Vec::new(), note: None }
    }
}

/// Creates and reduces a small tensor: proves LibTorch's CPU library really works.
fn libtorch_smoke_test() -> Result<(), String> {
    let outcome = std::panic::catch_unwind(|| {
        let t = tch::Tensor::f_ones([2, 2], (tch::Kind::Float, tch::Device::Cpu)).map_err(|e| e.to_string())?;
        let sum = t.f_sum(tch::Kind::Float).and_then(|s| s.f_double_value(&[])).map_err(|e| e.to_string())?;
        if sum == 4.0 { Ok(()) } else { Err(format!("LibTorch computed 1+1+1+1 = {sum}")) }
    });
    outcome.unwrap_or_else(|_| Err("LibTorch panicked on a basic tensor operation".into()))
}

fn probe_cuda() -> Cuda {
    let count = tch::Cuda::device_count();
    let mut cuda =
        Cuda { available: tch::Cuda::is_available(), cudnn: tch::Cuda::cudnn_is_available(), ..Cuda::none() };
    if count == 0 {
        return cuda;
    }
    match nvml_wrapper::Nvml::init() {
        Ok(nvml) => {
            for index in 0..count as u32 {
                let device = nvml.device_by_index(index);
                cuda.devices.push(Gpu {
                    index,
                    name: device.as_ref().ok().and_then(|d| d.name().ok()).unwrap_or_else(|| "unknown GPU".into()),
                    memory_bytes: device.ok().and_then(|d| d.memory_info().ok()).map(|m| m.total),
                });
            }
        }
        Err(error) => {
            cuda.devices =
                (0..count as u32).map(|index| Gpu { index, name: "unknown GPU".into(), memory_bytes: None }).collect();
            cuda.note = Some(format!("GPU names unavailable: NVML could not be loaded ({error})"));
        }
    }
    cuda
}

/// The folder of the libtorch_cpu library mapped into this process, from /proc/self/maps.
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| Path::new(path).file_name().is_some_and(|n| n.to_string_lossy().starts_with("libtorch_cpu.")))
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
}

/// Reads the version that a PyPI wheel (`torch/version.py`) or a LibTorch zip (`build-version`) records.
fn libtorch_version(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        return Some(line.split(['\'', '"']).nth(1)?.to_string());
    }
    std::fs::read_to_string(root.join("build-version")).ok().map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wheel_and_zip_versions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("version.py"), "from typing import Optional\n__version__ = '2.9.0+cu128'\n")
            .unwrap();
        assert_eq!(libtorch_version(&dir.path().join("lib")).as_deref(), Some("2.9.0+cu128"));
        std::fs::remove_file(dir.path().join("version.py")).unwrap();
        std::fs::write(dir.path().join("build-version"), "2.9.0+cpu\n").unwrap();
        assert_eq!(libtorch_version(&dir.path().join("lib")).as_deref(), Some("2.9.0+cpu"));
    }

    #[test]
    fn probe_finds_the_loaded_libtorch() {
        let report = SystemReport::probe(Path::new("/tmp/ws"));
        assert_eq!(report.libtorch.error, None);
        let lib_dir = report.libtorch.lib_dir.expect("libtorch_cpu is mapped");
        assert!(lib_dir.join("libtorch_cpu.so").exists(), "{}", lib_dir.display());
        assert!(report.cpu_threads.unwrap() >= 1);
    }
}
