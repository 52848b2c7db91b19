//! `--precision fp32|bf16|fp16`: what a training step computes its convolutions in.
//!
//! As PyTorch's autocast does, only the work that tolerates it runs in the lower precision:
//! weights, their gradients, the optimizer's state, BatchNorm's statistics and the loss stay
//! fp32, so checkpoints are fp32 whatever the precision. The precision follows the data: the
//! learner hands the model its images in the compute kind, each convolution casts its fp32
//! weight to its input's kind (and the weight's gradient back to fp32), BatchNorm normalises
//! the lower-precision activations with fp32 parameters and statistics, and the head works in
//! fp32 (its two matmuls are about 0.1% of a ResNet34 step at 64px).
//!
//! bf16 keeps fp32's exponent range: nothing else is needed. fp16's range is narrow (the
//! smallest normal value is 6e-5), so small gradients underflow: fp16 steps scale the loss up
//! and the gradients back down with a [`GradScaler`], skipping steps whose gradients overflowed.

// burn 0.22 marks its LibTorch backend deprecated; it is this project's backend.
#![allow(deprecated)]

use std::fmt;
use std::str::FromStr;

use burn::backend::LibTorch;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use super::cuda;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
    Fp16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Fp16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// The LibTorch kind the images and activations are computed in.
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
        }
    }

    /// fp32 on the CPU. On CUDA bf16 where the GPU has bf16 tensor cores (compute capability
    /// 8.0 and up: A100, H100, L4, RTX 30xx and later), which run it at twice TF32's rate and
    /// need no loss scaling (fp16 would, with a host read of an overflow flag every step);
    /// fp32 (with TF32) on older GPUs.
    pub fn default_for(device: Device) -> Self {
        if device.is_cuda() && cuda::supports_bf16() { Precision::Bf16 } else { Precision::Fp32 }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|precision| precision.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| format!("unknown precision '{text}': use fp32, bf16 or fp16"))
    }
}

/// PyTorch's dynamic loss scaling (`torch.amp.GradScaler`, with its defaults): the loss is
/// multiplied by the scale before the backward pass, the gradients divided by it after; a
/// step whose gradients hold an inf or a NaN is skipped and the scale halved, and after 2,000
/// steps in a row without one the scale doubles.
#[derive(Debug, Clone, PartialEq)]
pub struct GradScaler {
    scale: f64,
    /// Steps since the last overflow or growth.
    good_steps: u32,
}

const INITIAL_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: u32 = 2000;

impl GradScaler {
    pub fn new() -> Self {
        Self { scale: INITIAL_SCALE, good_steps: 0 }
    }

    /// What to multiply the loss by before the backward pass.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Divides the gradients of `module`'s parameters in `grads` by the scale, in place, and
    /// updates the scale. `false` when one of them overflowed: skip this step. Reads one flag
    /// from the device, as PyTorch's GradScaler does every step.
    pub fn unscale<M: Module>(&mut self, module: &M, grads: &GradientsParams) -> bool {
        let finite = unscale_tensors(&gradient_tensors(module, grads), self.scale);
        if finite {
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= GROWTH_FACTOR;
                self.good_steps = 0;
            }
        } else {
            self.scale *= BACKOFF_FACTOR;
            self.good_steps = 0;
        }
        finite
    }
}

impl Default for GradScaler {
    fn default() -> Self {
        Self::new()
    }
}

/// Divides each of `tensors` by `scale` in place; whether they were all finite.
fn unscale_tensors(tensors: &[tch::Tensor], scale: f64) -> bool {
    let Some(first) = tensors.first() else {
        return true;
    };
    let options = (Kind::Float, first.device());
    let found_inf = tch::Tensor::zeros([1], options);
    let inv_scale = tch::Tensor::full([1], 1.0 / scale, options);
    crate::model::amp_unscale(tensors, &found_inf, &inv_scale);
    found_inf.double_value(&[0]) == 0.0
}

/// The LibTorch tensors of the gradients `grads` holds for a module's parameters (sharing
/// their storage, so writing them writes the gradients).
/// The LibTorch tensors of `module`'s gradients in `grads`, in the module's order (the same on
/// every rank): handles to the same storage, for kernels that update them in place.
pub(super) fn gradient_tensors<M: Module>(module: &M, grads: &GradientsParams) -> Vec<tch::Tensor> {
    let mut collector = GradientCollector { grads, tensors: Vec::new() };
    module.visit(&mut collector);
    collector.tensors
}

struct GradientCollector<'a> {
    grads: &'a GradientsParams,
    tensors: Vec<tch::Tensor>,
}

impl ModuleVisitor for GradientCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let primitive = grad.try_into_primitive::<LibTorch>();
            self.tensors.push(primitive.expect("gradients are LibTorch tensors").tensor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_parse_and_display() {
        for precision in Precision::ALL {
            assert_eq!(precision.to_string().parse(), Ok(precision));
        }
        assert_eq!(" BF16".parse(), Ok(Precision::Bf16));
        assert!("fp8".parse::<Precision>().unwrap_err().contains("fp8"));
        assert_eq!(Precision::default_for(Device::Cpu), Precision::Fp32);
    }

    #[test]
    fn unscaling_divides_in_place_and_finds_overflow() {
        let grads = [tch::Tensor::from_slice(&[2.0f32, -4.0]), tch::Tensor::from_slice(&[8.0f32])];
        assert!(unscale_tensors(&grads, 2.0));
        assert_eq!(Vec::<f32>::try_from(&grads[0]).unwrap(), [1.0, -2.0]);
        assert_eq!(Vec::<f32>::try_from(&grads[1]).unwrap(), [4.0]);
        for bad in [f32::INFINITY, f32::NAN] {
            assert!(!unscale_tensors(&[tch::Tensor::from_slice(&[1.0f32]), tch::Tensor::from_slice(&[bad])], 2.0));
        }
        assert!(unscale_tensors(&[], 2.0));
    }

    #[test]
    fn the_scale_backs_off_on_overflow_and_grows_after_a_quiet_interval() {
        let grads = GradientsParams::new();
        let module = burn::nn::LinearConfig::new(2, 2).init(&burn::tensor::Device::libtorch());
        let mut scaler = GradScaler::new();
        // No gradient at all: nothing overflowed.
        assert!(scaler.unscale(&module, &grads));
        scaler.good_steps = GROWTH_INTERVAL - 1;
        assert!(scaler.unscale(&module, &grads));
        assert_eq!((scaler.scale(), scaler.good_steps), (INITIAL_SCALE * 2.0, 0));

        let mut grads = GradientsParams::new();
        let weight = module.weight.val();
        grads.register(module.weight.id, Tensor::<2>::full(weight.dims(), f32::INFINITY, &weight.device()));
        assert!(!scaler.unscale(&module, &grads));
        assert_eq!(scaler.scale(), INITIAL_SCALE);
    }
}
