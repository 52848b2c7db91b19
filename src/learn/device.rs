//! `--device auto|cpu|cuda[:N]`: where LibTorch runs the model.

// burn 0.22 deprecates its LibTorch backend in favour of CubeCL ones; this crate links
// LibTorch on purpose.
#![allow(deprecated)]

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use burn::backend::LibTorch;
use burn::tensor::{Device, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA when LibTorch sees a GPU, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl DeviceChoice {
    /// The burn device and a label saying which it is (for the user).
    pub fn resolve(self) -> Result<(Device, String)> {
        let gpus = tch::Cuda::device_count().max(0) as usize;
        match self {
            DeviceChoice::Auto if gpus > 0 => DeviceChoice::Cuda(0).resolve(),
            DeviceChoice::Auto | DeviceChoice::Cpu => {
                Ok((Device::libtorch(), format!("cpu ({} threads)", tch::get_num_threads())))
            }
            DeviceChoice::Cuda(index) if index < gpus => Ok((Device::libtorch_cuda(index), format!("cuda:{index}"))),
            DeviceChoice::Cuda(index) => bail!(
                "--device cuda:{index} asked for, but LibTorch sees {gpus} CUDA device(s): check `mednist doctor`, or use --device cpu"
            ),
        }
    }
}

impl DeviceChoice {
    /// The choice for the process of a distributed launch with this local rank: each process
    /// trains on its own GPU (the `local_rank`-th), or on the CPU.
    pub fn for_local_rank(self, local_rank: usize) -> Self {
        match self {
            DeviceChoice::Auto if tch::Cuda::device_count() > 0 => DeviceChoice::Cuda(local_rank),
            DeviceChoice::Cuda(_) => DeviceChoice::Cuda(local_rank),
            other => other,
        }
    }
}

/// The LibTorch device behind a burn device (autodiff or not), for the work done with LibTorch
/// directly: uploads, device-side augmentation, CUDA settings.
pub fn libtorch_device(device: &Device) -> tch::Device {
    // burn keeps its device type opaque; an empty tensor tells where it lives.
    let probe = Tensor::<1>::empty([0], &device.clone().inner());
    probe
        .try_into_primitive::<LibTorch>()
        .unwrap_or_else(|_| panic!("{device:?} is not a LibTorch device"))
        .tensor
        .device()
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device '{text}': use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:1".parse(), Ok(DeviceChoice::Cuda(1)));
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().contains("gpu"));
    }

    #[test]
    fn the_cpu_is_libtorchs_cpu_with_or_without_autodiff() {
        let (device, _) = DeviceChoice::Cpu.resolve().unwrap();
        assert_eq!(libtorch_device(&device), tch::Device::Cpu);
        assert_eq!(libtorch_device(&device.autodiff()), tch::Device::Cpu);
    }

    #[test]
    fn a_missing_gpu_is_a_clear_error() {
        if tch::Cuda::device_count() == 0 {
            let error = DeviceChoice::Cuda(0).resolve().unwrap_err().to_string();
            assert!(error.contains("cuda:0") && error.contains("--device cpu"), "{error}");
            assert!(DeviceChoice::Auto.resolve().unwrap().1.starts_with("cpu"));
        }
    }
}
