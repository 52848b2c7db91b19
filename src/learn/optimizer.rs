//! fastai's Adam for `fit_one_cycle`: decoupled weight decay, and hyper-parameters that the
//! one-cycle policy moves every step (burn's AdamW keeps beta1 fixed).
//!
//! As in fastai, hyper-parameters live per layer group and the scheduler sets them before each
//! step: [`Hypers`] holds the current learning rate of each group and beta1, shared by the
//! [`CycledAdamW`] instances of one learner (one per layer group, with or without weight
//! decay). The learning rate burn hands to `step` is not used.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

    fn lr(&self, group: usize) -> f64 {
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
        match libtorch::step(&hypers, tensor, grad, state) {
            Ok(stepped) => stepped,
            Err((tensor, grad, state)) => hypers.step(tensor, grad, state),
        }
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
    /// The step with burn's tensor operations, on any device.
    fn step<const D: usize>(
        &self,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdaptiveMomentumState<D>>,
    ) -> (Tensor<D>, Option<AdaptiveMomentumState<D>>) {
        let (lr, beta1, beta2) = (self.lr, self.beta1, self.beta2);
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
        let (debias1, debias2) = self.debias(state.time);
        let denominator = state.moment_2.clone().div_scalar(debias2).sqrt().add_scalar(self.eps);
        let update = state.moment_1.clone().div(denominator).mul_scalar(lr / debias1);
        let decayed = if self.weight_decay == 0.0 { tensor } else { tensor.mul_scalar(1.0 - lr * self.weight_decay) };
        (decayed.sub(update), Some(state))
    }

    /// Adam's bias corrections `1 - beta^t` of the two moments after `time` steps.
    fn debias(&self, time: usize) -> (f64, f64) {
        let time = i32::try_from(time).unwrap_or(i32::MAX);
        (1.0 - self.beta1.powi(time), 1.0 - self.beta2.powi(time))
    }
}

/// The same step on LibTorch with its in-place, fused kernels (`lerp_`, `addcdiv_`), as
/// PyTorch's Adam does: 8 passes over a parameter instead of burn's ~14 allocating ones, which
/// was half the optimizer's time on ResNet34 (issue 3).
#[allow(deprecated)] // burn 0.22 marks its LibTorch backend deprecated; it is ours (see model::ops).
mod libtorch {
    use burn::backend::LibTorch;
    use burn::backend::libtorch::TchTensor;
    use burn::optim::AdaptiveMomentumState;
    use burn::tensor::Tensor;

    use super::StepHypers;

    type Stepped<const D: usize> = (Tensor<D>, Option<AdaptiveMomentumState<D>>);
    type Unstepped<const D: usize> = (Tensor<D>, Tensor<D>, Option<AdaptiveMomentumState<D>>);

