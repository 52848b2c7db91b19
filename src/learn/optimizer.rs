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
        let hypers = StepHypers {
            lr: self.hypers.lr(self.group),
            beta1: self.hypers.beta1(),
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        };
        hypers.step(tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}

/// One step's hyper-parameters for one tensor.
struct StepHypers {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl StepHypers {
    /// Training tensors are LibTorch's: the step uses its in-place, fused kernels (`lerp_`,
    /// `addcdiv_`), as PyTorch's Adam does, 8 passes over a parameter instead of the ~14
    /// allocating ones burn's tensor operations make, which were half the optimizer's time on
    /// ResNet34 (issue 3).
    fn step<const D: usize>(
        &self,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdaptiveMomentumState<D>>,
    ) -> (Tensor<D>, Option<AdaptiveMomentumState<D>>) {
        let mut param = writable(tensor);
        let grad = libtorch(grad).tensor;
        let (time, mut moment_1, mut moment_2) = match state {
            Some(state) => (state.time + 1, writable(state.moment_1), writable(state.moment_2)),
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let (lr, beta1, beta2) = (self.lr, self.beta1, self.beta2);
        // Each in-place kernel returns an alias of the tensor it wrote; it is not needed.
        let _ = moment_1.lerp_(&grad, 1.0 - beta1);
        let _ = moment_2.lerp_(&grad.square(), 1.0 - beta2);
        if lr > 0.0 {
            if self.weight_decay != 0.0 {
                let _ = param.g_mul_scalar_(1.0 - lr * self.weight_decay);
            }
            // param -= lr / debias1 * m / (sqrt(v / debias2) + eps), with the step folded into
            // the denominator because tch's addcdiv_ has no scale.
            let (debias1, debias2) = self.debias(time);
            let scale = -debias1 / lr;
            let mut denominator = moment_2.sqrt();
            let _ = denominator.g_mul_scalar_(scale / debias2.sqrt());
            let _ = denominator.g_add_scalar_(scale * self.eps);
            let _ = param.addcdiv_(&moment_1, &denominator);
        }
        let state = AdaptiveMomentumState::new(time, burn_tensor(moment_1), burn_tensor(moment_2));
        (burn_tensor(param), Some(state))
    }

    /// Adam's bias corrections `1 - beta^t` of the two moments after `time` steps.
    fn debias(&self, time: usize) -> (f64, f64) {
        let time = i32::try_from(time).unwrap_or(i32::MAX);
        (1.0 - self.beta1.powi(time), 1.0 - self.beta2.powi(time))
    }
}

fn libtorch<const D: usize>(tensor: Tensor<D>) -> TchTensor {
    tensor.try_into_primitive::<LibTorch>().unwrap_or_else(|error| {
        panic!("the optimizer steps plain LibTorch tensors (parameters, gradients, moments): {error:?}")
    })
}

/// The tensor's LibTorch handle, copied when burn shares its storage with another tensor
/// (writing in place would change that one too).
fn writable<const D: usize>(tensor: Tensor<D>) -> tch::Tensor {
    let primitive = libtorch(tensor);
    if primitive.can_mut() { primitive.tensor } else { primitive.tensor.copy() }
}

fn burn_tensor<const D: usize>(tensor: tch::Tensor) -> Tensor<D> {
    Tensor::from_primitive::<LibTorch>(TchTensor::new(tensor))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    fn hypers(lr: f64, weight_decay: f64) -> StepHypers {
        StepHypers { lr, beta1: 0.9, beta2: 0.99, eps: 1e-5, weight_decay }
    }

    /// Adam with decoupled weight decay written plainly with burn's tensor operations: what the
    /// fused LibTorch step must compute.
    fn reference_step<const D: usize>(
        hypers: &StepHypers,
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
        let (debias1, debias2) = hypers.debias(state.time);
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
                (fused, fused_state) = hypers.step(fused, grad.clone(), fused_state);
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
    fn a_parameter_shared_with_another_tensor_is_not_written_in_place() {
        let device = Device::libtorch();
        let param = random(&device);
        let kept = param.clone();
        let before = kept.to_data();
        let (stepped, _) = hypers(0.1, 0.01).step(param, random(&device), None);
        assert_eq!(kept.to_data(), before, "the other tensor kept its values");
        assert_ne!(stepped.to_data(), before, "the parameter moved");
    }

    #[test]
    #[should_panic(expected = "plain LibTorch tensors")]
    fn tensors_of_the_autodiff_graph_are_refused() {
        let device = Device::libtorch().autodiff();
        hypers(0.1, 0.0).step(random(&device), random(&device), None);
    }
}
