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
        let (lr, beta1, beta2) = (self.hypers.lr(self.group), self.hypers.beta1(), self.beta2);
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
        let time = state.time as i32;
        let debias1 = 1.0 - beta1.powi(time);
        let debias2 = 1.0 - beta2.powi(time);
        let denominator = state.moment_2.clone().div_scalar(debias2).sqrt().add_scalar(self.eps);
        let update = state.moment_1.clone().div(denominator).mul_scalar(lr / debias1);
        let decayed = if self.weight_decay == 0.0 { tensor } else { tensor.mul_scalar(1.0 - lr * self.weight_decay) };
        (decayed.sub(update), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}
