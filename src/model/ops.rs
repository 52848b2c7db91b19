//! The ResNet's convolution, batch normalisation and ReLU.
//!
//! Training on LibTorch, each records its own autodiff step whose backward runs the kernel
//! PyTorch's autograd runs: `convolution_backward` (oneDNN's backward-data and backward-weights),
//! `native_batch_norm_backward`, `threshold_backward`. burn 0.22's generic backward computes a
//! convolution's weight gradient as a forward convolution over transposed copies, and batch
//! norm from a dozen element-wise passes and copies; on ResNet34 that was most of the gap to
//! PyTorch (issue 3). Convolutions of the CPU's smallest feature maps go further than PyTorch
//! where their matrix products are fast (see [`conv_taps`]), and the CPU's convolutions take
//! channels-last activations (see [`layout`]). Anywhere else (inference, a non-LibTorch device)
//! these are burn's layers.

// burn 0.22 marks its LibTorch backend deprecated in favour of CubeCL; LibTorch is this
// project's chosen backend, and these layers exist for it.
#![allow(deprecated)]

use burn::backend::LibTorch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::libtorch::TchTensor;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::kernels::{self, Conv2dGeometry};
use super::{conv_taps, layout, sync_batch_norm};
use crate::dist::SyncBatchNorm;

/// The autodiff backend a training device dispatches to (burn's default: no checkpointing).
pub(super) type Training = Autodiff<LibTorch, NoCheckpointing>;

/// `conv.forward(input)`.
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    conv2d_by(conv, input, ConvMethod::choose)
}

/// [`conv2d`] by the method `choose` picks for the device, kind and output size (a test may
/// force one).
fn conv2d_by(
    conv: &Conv2d,
    input: Tensor<4>,
    choose: impl FnOnce(tch::Device, tch::Kind, [i64; 2], &Conv2dGeometry) -> ConvMethod,
) -> Tensor<4> {
    let Some(geometry) = symmetric_geometry(conv) else {
        return conv.forward(input);
    };
    let input = match on_training_libtorch(input) {
        Ok(input) => input,
        Err(input) => return conv.forward(input),
    };
    let weight = param_on_training_libtorch(conv.weight.val());
    let (input_size, kernel_size) = (input.primitive().tensor.size(), weight.primitive().tensor.size());
    let (device, kind) = (input.primitive().tensor.device(), input.primitive().tensor.kind());
    let method = choose(device, kind, output_size(&input_size, &kernel_size, &geometry), &geometry);
    let weight_kind = weight.primitive().tensor.kind();
    let output = match (Conv2dBackward { geometry, method, weight_kind })
        .prepare::<NoCheckpointing>([input.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let operands = method.operands(input.into_primitive(), weight.into_primitive());
            let output = method.forward(&operands, &geometry);
            prep.finish(operands, output)
        }
        OpsKind::UnTracked(prep) => {
            let operands = method.operands(input.into_primitive(), weight.into_primitive());
            prep.finish(method.forward(&operands, &geometry))
        }
    };
    Tensor::from_primitive::<Training>(output)
}

/// The output's height and width for an input and kernel of these sizes (`[n, c, h, w]`).
fn output_size(input: &[i64], kernel: &[i64], geometry: &Conv2dGeometry) -> [i64; 2] {
    [0, 1].map(|axis| {
        (input[2 + axis] + 2 * geometry.padding[axis] - geometry.dilation[axis] * (kernel[2 + axis] - 1) - 1)
            / geometry.stride[axis]
            + 1
    })
}

