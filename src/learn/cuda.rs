//! LibTorch's CUDA settings for training, and what its CUDA build offers (`cuda.cpp`).
//!
//! Training batches have one size (the last partial one is dropped), so cuDNN's autotuner pays
//! once per shape and is on by default. TF32 is allowed for convolutions and matmuls (about
//! twice fp32's tensor throughput on Ampere and later, a 10-bit mantissa) unless
//! `MEDNIST_TF32=0`. `--deterministic` picks cuDNN's deterministic algorithms and turns the
//! autotuner off: reproducible convolutions, slower.

/// Set to `0` to keep fp32 convolutions and matmuls in full fp32 on CUDA.
pub const TF32_ENV: &str = "MEDNIST_TF32";

unsafe extern "C" {
    fn mednist_cuda_configure(benchmark: i32, deterministic: i32, allow_tf32: i32);
    fn mednist_cuda_settings(benchmark: *mut i32, deterministic: *mut i32, tf32_cudnn: *mut i32, tf32_cublas: *mut i32);
    fn mednist_cuda_runtime_version() -> std::ffi::c_long;
    fn mednist_cuda_supports_bf16() -> i32;
}

/// LibTorch's process-wide CUDA flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaSettings {
    /// cuDNN's autotuner: times the algorithms for each new shape, keeps the fastest.
    pub benchmark: bool,
    /// cuDNN's deterministic algorithms only.
    pub deterministic: bool,
    /// TF32 tensor cores for fp32 convolutions (cuDNN) and matmuls (cuBLAS).
    pub allow_tf32: bool,
}

impl CudaSettings {
    /// The training defaults, `deterministic` as asked, TF32 as `MEDNIST_TF32` says.
    pub fn for_training(deterministic: bool) -> Self {
        let allow_tf32 = std::env::var(TF32_ENV).map_or(true, |value| value.trim() != "0");
        Self { benchmark: !deterministic, deterministic, allow_tf32 }
    }

    pub fn apply(self) {
        // SAFETY: plain setters of LibTorch's global context.
        unsafe { mednist_cuda_configure(self.benchmark.into(), self.deterministic.into(), self.allow_tf32.into()) }
    }

    /// What LibTorch holds now (TF32 counts as allowed when both libraries allow it).
    pub fn current() -> Self {
        let (mut benchmark, mut deterministic, mut tf32_cudnn, mut tf32_cublas) = (0, 0, 0, 0);
        // SAFETY: the four pointers are valid for writes.
        unsafe { mednist_cuda_settings(&mut benchmark, &mut deterministic, &mut tf32_cudnn, &mut tf32_cublas) };
        Self {
            benchmark: benchmark != 0,
            deterministic: deterministic != 0,
            allow_tf32: tf32_cudnn != 0 && tf32_cublas != 0,
        }
    }
}

/// The CUDA runtime LibTorch was built with (major, minor), when its CUDA library is loaded.
pub fn runtime_version() -> Option<(u32, u32)> {
    // SAFETY: no arguments; LibTorch's exceptions are caught on the C++ side.
    let version = unsafe { mednist_cuda_runtime_version() };
    (version > 0).then_some(((version / 1000) as u32, (version % 1000 / 10) as u32))
}

/// Whether the current CUDA device computes convolutions in bf16 (compute capability 8.0+).
pub fn supports_bf16() -> bool {
    // SAFETY: no arguments; LibTorch's exceptions are caught on the C++ side.
    tch::Cuda::is_available() && unsafe { mednist_cuda_supports_bf16() } != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_reach_libtorch_and_read_back() {
        let before = CudaSettings::current();
        for settings in [
            CudaSettings::for_training(true),
            CudaSettings { benchmark: true, deterministic: false, allow_tf32: false },
        ] {
            settings.apply();
            assert_eq!(CudaSettings::current(), settings);
        }
        before.apply();
    }

    #[test]
    fn deterministic_training_turns_the_autotuner_off() {
        assert!(!CudaSettings::for_training(true).benchmark);
        assert!(CudaSettings::for_training(false).benchmark);
    }

    #[test]
    fn the_cuda_build_reports_its_runtime() {
        // PyPI's torch wheel is a CUDA build: its runtime version is known without a GPU.
        let (major, _) = runtime_version().expect("LibTorch's CUDA library is loaded");
        assert!(major >= 11, "CUDA {major}");
    }
}
