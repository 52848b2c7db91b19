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
    /// Set when this process was started as one rank of a distributed launch (torchrun).
    pub distributed: Option<DistributedReport>,
}

/// This process's rank in a distributed launch, as its environment says.
#[derive(Debug, Clone, Serialize)]
pub struct DistributedReport {
    pub launch: Option<crate::dist::Launch>,
    /// The collectives' backends a training here would use: `nccl+gloo` (NCCL for CUDA
    /// tensors) when this build has NCCL and LibTorch sees a GPU, else `gloo`.
    pub backend: &'static str,
    /// Why the launch variables cannot be used, if they cannot.
    pub error: Option<String>,
}

impl DistributedReport {
    fn probe() -> Option<Self> {
        let (launch, error) = match crate::dist::Launch::from_env() {
            Ok(None) => return None,
            Ok(Some(launch)) => (Some(launch), None),
            Err(error) => (None, Some(error.to_string())),
        };
        let nccl = crate::dist::ProcessGroup::nccl_built() && tch::Cuda::device_count() > 0;
        Some(Self { launch, backend: if nccl { "nccl+gloo" } else { "gloo" }, error })
    }
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
    /// Why GPU names could not be read (no NVIDIA driver, say), or why LibTorch cannot use
    /// the GPUs the driver sees, with what to do.
    pub note: Option<String>,
    /// The CUDA runtime this LibTorch was built with ("12.8"), when its CUDA library loads.
    pub runtime: Option<String>,
    /// A convolution forward and backward on each GPU, checked against the CPU.
    pub smoke_test: Vec<SmokeTest>,
}

/// One device's result of [`conv_smoke_test`].
#[derive(Debug, Clone, Serialize)]
pub struct SmokeTest {
    pub device: String,
    pub passed: bool,
    /// The largest difference from the CPU's output and weight gradient, relative to their
    /// largest magnitude.
    pub relative_difference: Option<f64>,
    pub seconds: f64,
    pub error: Option<String>,
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
            distributed: DistributedReport::probe(),
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
        Self { available: false, cudnn: false, devices: Vec::new(), note: None, runtime: None, smoke_test: Vec::new() }
    }
}

/// Differences allowed from the CPU: TF32 convolutions keep a 10-bit mantissa (about 1e-3).
const SMOKE_TOLERANCE: f64 = 1e-2;

/// A 3x3 convolution's forward and its weight gradient on `device`, compared with the CPU's:
/// proves the device computes, not only that it is listed.
pub fn conv_smoke_test(device: tch::Device) -> SmokeTest {
    let started = std::time::Instant::now();
    let outcome = std::panic::catch_unwind(|| -> Result<f64, tch::TchError> {
        let cpu = conv_forward_backward(tch::Device::Cpu)?;
        let other = conv_forward_backward(device)?;
        let mut worst: f64 = 0.0;
        for (expected, got) in cpu.iter().zip(&other) {
            let scale = expected.f_abs()?.f_max()?.f_double_value(&[])?.max(1e-12);
            let difference = (expected - got.f_to_device(tch::Device::Cpu)?).f_abs()?.f_max()?.f_double_value(&[])?;
            worst = worst.max(difference / scale);
        }
        Ok(worst)
    });
    let seconds = started.elapsed().as_secs_f64();
    let name = match device {
        tch::Device::Cuda(index) => format!("cuda:{index}"),
        other => format!("{other:?}").to_lowercase(),
    };
    match outcome {
        Ok(Ok(difference)) => SmokeTest {
            device: name,
            passed: difference <= SMOKE_TOLERANCE,
            relative_difference: Some(difference),
            seconds,
            error: (difference > SMOKE_TOLERANCE)
                .then(|| format!("differs from the CPU by {difference:.2e} (allowed {SMOKE_TOLERANCE:.0e})")),
        },
        Ok(Err(error)) => SmokeTest {
            device: name,
            passed: false,
            relative_difference: None,
            seconds,
            error: Some(first_line(&error.to_string())),
        },
        Err(_) => SmokeTest {
            device: name,
            passed: false,
            relative_difference: None,
            seconds,
            error: Some("LibTorch panicked in the convolution".into()),
        },
    }
}