/// `bn.forward(input)`. In training the running statistics are updated as PyTorch does (with
/// the batch's unbiased variance); under [`SyncBatchNorm`] the batch is the whole group's.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, input: Tensor<D>) -> Tensor<D> {
    let device = input.device();
    if !(device.is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(input);
    }
    let input = match on_training_libtorch(input) {
        Ok(input) => input,
        Err(input) => return bn.forward(input),
    };
    let gamma = param_on_training_libtorch(bn.gamma.val());
    let beta = param_on_training_libtorch(bn.beta.val());
    if let Some(group) = SyncBatchNorm::group() {
        return sync_batch_norm::forward(bn, input, gamma, beta, group, &device);
    }
    let (output, mean, invstd) = input.primitive().tensor.native_batch_norm(
        Some(&gamma.primitive().tensor),
        Some(&beta.primitive().tensor),
        None::<&tch::Tensor>,
        None::<&tch::Tensor>,
        true,
        bn.momentum,
        bn.epsilon,
    );
    let samples = (input.primitive().tensor.numel() / mean.numel().max(1)) as f64;
    update_running_statistics(bn, &mean, &invstd, samples, &device);
    let output = TchTensor::new(output);
    let output = match BatchNormBackward(bn.epsilon)
        .prepare::<NoCheckpointing>([input.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = BatchNormState {
                input: input.into_primitive(),
                gamma: gamma.into_primitive(),
                mean: TchTensor::new(mean),
                invstd: TchTensor::new(invstd),
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<Training>(output)
}

/// `max(input, 0)`, in place when nothing else holds the input (its backward needs only the
/// output, as PyTorch's does).
pub fn relu<const D: usize>(input: Tensor<D>) -> Tensor<D> {
    let input = match on_training_libtorch(input) {
        Ok(input) => input,
        Err(input) => return burn::tensor::activation::relu(input),
    };
    let output = match ReluBackward.prepare::<NoCheckpointing>([input.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let output = LibTorch::relu(input.into_primitive());
            prep.finish(output.clone(), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(LibTorch::relu(input.into_primitive())),
    };
    Tensor::from_primitive::<Training>(output)
}

/// The convolution's geometry, when it has no bias and the same padding on both sides of each
/// axis (every convolution of a ResNet); other convolutions keep burn's path.
fn symmetric_geometry(conv: &Conv2d) -> Option<Conv2dGeometry> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return None;
    };
    (conv.bias.is_none() && top == bottom && left == right).then(|| Conv2dGeometry {
        stride: conv.stride.map(to_i64),
        padding: [top, left].map(to_i64),
        dilation: conv.dilation.map(to_i64),
        groups: to_i64(conv.groups),
    })
}

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).expect("layer geometry fits in i64")
}

/// The tensor's primitive when it lives on a LibTorch training device, else the tensor back.
fn on_training_libtorch<const D: usize>(tensor: Tensor<D>) -> Result<FloatTensor<Training>, Tensor<D>> {
    tensor.clone().try_into_primitive::<Training>().map_err(|_| tensor)
}

fn param_on_training_libtorch<const D: usize>(param: Tensor<D>) -> FloatTensor<Training> {
    on_training_libtorch(param).unwrap_or_else(|_| panic!("a layer's parameters live on its input's device"))
}

/// `running = (1 - momentum) * running + momentum * batch`, for the mean and the unbiased
/// variance over the batch's `samples` values per channel. Batch norm's forward pass gives the
/// biased variance as `1 / sqrt(var + eps)`.
pub(super) fn update_running_statistics(
    bn: &BatchNorm,
    mean: &tch::Tensor,
    invstd: &tch::Tensor,
    samples: f64,
    device: &Device,
) {
    let unbiased = (invstd.pow_tensor_scalar(-2) - bn.epsilon) * (samples / (samples - 1.0).max(1.0));
    let momentum = bn.momentum;
    // The mean is copied: burn scales a tensor it holds alone in place, and the backward pass
    // needs this one as it is.
    for (running, batch) in [(&bn.running_mean, mean.copy()), (&bn.running_var, unbiased)] {
        let batch = Tensor::<1>::from_primitive::<Training>(FloatTensor::<Training>::new(TchTensor::new(batch)));
        let updated = running.value_sync().to_device(device).mul_scalar(1.0 - momentum).add(batch.mul_scalar(momentum));
        running.update(updated.detach());
    }
}

