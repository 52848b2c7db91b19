//! Reading a training step's results without stalling the device.
//!
//! Reading a loss is a device sync: the host waits until the GPU has finished the step. Read
//! right after the step is queued, the GPU then idles while the host prepares and queues the
//! next one. [`PendingLoss`] keeps the loss on the device; [`DeferredLosses`] reads each
//! step's loss only after the next step is queued, so the device always has work.

// burn 0.22 marks its LibTorch backend deprecated; it is this project's backend.
#![allow(deprecated)]

use burn::backend::LibTorch;
use burn::tensor::Tensor;

/// A step's mean loss, still on the device.
#[derive(Debug)]
pub struct PendingLoss(tch::Tensor);

impl PendingLoss {
    /// Keeps `loss` (one element, on any device, in or out of an autodiff graph) without its
    /// graph.
    pub fn new(loss: &Tensor<1>) -> Self {
        let primitive = loss.clone().inner().try_into_primitive::<LibTorch>();
        // A copy of its own (one element, queued on the device without a sync): burn's
        // LibTorch backend computes in place into tensors it believes it owns alone, and this
        // alias is not counted, so the step that follows could overwrite the loss unread.
        Self(primitive.expect("training runs on LibTorch").tensor.detach().copy())
    }

    /// The loss on the device.
    pub(super) fn tensor(&self) -> &tch::Tensor {
        &self.0
    }

    /// Replaces the loss (still on the device) by `value`: the group's mean, in distributed training.
    pub(super) fn replace(&mut self, value: &tch::Tensor) {
        self.0 = value.to_kind(self.0.kind()).reshape(self.0.size());
    }

    /// The value: waits for the device to have computed it.
    pub fn read(self) -> f64 {
        self.0.reshape([-1]).double_value(&[0])
    }
}

/// Step losses read one step late. Each step's loss is pushed with what the caller needs to
/// report it (`T`: its batch number, learning rate, ...); a push returns the previous step's,
/// now read, and [`DeferredLosses::finish`] the last one.
#[derive(Debug)]
pub struct DeferredLosses<T> {
    pending: Option<(T, PendingLoss)>,
}

impl<T> DeferredLosses<T> {
    pub fn new() -> Self {
        Self { pending: None }
    }

    /// Holds this step's loss; returns the previous step's, read now that this one is queued.
    pub fn push(&mut self, step: T, loss: PendingLoss) -> Option<(T, f64)> {
        self.pending.replace((step, loss)).map(|(step, loss)| (step, loss.read()))
    }

    /// The last pushed step's loss (at the end of an epoch, before validating).
    pub fn finish(&mut self) -> Option<(T, f64)> {
        self.pending.take().map(|(step, loss)| (step, loss.read()))
    }
}

impl<T> Default for DeferredLosses<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    fn loss(value: f32) -> PendingLoss {
        PendingLoss::new(&Tensor::<1>::from_floats([value], &Device::libtorch().autodiff()))
    }

    #[test]
    fn each_loss_comes_back_once_one_push_late() {
        let mut losses = DeferredLosses::new();
        assert_eq!(losses.push(1, loss(0.5)), None);
        assert_eq!(losses.push(2, loss(0.25)), Some((1, 0.5)));
        assert_eq!(losses.finish(), Some((2, 0.25)));
        assert_eq!(losses.finish(), None);
    }
}
