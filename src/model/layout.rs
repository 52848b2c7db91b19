//! Which memory layout a training convolution's activations take.
//!
//! oneDNN computes in a channels-innermost layout. Handed PyTorch's default NCHW tensors it
//! reorders the input, output and weight of every convolution, forward and backward; handed
//! channels-last ones (NHWC strides, same logical shape) its kernels read them as they are,
//! and BatchNorm, ReLU, max-pooling and the residual additions keep that layout. On a 2-core
//! AMD EPYC (AVX-512, avx512_bf16) ResNet34's training step went from 127 to 140 img/s
//! (median of 20 repeats each, alternating). On CUDA, cuDNN's tensor-core kernels for 16-bit
//! floats are channels-last too; its fp32 kernels are left as PyTorch runs them.

// burn 0.22 marks its LibTorch backend deprecated in favour of CubeCL; LibTorch is this
// project's chosen backend.
#![allow(deprecated)]

use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;
use burn::module::{Module, ModuleMapper, Param};
use tch::{Device, Kind, Tensor};

/// Whether a convolution on `device` computing in `kind` takes channels-last activations.
pub fn prefers_channels_last(device: Device, kind: Kind) -> bool {
    match device {
        Device::Cpu => true,
        Device::Cuda(_) => matches!(kind, Kind::BFloat16 | Kind::Half),
        _ => false,
    }
}

/// `tensor` (`[n, c, h, w]`) with channels-last strides: itself when it has them already.
pub fn channels_last(tensor: &Tensor) -> Tensor {
    // Permuted to NHWC, made contiguous (a no-op when it is already channels-last) and viewed
    // back as NCHW: what `contiguous(memory_format=torch.channels_last)` does; tch binds no
    // memory formats.
    tensor.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// `model` with its 4-D weights (its convolutions') laid out as its training convolutions in
/// `kind` take them on their device. A fresh model's weights are drawn contiguous and a
/// checkpoint's load so; training steps leave each weight in its gradient's layout. Laying
/// both out alike keeps a model computing the same whether it was trained in this process or
/// loaded from its checkpoint (a convolution's sums run in another order in another layout).
/// On CUDA the layout follows the precision, so a checkpoint resumed in another one computes
/// the same up to rounding.
pub fn for_training<M: Module>(model: M, kind: Kind) -> M {
    model.map(&mut ConvolutionWeights { kind })
}

struct ConvolutionWeights {
    kind: Kind,
}

impl ModuleMapper for ConvolutionWeights {
    fn map_float<const D: usize>(&mut self, param: Param<burn::tensor::Tensor<D>>) -> Param<burn::tensor::Tensor<D>> {
        if D != 4 {
            return param;
        }
        param.map(|weight| {
            let (autodiff, require_grad) = (weight.is_autodiff(), weight.is_require_grad());
            let Ok(primitive) = weight.clone().inner().try_into_primitive::<LibTorch>() else {
                return weight;
            };
            let tensor = &primitive.tensor;
            if !prefers_channels_last(tensor.device(), self.kind) || is_channels_last(tensor) {
                return weight;
            }
            let relaid = burn::tensor::Tensor::from_primitive::<LibTorch>(TchTensor::new(channels_last(tensor)));
            if autodiff { relaid.autodiff().set_require_grad(require_grad) } else { relaid }
        })
    }
}

/// Whether `tensor` is a 4-D tensor laid out channels-last.
pub fn is_channels_last(tensor: &Tensor) -> bool {
    tensor.dim() == 4 && tensor.permute([0, 2, 3, 1]).is_contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_last_keeps_the_values_and_moves_the_channels_innermost() {
        let nchw = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]);
        assert!(!is_channels_last(&nchw));
        assert!(!is_channels_last(&Tensor::zeros([3, 4], (Kind::Float, Device::Cpu))), "only 4-D tensors are");
        let nhwc = channels_last(&nchw);
        assert!(is_channels_last(&nhwc));
        assert_eq!(nhwc.size(), [2, 3, 4, 5]);
        assert_eq!(nhwc.stride(), [60, 1, 15, 3]);
        assert!(nhwc.equal(&nchw));
        // Already channels-last: the same storage, not a copy.
        assert_eq!(channels_last(&nhwc).data_ptr(), nhwc.data_ptr());
    }

    #[test]
    fn only_cpus_and_16_bit_cuda_convolutions_take_channels_last() {
        assert!(prefers_channels_last(Device::Cpu, Kind::Float));
        assert!(prefers_channels_last(Device::Cpu, Kind::BFloat16));
        assert!(prefers_channels_last(Device::Cuda(0), Kind::Half));
        assert!(prefers_channels_last(Device::Cuda(1), Kind::BFloat16));
        assert!(!prefers_channels_last(Device::Cuda(0), Kind::Float));
    }
}