/// Hands each computed gradient to the parent it belongs to (burn's node type is private, hence
/// the accessor).
pub(super) fn register<P, const N: usize>(
    grads: &mut Gradients,
    parents: [Option<P>; N],
    computed: [Option<tch::Tensor>; N],
    id: impl Fn(&P) -> NodeId,
) {
    for (parent, grad) in parents.into_iter().zip(computed) {
        if let (Some(parent), Some(grad)) = (parent, grad) {
            grads.register::<LibTorch>(id(&parent), TchTensor::new(grad));
        }
    }
}

/// How a training convolution is computed, forward and backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvMethod {
    /// LibTorch's convolution (oneDNN on the CPU, cuDNN on CUDA) and its backward kernels.
    LibTorch,
    /// One matrix product per kernel tap ([`conv_taps`]): the CPU's tiny feature maps.
    Taps,
}

impl ConvMethod {
    /// The method for a convolution on `device` in `kind` with this output size: the taps only
    /// for the CPU's smallest feature maps, where they pay on this CPU. A function of the
    /// device, kind and shapes, so the choice can be tested for a CUDA device without one.
    fn choose(device: tch::Device, kind: tch::Kind, [height, width]: [i64; 2], geometry: &Conv2dGeometry) -> Self {
        if device == tch::Device::Cpu
            && conv_taps::pays_on(conv_taps::Cpu::this(), kind)
            && conv_taps::suits(height, width, geometry)
        {
            Self::Taps
        } else {
            Self::LibTorch
        }
    }

    /// The input and weight in the layouts the method computes with, the weight in the input's
    /// kind (a lower precision's, under mixed precision); what its backward keeps.
    fn operands(self, input: TchTensor, weight: TchTensor) -> (TchTensor, TchTensor) {
        let weight = weight.tensor.to_kind(input.tensor.kind());
        match self {
            // An input already channels-last stays the handle it is, so burn still counts who
            // shares it (a residual block's identity does) before writing into it in place.
            Self::LibTorch
                if layout::prefers_channels_last(input.tensor.device(), input.tensor.kind())
                    && !layout::is_channels_last(&input.tensor) =>
            {
                (TchTensor::new(layout::channels_last(&input.tensor)), TchTensor::new(weight))
            }
            Self::LibTorch => (input, TchTensor::new(weight)),
            Self::Taps => {
                let (input, weight) = conv_taps::operands(&input.tensor, &weight);
                (TchTensor::new(input), TchTensor::new(weight))
            }
        }
    }

    fn forward(self, (input, weight): &(TchTensor, TchTensor), geometry: &Conv2dGeometry) -> TchTensor {
        let (input, weight) = (&input.tensor, &weight.tensor);
        TchTensor::new(match self {
            Self::LibTorch => input.conv2d(
                weight,
                None::<tch::Tensor>,
                geometry.stride,
                geometry.padding,
                geometry.dilation,
                geometry.groups,
            ),
            Self::Taps => conv_taps::forward(input, weight, geometry),
        })
    }
}

#[derive(Debug)]
struct Conv2dBackward {
    geometry: Conv2dGeometry,
    method: ConvMethod,
    /// The parameter's kind (fp32), which its gradient is returned in.
    weight_kind: tch::Kind,
}

impl Backward<LibTorch, 2> for Conv2dBackward {
    /// The convolution's input and weight, as [`ConvMethod::operands`] laid them out.
    type State = (TchTensor, TchTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let (input, weight) = &ops.state;
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let Self { geometry, method, weight_kind } = self;
        let [grad_input, grad_weight] = match method {
            ConvMethod::LibTorch => {
                kernels::conv2d_backward(&grad.tensor, &input.tensor, &weight.tensor, geometry, wanted)
            }
            ConvMethod::Taps => conv_taps::backward(&grad.tensor, &input.tensor, &weight.tensor, &geometry, wanted),
        };
        let grad_weight = grad_weight.map(|grad| grad.to_kind(weight_kind));
        register(grads, ops.parents, [grad_input, grad_weight], |parent| parent.id);
    }
}