/// The output and weight gradient of a small convolution on fixed inputs.
fn conv_forward_backward(device: tch::Device) -> Result<[tch::Tensor; 2], tch::TchError> {
    let options = (tch::Kind::Float, tch::Device::Cpu);
    let input =
        tch::Tensor::f_arange(2 * 3 * 16 * 16, options)?.f_sin()?.f_view([2, 3, 16, 16])?.f_to_device(device)?;
    let weight = tch::Tensor::f_arange(4 * 3 * 3 * 3, options)?
        .f_cos()?
        .f_view([4, 3, 3, 3])?
        .f_to_device(device)?
        .f_set_requires_grad(true)?;
    let output = input.f_conv2d::<tch::Tensor>(&weight, None, [1, 1], [1, 1], [1, 1], 1)?;
    output.f_square()?.f_sum(tch::Kind::Float)?.f_backward()?;
    Ok([output.f_detach()?, weight.grad()])
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).trim().to_string()
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
    let mut cuda = Cuda {
        available: tch::Cuda::is_available(),
        cudnn: tch::Cuda::cudnn_is_available(),
        runtime: crate::learn::cuda::runtime_version().map(|(major, minor)| format!("{major}.{minor}")),
        ..Cuda::none()
    };
    let nvml = nvml_wrapper::Nvml::init();
    if count == 0 {
        cuda.note = nvml.ok().and_then(|nvml| unusable_gpus_note(&nvml, cuda.runtime.as_deref()));
        return cuda;
    }
    match nvml {
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
    cuda.smoke_test = (0..count as usize).map(|index| conv_smoke_test(tch::Device::Cuda(index))).collect();
    cuda
}

/// When the NVIDIA driver sees GPUs that LibTorch cannot use: the one line saying why and what
/// to do (most often a driver older than the CUDA runtime of the torch wheel).
fn unusable_gpus_note(nvml: &nvml_wrapper::Nvml, runtime: Option<&str>) -> Option<String> {
    let gpus = nvml.device_count().ok().filter(|&n| n > 0)?;
    let driver = nvml.sys_cuda_driver_version().ok().map(|v| format!("{}.{}", v / 1000, v % 1000 / 10));
    Some(match (driver, runtime) {
        (Some(driver), Some(runtime)) => format!(
            "the NVIDIA driver sees {gpus} GPU(s) but LibTorch cannot use them: the driver supports CUDA up to {driver}, this LibTorch needs CUDA {runtime}; update the driver, or build against a torch wheel for CUDA {driver} or older (README: GPU machines)"
        ),
        _ => format!(
            "the NVIDIA driver sees {gpus} GPU(s) but this LibTorch has no CUDA support: build against a CUDA torch wheel (scripts/setup-libtorch.sh installs one)"
        ),
    })
}

/// The version of the LibTorch this process loaded, as [`SystemReport::probe`] reports it.
pub fn loaded_libtorch_version() -> Option<String> {
    libtorch_version(&loaded_libtorch_dir()?)
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

    #[test]
    fn the_smoke_test_computes_a_convolution_and_its_gradient() {
        // On the CPU against itself: the comparison runs end to end and finds no difference.
        let test = conv_smoke_test(tch::Device::Cpu);
        assert!(test.passed, "{test:?}");
        assert_eq!(test.relative_difference, Some(0.0));
        let [output, gradient] = conv_forward_backward(tch::Device::Cpu).unwrap();
        assert_eq!(output.size(), [2, 4, 16, 16]);
        assert_eq!(gradient.size(), [4, 3, 3, 3]);
        assert!(gradient.abs().sum(tch::Kind::Float).double_value(&[]) > 1.0, "the backward reached the weight");
    }

    #[test]
    fn the_smoke_test_reports_a_device_that_cannot_compute() {
        // A CUDA index that does not exist here (no GPU, or not that many): an error, not a panic.
        let test = conv_smoke_test(tch::Device::Cuda(63));
        assert!(!test.passed);
        assert!(test.error.as_deref().is_some_and(|error| !error.is_empty()), "{test:?}");
    }
}
