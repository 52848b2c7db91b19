//! fastai's Adam for `fit_one_cycle`: decoupled weight decay, and hyper-parameters that the
//! one-cycle policy moves every step (burn's AdamW keeps beta1 fixed).
//!
//! As in fastai, hyper-parameters live per layer group and the scheduler sets them before each
//! step: [`Hypers`] holds the current learning rate of each group and beta1, shared by the
//! [`CycledAdamW`] instances of one learner (one per layer group, with or without weight
//! decay). The learning rate burn hands to `step` is not used.

// burn 0.22 marks its LibTorch backend deprecated in favour of CubeCL; LibTorch is this
// project's chosen backend, and the step is written for it.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::backend::{LibTorch, libtorch::TchTensor};
use burn::optim::{AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::model::{AdamW, fused_adamw, layout};

/// The current step's learning rate per layer group and beta1.
#[derive(Debug)]
pub struct Hypers {
    lrs: Vec<AtomicU64>,
    beta1: AtomicU64,
}

impl Hypers {
    pub fn new(groups: usize) -> Arc<Self> {
        Arc::new(Self {
            lrs: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            beta1: AtomicU64::new(0.9f64.to_bits()),
        })
    }

    pub fn set(&self, lrs: &[f64], beta1: f64) {
        assert_eq!(lrs.len(), self.lrs.len(), "one learning rate per layer group");
        for (cell, lr) in self.lrs.iter().zip(lrs) {
            cell.store(lr.to_bits(), Ordering::Relaxed);
        }
        self.beta1.store(beta1.to_bits(), Ordering::Relaxed);
    }

    pub fn lr(&self, group: usize) -> f64 {
        f64::from_bits(self.lrs[group].load(Ordering::Relaxed))
    }

    fn beta1(&self) -> f64 {
        f64::from_bits(self.beta1.load(Ordering::Relaxed))
    }
}

/// Adam with decoupled weight decay for the parameters of one layer group.
#[derive(Debug, Clone)]
pub struct CycledAdamW {
    pub hypers: Arc<Hypers>,
    pub group: usize,
    pub weight_decay: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Optimizer for CycledAdamW {
    type State<const D: usize> = AdaptiveMomentumState<D>;

    fn step<const D: usize>(
        &self,
        _burn_lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let hypers = AdamW {
            lr: self.hypers.lr(self.group),
            beta1: self.hypers.beta1(),
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        };
        adamw_step(hypers, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}

/// One AdamW step on one tensor: PyTorch's fused kernel, one pass over the parameter, its
/// gradient and moments, where LibTorch's separate in-place kernels (`lerp_`, `addcdiv_`) took
/// eight and burn's tensor operations ~14 allocating ones (issue 3). At a learning rate of 0
/// (before any is set) the moments move and the parameter keeps its value.
fn adamw_step<const D: usize>(
    hypers: AdamW,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    state: Option<AdaptiveMomentumState<D>>,
) -> (Tensor<D>, Option<AdaptiveMomentumState<D>>) {
    let grad = dense(libtorch(grad).tensor);
    let param = writable(tensor, &grad);
    let (time, moment_1, moment_2) = match state {
        Some(state) => (state.time + 1, writable(state.moment_1, &grad), writable(state.moment_2, &grad)),
        None => (1, grad.zeros_like(), grad.zeros_like()),
    };
    fused_adamw(&param, &grad, [&moment_1, &moment_2], time, hypers);
    let state = AdaptiveMomentumState::new(time, burn_tensor(moment_1), burn_tensor(moment_2));
    (burn_tensor(param), Some(state))
}

fn libtorch<const D: usize>(tensor: Tensor<D>) -> TchTensor {
    tensor.try_into_primitive::<LibTorch>().unwrap_or_else(|error| {
        panic!("the optimizer steps plain LibTorch tensors (parameters, gradients, moments): {error:?}")
    })
}

/// `grad` itself when it is laid out densely as PyTorch lays out tensors (contiguous, or
/// channels-last as a convolution's weight gradient comes), else a contiguous copy: the fused
/// step reads its four tensors as flat arrays.
fn dense(grad: tch::Tensor) -> tch::Tensor {
    if grad.is_contiguous() || layout::is_channels_last(&grad) { grad } else { grad.contiguous() }
}

/// The tensor's LibTorch handle to write in place, laid out as `grad` is: copied into that
/// layout (and kind) when it differs (once: a convolution weight whose gradient comes
/// channels-last stays so, and the next forward pass takes it without a reorder), or when burn
/// shares its storage with another tensor (writing in place would change that one too).
fn writable<const D: usize>(tensor: Tensor<D>, grad: &tch::Tensor) -> tch::Tensor {
    let primitive = libtorch(tensor);
    if !same_layout(&primitive.tensor, grad) {
        let mut copy = grad.empty_like();
        copy.copy_(&primitive.tensor);
        copy
    } else if primitive.can_mut() {
        primitive.tensor
    } else {
        primitive.tensor.copy()
    }
}

/// Whether two tensors are of one kind and shape and keep their elements in the same order in
/// memory (the stride of a dimension of size 1 says nothing).
fn same_layout(a: &tch::Tensor, b: &tch::Tensor) -> bool {
    let size = a.size();
    a.kind() == b.kind()
        && size == b.size()
        && size.iter().zip(a.stride().iter().zip(b.stride())).all(|(&n, (x, y))| n <= 1 || *x == y)
}

fn burn_tensor<const D: usize>(tensor: tch::Tensor) -> Tensor<D> {
    Tensor::from_primitive::<LibTorch>(TchTensor::new(tensor))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    fn hypers(lr: f64, weight_decay: f64) -> AdamW {
        AdamW { lr, beta1: 0.9, beta2: 0.99, eps: 1e-5, weight_decay }
    }

    /// Adam's bias corrections `1 - beta^t` of the two moments after `time` steps.
    fn debias(hypers: &AdamW, time: usize) -> (f64, f64) {
        (1.0 - hypers.beta1.powi(time as i32), 1.0 - hypers.beta2.powi(time as i32))
    }

    /// Adam with decoupled weight decay written plainly with burn's tensor operations: what the
    /// fused LibTorch step must compute.
    fn reference_step<const D: usize>(
        hypers: &AdamW,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdaptiveMomentumState<D>>,
    ) -> (Tensor<D>, Option<AdaptiveMomentumState<D>>) {
        let (lr, beta1, beta2) = (hypers.lr, hypers.beta1, hypers.beta2);
        let state = match state {
            Some(mut s) => {
                s.time += 1;
                s.moment_1 = s.moment_1.mul_scalar(beta1).add(grad.clone().mul_scalar(1.0 - beta1));
                s.moment_2 = s.moment_2.mul_scalar(beta2).add(grad.square().mul_scalar(1.0 - beta2));
                s
            }
            None => AdaptiveMomentumState::new(
                1,
                grad.clone().mul_scalar(1.0 - beta1),
                grad.square().mul_scalar(1.0 - beta2),
            ),
        };
        let (debias1, debias2) = debias(hypers, state.time);
        let denominator = state.moment_2.clone().div_scalar(debias2).sqrt().add_scalar(hypers.eps);
        let update = state.moment_1.clone().div(denominator).mul_scalar(lr / debias1);
        let decayed =
            if hypers.weight_decay == 0.0 { tensor } else { tensor.mul_scalar(1.0 - lr * hypers.weight_decay) };
        (decayed.sub(update), Some(state))
    }

    fn random(device: &Device) -> Tensor<2> {
        Tensor::random([7, 5], Distribution::Normal(0.0, 1.0), device)
    }

    fn assert_close(ours: &Tensor<2>, expected: &Tensor<2>) {
        ours.to_data().assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    fn fused_steps_match_the_plain_formula() {
        let device = Device::libtorch();
        for (lr, weight_decay) in [(1e-3, 0.01), (3e-2, 0.0), (0.0, 0.01)] {
            let hypers = hypers(lr, weight_decay);
            let start = random(&device);
            let (mut fused, mut fused_state) = (start.clone() + 0.0, None);
            let (mut plain, mut plain_state) = (start, None);
            for _ in 0..3 {
                let grad = random(&device);
                (fused, fused_state) = adamw_step(hypers, fused, grad.clone(), fused_state);
                (plain, plain_state) = reference_step(&hypers, plain, grad, plain_state);
                let (ours, theirs) = (fused_state.as_ref().unwrap(), plain_state.as_ref().unwrap());
                assert_eq!(ours.time, theirs.time);
                assert_close(&ours.moment_1, &theirs.moment_1);
                assert_close(&ours.moment_2, &theirs.moment_2);
                assert_close(&fused, &plain);
            }
        }
    }

    #[test]
    fn a_parameter_takes_its_gradients_layout_and_the_same_step() {
        let device = Device::libtorch();
        let hypers = hypers(1e-2, 0.01);
        let conv_weight = || Tensor::<4>::random([6, 4, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let start = conv_weight();
        let (mut ours, mut our_state) = (start.clone() + 0.0, None);
        let (mut plain, mut plain_state) = (start, None);
        for _ in 0..2 {
            let grad = conv_weight();
            let channels_last = layout::channels_last(&libtorch(grad.clone()).tensor);
            (ours, our_state) = adamw_step(hypers, ours, burn_tensor(channels_last), our_state);
            (plain, plain_state) = reference_step(&hypers, plain, grad, plain_state);
            ours.to_data().assert_approx_eq::<f32>(&plain.to_data(), Tolerance::absolute(1e-6));
        }
        let state = our_state.unwrap();
        for tensor in [ours, state.moment_1, state.moment_2] {
            assert!(layout::is_channels_last(&libtorch(tensor).tensor), "moved to the gradient's layout");
        }
        assert!(plain_state.is_some());
    }

    #[test]
    fn a_transposed_gradient_is_read_in_its_logical_order() {
        let device = Device::libtorch();
        let hypers = hypers(1e-2, 0.0);
        let start = random(&device);
        let grad = Tensor::<2>::random([5, 7], Distribution::Normal(0.0, 1.0), &device);
        let (ours, _) = adamw_step(hypers, start.clone() + 0.0, grad.clone().transpose(), None);
        let (plain, _) = reference_step(&hypers, start, grad.transpose(), None);
        assert_close(&ours, &plain);
    }

    #[test]
    fn a_parameter_shared_with_another_tensor_is_not_written_in_place() {
        let device = Device::libtorch();
        let param = random(&device);
        let kept = param.clone();
        let before = kept.to_data();
        let (stepped, _) = adamw_step(hypers(0.1, 0.01), param, random(&device), None);
        assert_eq!(kept.to_data(), before, "the other tensor kept its values");
        assert_ne!(stepped.to_data(), before, "the parameter moved");
    }

    #[test]
    #[should_panic(expected = "plain LibTorch tensors")]
    fn tensors_of_the_autodiff_graph_are_refused() {
        let device = Device::libtorch().autodiff();
        adamw_step(hypers(0.1, 0.0), random(&device), random(&device), None);
    }
}