#[derive(Debug, Clone)]
struct BatchNormState {
    input: TchTensor,
    gamma: TchTensor,
    /// The batch mean and inverse standard deviation the forward pass normalised with.
    mean: TchTensor,
    invstd: TchTensor,
}

/// Carries the layer's epsilon.
#[derive(Debug)]
struct BatchNormBackward(f64);

impl Backward<LibTorch, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let state = &ops.state;
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let computed = kernels::batch_norm_backward(
            &grad.tensor,
            &state.input.tensor,
            &state.gamma.tensor,
            &state.mean.tensor,
            &state.invstd.tensor,
            self.0,
            wanted,
        );
        register(grads, ops.parents, computed, |parent| parent.id);
    }
}

#[derive(Debug)]
struct ReluBackward;

impl Backward<LibTorch, 1> for ReluBackward {
    /// The ReLU's output: the gradient passes where it is positive.
    type State = TchTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let [parent] = ops.parents;
        if let Some(parent) = parent {
            let grad = ops.state.tensor.threshold_backward(&grad.tensor, 0.0);
            grads.register::<LibTorch>(parent.id, TchTensor::new(grad));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each layer against burn's own on the same inputs: outputs, every gradient, and the running
    //! statistics.
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{DType, Distribution, FloatDType, Tensor};

    use super::*;

    fn training_device() -> Device {
        Device::libtorch().autodiff()
    }

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.5, 2.0), device)
    }

    fn assert_close<const D: usize>(ours: Tensor<D>, burns: Tensor<D>, what: &str) {
        assert_eq!(ours.dims(), burns.dims(), "{what}: shape");
        let difference = (ours - burns.clone()).abs().max().into_scalar::<f32>();
        let scale = burns.abs().max().into_scalar::<f32>().max(1.0);
        assert!(difference <= 1e-4 * scale, "{what}: differs by {difference} (scale {scale})");
    }

    /// The output, and the gradients of `sum(output * weights)` with respect to the input and to
    /// the given parameters, for ours and burn's forward functions.
    fn compare<const D: usize, const O: usize>(
        input: Tensor<D>,
        params: &[(&str, Tensor<1>)],
        weight_param: Option<Tensor<4>>,
        ours: impl Fn(Tensor<D>) -> Tensor<O>,
        burns: impl Fn(Tensor<D>) -> Tensor<O>,
    ) {
        let input = input.require_grad();
        let (out_ours, out_burn) = (ours(input.clone()), burns(input.clone()));
        assert_close(out_ours.clone(), out_burn.clone(), "output");
        let weights = random(out_burn.dims(), &out_burn.device()).detach();
        let grads_ours = (out_ours * weights.clone()).sum().backward();
        let grads_burn = (out_burn * weights).sum().backward();
        assert_close(input.grad(&grads_ours).unwrap(), input.grad(&grads_burn).unwrap(), "input gradient");
        for (name, param) in params {
            assert_close(param.grad(&grads_ours).unwrap(), param.grad(&grads_burn).unwrap(), name);
        }
        if let Some(weight) = weight_param {
            assert_close(weight.grad(&grads_ours).unwrap(), weight.grad(&grads_burn).unwrap(), "weight gradient");
        }
    }

    #[test]
    fn convolutions_match_burns_with_their_gradients() {
        let device = training_device();
        // 11x11 inputs take LibTorch's kernels, 2x2 and 4x4 ones (2x2 outputs) the tap method.
        for (kernel, stride, pad, side) in
            [(3, 1, 1, 11), (3, 2, 1, 11), (7, 2, 3, 11), (1, 2, 0, 11), (3, 1, 1, 2), (3, 2, 1, 4)]
        {
            let method = if side <= 4 { ConvMethod::Taps } else { ConvMethod::LibTorch };
            let conv = Conv2dConfig::new([3, 5], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(&device);
            assert!(symmetric_geometry(&conv).is_some());
            let weight = conv.weight.val();
            let ours = |x| conv2d_by(&conv, x, |_, _, _, _| method);
            compare(random([2, 3, side, side], &device), &[], Some(weight), ours, |x| conv.forward(x));
        }
    }

    /// Our batch norm against burn's on an input of `shape` (channels second).
    fn batch_norm_matches_burns_on<const D: usize>(shape: [usize; D]) {
        let device = training_device();
        let bn = BatchNormConfig::new(shape[1]).init(&device);
        let [gamma, beta] = [bn.gamma.val(), bn.beta.val()];
        compare(
            random(shape, &device),
            &[("gamma gradient", gamma), ("beta gradient", beta)],
            None,
            |x| batch_norm(&bn, x),
            |x| bn.forward(x),
        );
    }

    #[test]
    fn batch_norm_matches_burns_with_its_gradients() {
        batch_norm_matches_burns_on([3, 4, 5, 5]);
    }

    #[test]
    fn batch_norm_keeps_pytorchs_running_statistics() {
        // Two layers: a clone would share its running statistics with the original.
        let device = training_device();
        let (ours, burns) = (BatchNormConfig::new(4).init(&device), BatchNormConfig::new(4).init(&device));
        let input = random([3, 4, 5, 5], &device);
        batch_norm(&ours, input.clone());
        burns.forward(input);

        // burn feeds the biased batch variance to its running variance, PyTorch the unbiased.
        let samples = 3.0 * 5.0 * 5.0;
        let kept = 1.0 - ours.momentum;
        let expected_variance = (burns.running_var.value_sync() - kept) * (samples / (samples - 1.0)) + kept;
        assert_close(ours.running_mean.value_sync(), burns.running_mean.value_sync(), "running mean");
        assert_close(ours.running_var.value_sync(), expected_variance, "running variance");
        assert!(ours.running_mean.value_sync().abs().sum().into_scalar::<f32>() > 0.01, "the mean moved");
    }

    #[test]
    fn batch_norm_on_features_matches_burns() {
        batch_norm_matches_burns_on([8, 6]);
    }

    #[test]
    fn relu_matches_burns() {
        let device = training_device();
        compare(random([2, 3, 4, 4], &device), &[], None, relu, burn::tensor::activation::relu);
    }

    #[test]
    fn frozen_parameters_get_no_gradient_and_the_input_still_does() {
        let device = training_device();
        let conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&device)
            .no_grad();
        let input = random([1, 2, 6, 6], &device).require_grad();
        let grads = conv2d(&conv, input.clone()).sum().backward();
        assert!(conv.weight.val().grad(&grads).is_none());
        assert_eq!(input.grad(&grads).unwrap().dims(), [1, 2, 6, 6]);
    }

    #[test]
    fn the_tap_convolutions_are_never_chosen_off_the_cpu() {
        let unstrided = Conv2dGeometry { stride: [1; 2], padding: [1; 2], dilation: [1; 2], groups: 1 };
        let strided = Conv2dGeometry { stride: [2; 2], ..unstrided };
        let mut cpu_taps = 0;
        for geometry in [unstrided, strided] {
            for (height, width) in (1..=16).flat_map(|h| (1..=16).map(move |w| (h, w))) {
                for kind in [tch::Kind::Float, tch::Kind::BFloat16, tch::Kind::Half] {
                    let on_cpu = ConvMethod::choose(tch::Device::Cpu, kind, [height, width], &geometry);
                    // bf16 products pay on every CPU.
                    cpu_taps += usize::from(on_cpu == ConvMethod::Taps && kind == tch::Kind::BFloat16);
                    for device in [tch::Device::Cuda(0), tch::Device::Cuda(3), tch::Device::Mps] {
                        assert_eq!(ConvMethod::choose(device, kind, [height, width], &geometry), ConvMethod::LibTorch);
                    }
                }
            }
        }
        assert!(cpu_taps > 0, "the CPU does take the taps for small maps");
    }

    /// A conv, BatchNorm and ReLU block in `kind` against the same in f32: the output close,
    /// activations and their gradients in `kind`, every parameter's gradient f32.
    fn block_in_lower_precision(kind: FloatDType, tolerance: f32) {
        let device = training_device();
        // 9x9 takes LibTorch's kernels, 2x2 the taps.
        for side in [9, 2] {
            let conv = Conv2dConfig::new([3, 4], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(&device);
            let bn = BatchNormConfig::new(4).init(&device);
            let input = random([6, 3, side, side], &device);
            let block = |x: Tensor<4>| relu(batch_norm(&bn, conv2d(&conv, x)));
            let (weight, gamma) = (conv.weight.val(), bn.gamma.val());
            let low_input = input.clone().cast(kind).require_grad();
            let low = block(low_input.clone());
            assert_eq!(low.dtype(), low_input.dtype(), "activations stay in the lower precision");
            let full = block(input.clone().require_grad());
            let low_f32 = low.clone().cast(FloatDType::F32);
            let difference = (low_f32.clone() - full.clone()).abs().max().into_scalar::<f32>();
            assert!(difference < tolerance, "{kind:?} {side}x{side}: output differs by {difference}");
            let grads = low_f32.sum().backward();
            let (weight_grad, gamma_grad) = (weight.grad(&grads).unwrap(), gamma.grad(&grads).unwrap());
            assert_eq!((weight_grad.dtype(), gamma_grad.dtype()), (DType::F32, DType::F32));
            assert_eq!(low_input.grad(&grads).unwrap().dtype(), low_input.dtype());
            // The convolution's own weight gradient against f32's. (Through BatchNorm in a
            // batch this small the gradient nearly cancels: PyTorch's CPU autocast is 30-60%
            // off there, so only the block's output and dtypes are compared above.)
            let low_conv = conv2d(&conv, input.clone().cast(kind).require_grad()).cast(FloatDType::F32);
            let full_conv = conv2d(&conv, input.clone().require_grad());
            let (low_grads, full_grads) = (low_conv.sum().backward(), full_conv.sum().backward());
            let expected = weight.grad(&full_grads).unwrap();
            let scale = expected.clone().abs().max().into_scalar::<f32>();
            let difference = (weight.grad(&low_grads).unwrap() - expected).abs().max().into_scalar::<f32>();
            assert!(
                difference < tolerance * scale.max(1.0),
                "{kind:?} {side}x{side}: weight gradient differs by {difference} (largest {scale})"
            );
        }
    }

    #[test]
    fn bf16_activations_with_f32_parameters() {
        // bf16 keeps 8 bits of mantissa: about 2 significant digits.
        block_in_lower_precision(FloatDType::BF16, 0.1);
    }

    #[test]
    fn fp16_activations_with_f32_parameters() {
        block_in_lower_precision(FloatDType::F16, 0.02);
    }

    #[test]
    fn inference_uses_burns_layers() {
        let device = Device::libtorch();
        let conv = Conv2dConfig::new([2, 3], [3, 3]).with_bias(true).init(&device);
        assert!(symmetric_geometry(&conv).is_none(), "a biased convolution keeps burn's path");
        let bn = BatchNormConfig::new(3).init(&device);
        let input = random([1, 2, 6, 6], &device);
        let ours = batch_norm(&bn, conv2d(&conv, input.clone()));
        assert_close(ours, bn.forward(conv.forward(input)), "inference output");
    }
}