    /// The step, or its inputs back unchanged when they are not LibTorch tensors.
    pub(super) fn step<const D: usize>(
        hypers: &StepHypers,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdaptiveMomentumState<D>>,
    ) -> Result<Stepped<D>, Unstepped<D>> {
        if tensor.clone().try_into_primitive::<LibTorch>().is_err() {
            return Err((tensor, grad, state));
        }
        let mut param = writable(tensor);
        let grad = grad.try_into_primitive::<LibTorch>().expect(SAME_DEVICE).tensor;
        let (time, mut moment_1, mut moment_2) = match state {
            Some(state) => (state.time + 1, writable(state.moment_1), writable(state.moment_2)),
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let (lr, beta1, beta2) = (hypers.lr, hypers.beta1, hypers.beta2);
        // Each in-place kernel returns an alias of the tensor it wrote; it is not needed.
        let _ = moment_1.lerp_(&grad, 1.0 - beta1);
        let _ = moment_2.lerp_(&grad.square(), 1.0 - beta2);
        if lr > 0.0 {
            if hypers.weight_decay != 0.0 {
                let _ = param.g_mul_scalar_(1.0 - lr * hypers.weight_decay);
            }
            // param -= lr / debias1 * m / (sqrt(v / debias2) + eps), with the step folded into
            // the denominator because tch's addcdiv_ has no scale.
            let (debias1, debias2) = hypers.debias(time);
            let scale = -debias1 / lr;
            let mut denominator = moment_2.sqrt();
            let _ = denominator.g_mul_scalar_(scale / debias2.sqrt());
            let _ = denominator.g_add_scalar_(scale * hypers.eps);
            let _ = param.addcdiv_(&moment_1, &denominator);
        }
        let state = AdaptiveMomentumState::new(time, burn_tensor(moment_1), burn_tensor(moment_2));
        Ok((burn_tensor(param), Some(state)))
    }

    const SAME_DEVICE: &str = "a parameter's gradient and optimizer state live on its device";

    /// The tensor's LibTorch handle, copied when burn shares its storage with another tensor
    /// (writing in place would change that one too).
    fn writable<const D: usize>(tensor: Tensor<D>) -> tch::Tensor {
        let primitive = tensor.try_into_primitive::<LibTorch>().expect(SAME_DEVICE);
        if primitive.can_mut() { primitive.tensor } else { primitive.tensor.copy() }
    }

    fn burn_tensor<const D: usize>(tensor: tch::Tensor) -> Tensor<D> {
        Tensor::from_primitive::<LibTorch>(TchTensor::new(tensor))
    }
}

#[cfg(test)]
#[allow(deprecated)] // Device::libtorch: see the libtorch module.
mod tests {
    use burn::tensor::{Distribution, TensorData, Tolerance};

    use super::*;

    fn hypers(lr: f64, weight_decay: f64) -> StepHypers {
        StepHypers { lr, beta1: 0.9, beta2: 0.99, eps: 1e-5, weight_decay }
    }

    fn random(device: &Device) -> Tensor<2> {
        Tensor::random([7, 5], Distribution::Normal(0.0, 1.0), device)
    }

    fn assert_close(ours: &Tensor<2>, expected: &Tensor<2>) {
        ours.to_data().assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    fn libtorch_steps_match_the_generic_steps() {
        let device = Device::libtorch();
        for (lr, weight_decay) in [(1e-3, 0.01), (3e-2, 0.0), (0.0, 0.01)] {
            let hypers = hypers(lr, weight_decay);
            let start = random(&device);
            let (mut fused, mut fused_state) = (start.clone() + 0.0, None);
            let (mut generic, mut generic_state) = (start, None);
            for _ in 0..3 {
                let grad = random(&device);
                (fused, fused_state) = libtorch::step(&hypers, fused, grad.clone(), fused_state).unwrap_or_else(|_| panic!("on LibTorch"));
                (generic, generic_state) = hypers.step(generic, grad, generic_state);
                let (ours, theirs) = (fused_state.as_ref().unwrap(), generic_state.as_ref().unwrap());
                assert_eq!(ours.time, theirs.time);
                assert_close(&ours.moment_1, &theirs.moment_1);
                assert_close(&ours.moment_2, &theirs.moment_2);
                assert_close(&fused, &generic);
            }
        }
    }

    #[test]
    fn a_parameter_shared_with_another_tensor_is_not_written_in_place() {
        let device = Device::libtorch();
        let param = random(&device);
        let kept = param.clone();
        let before = kept.to_data();
        let (stepped, _) = libtorch::step(&hypers(0.1, 0.01), param, random(&device), None).unwrap_or_else(|_| panic!("on LibTorch"));
        assert_eq!(kept.to_data(), before, "the other tensor kept its values");
        assert_ne!(stepped.to_data(), before, "the parameter moved");
    }

    #[test]
    fn tensors_not_on_plain_libtorch_take_the_generic_step() {
        let device = Device::libtorch().autodiff();
        let param = Tensor::<2>::from_data(TensorData::from([[1.0f32, 2.0]]), &device);
        let grad = Tensor::<2>::from_data(TensorData::from([[0.5f32, -0.5]]), &device);
        assert!(libtorch::step(&hypers(0.1, 0.0), param, grad, None).is_err());
    }
}
