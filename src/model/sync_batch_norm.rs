//! BatchNorm over the whole group's batch in data-parallel training (`--sync-bn`), as PyTorch's
//! SyncBatchNorm computes it: the forward pass all-reduces each channel's sum, then its sum of
//! squared deviations; the backward pass all-reduces the sums of the gradient and of the
//! gradient times the deviation. The weight and bias gradients stay per rank (the gradient
//! all-reduce averages them with the others).

#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::LibTorch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor};
use tch::Kind;

use super::ops::{Training, register, update_running_statistics};
use crate::dist::{ProcessGroup, Reduce};

/// `bn.forward(input)` in training, normalised with the group's statistics.
pub(super) fn forward<const D: usize>(
    bn: &BatchNorm,
    input: FloatTensor<Training>,
    gamma: FloatTensor<Training>,
    beta: FloatTensor<Training>,
    group: Arc<ProcessGroup>,
    device: &Device,
) -> Tensor<D> {
    let x = &input.primitive().tensor;
    let dims = reduced_dims(x.dim());
    let channels = x.size()[1];
    let shape = broadcast_shape(x.dim(), channels);

    // Every rank's batch has the same size (a fit shards its epochs evenly and drops partial
    // batches), so the group's count is known here and nothing is read back from the device.
    let count = (x.numel() as i64 / channels.max(1)) as f64 * group.size() as f64;
    // The sum, then the squared deviations from the group's mean: two passes, as exact as the
    // single-process batch norm.
    let sums = x.sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    group.all_reduce_or_defer(std::slice::from_ref(&sums), Reduce::Sum, "synchronised BatchNorm");
    let mean = sums / count;
    let centred = x.to_kind(Kind::Float) - mean.view(shape.as_slice());
    let squares = centred.square().sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    group.all_reduce_or_defer(std::slice::from_ref(&squares), Reduce::Sum, "synchronised BatchNorm");
    let invstd = (squares / count + bn.epsilon).rsqrt();
    let gamma_t = &gamma.primitive().tensor;
    let scale = (&invstd * gamma_t.to_kind(Kind::Float)).view(shape.as_slice());
    let output =
        (centred * scale + beta.primitive().tensor.to_kind(Kind::Float).view(shape.as_slice())).to_kind(x.kind());
    update_running_statistics(bn, &mean, &invstd, count, device);

    let output = TchTensor::new(output);
    let output = match (SyncBatchNormBackward { group })
        .prepare::<NoCheckpointing>([input.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = SyncBatchNormState {
                input: input.into_primitive(),
                gamma: gamma.into_primitive(),
                mean: TchTensor::new(mean),
                invstd: TchTensor::new(invstd),
                count,
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<Training>(output)
}

/// Every axis but the channels'.
fn reduced_dims(rank: usize) -> Vec<i64> {
    (0..rank as i64).filter(|axis| *axis != 1).collect()
}

/// `[1, C, 1, ...]`: a per-channel vector broadcast over the input.
fn broadcast_shape(rank: usize, channels: i64) -> Vec<i64> {
    (0..rank).map(|axis| if axis == 1 { channels } else { 1 }).collect()
}

#[derive(Debug, Clone)]
struct SyncBatchNormState {
    input: TchTensor,
    gamma: TchTensor,
    /// The group's mean and inverse standard deviation, per channel (f32).
    mean: TchTensor,
    invstd: TchTensor,
    /// Values per channel over the whole group.
    count: f64,
}

#[derive(Debug)]
struct SyncBatchNormBackward {
    group: Arc<ProcessGroup>,
}

impl Backward<LibTorch, 3> for SyncBatchNormBackward {
    type State = SyncBatchNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let state = &ops.state;
        let (dy, x) = (&grad.tensor, &state.input.tensor);
        let dims = reduced_dims(x.dim());
        let channels = x.size()[1];
        let shape = broadcast_shape(x.dim(), channels);
        let (mean, invstd) = (state.mean.tensor.view(shape.as_slice()), state.invstd.tensor.view(shape.as_slice()));
        let dy32 = dy.to_kind(Kind::Float);
        let centred = x.to_kind(Kind::Float) - &mean;
        let sum_dy = dy32.sum_dim_intlist(dims.as_slice(), false, Kind::Float);
        let sum_dy_centred = (&dy32 * &centred).sum_dim_intlist(dims.as_slice(), false, Kind::Float);
        let [want_input, want_gamma, want_beta] = ops.parents.each_ref().map(Option::is_some);
        let grad_gamma =
            want_gamma.then(|| (&sum_dy_centred * &state.invstd.tensor).to_kind(state.gamma.tensor.kind()));
        let grad_beta = want_beta.then(|| sum_dy.to_kind(state.gamma.tensor.kind()));
        let grad_input = want_input.then(|| {
            let totals = tch::Tensor::cat(&[&sum_dy, &sum_dy_centred], 0);
            self.group.all_reduce_or_defer(
                std::slice::from_ref(&totals),
                Reduce::Sum,
                "synchronised BatchNorm backward",
            );
            let mean_dy = (totals.narrow(0, 0, channels) / state.count).view(shape.as_slice());
            let mean_dy_centred = (totals.narrow(0, channels, channels) / state.count).view(shape.as_slice());
            let gamma = state.gamma.tensor.to_kind(Kind::Float).view(shape.as_slice());
            ((dy32 - mean_dy - &centred * invstd.square() * mean_dy_centred) * &invstd * gamma).to_kind(x.kind())
        });
        register(grads, ops.parents, [grad_input, grad_gamma, grad_beta], |parent| parent.id);
    }
}
