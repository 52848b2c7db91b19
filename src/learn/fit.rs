//! The one training loop. It only batches, steps, reads losses and validates; everything a
//! particular use adds is a [`Callback`] plugged into it, as fastai's `Learner.fit` is driven
//! by its callbacks: the one-cycle schedule, the learning-rate finder's sweep, stopping on a
//! NaN, batch and epoch events, checkpoints, the best checkpoint and early stopping
//! ([`super::callbacks`]).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::data::TrainData;
use super::learner::Learner;
use super::metrics::SmoothedLoss;
use super::step::DeferredLosses;
use crate::event::{Emit, EpochRow};
use crate::job::{CancelToken, is_cancelled};

/// What a hook asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// End the loop: after this batch (from `after_batch`) or this epoch (from `after_epoch`,
    /// once every callback has seen it).
    Stop,
}

/// A step's place in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPosition {
    /// The epoch's number over the learner's life (seeds its shuffle).
    pub epoch: usize,
    /// 0-based within the epoch.
    pub index: usize,
    /// 0-based over the loop.
    pub iteration: usize,
    pub batches_per_epoch: usize,
}

/// A step once its loss has been read (one step late: see [`DeferredLosses`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepEnd {
    pub position: StepPosition,
    pub loss: f64,
    /// fastai's exponentially smoothed loss over the epoch's steps so far.
    pub smooth_loss: f64,
    /// The head group's learning rate for this step.
    pub lr: f64,
    /// Since the epoch began.
    pub seconds: f64,
}

/// Hooks into [`run`]. Each has a default that does nothing, so a callback implements only
/// what it needs. Callbacks run in the order given.
pub trait Callback {
    /// Before the step is queued: set the step's hyper-parameters here.
    fn before_batch(&mut self, _learner: &mut Learner, _position: &StepPosition) {}

    /// After the step's loss was read.
    fn after_batch(&mut self, _learner: &mut Learner, _step: &StepEnd) -> Result<Control> {
        Ok(Control::Continue)
    }

    /// After an epoch's training (and validation, when the loop validates).
    fn after_epoch(&mut self, _learner: &mut Learner, _row: &EpochRow) -> Result<Control> {
        Ok(Control::Continue)
    }
}

/// How a loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// A callback stopped it.
    Stopped,
    /// Cancelled before a batch or during validation; the epoch in progress is lost.
    Cancelled,
}

/// What the loop runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopPlan {
    /// The first epoch's number (seeds its shuffle and augmentation).
    pub first_epoch: usize,
    /// Validate at the end of each epoch (else `after_epoch` sees NaN validation figures).
    pub validate: bool,
}

/// Trains epoch after epoch until a callback says stop or `cancel` is set. The device always
/// has the next step queued before the host reads a loss.
pub fn run(
    learner: &mut Learner,
    data: &TrainData,
    plan: LoopPlan,
    callbacks: &mut [&mut dyn Callback],
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<LoopEnd> {
    let mut iteration = 0;
    for epoch in plan.first_epoch.. {
        let started = Instant::now();
        let batches = learner.training_batches(data, epoch);
        let batches_per_epoch = batches.len();
        let mut smooth = SmoothedLoss::new();
        let mut losses = DeferredLosses::new();
        let (mut trained_images, mut train_time, mut data_wait) = (0usize, Duration::ZERO, Duration::ZERO);
        let mut waiting = Instant::now();
        for (index, batch) in batches.enumerate() {
            data_wait += waiting.elapsed();
            if learner.stop_requested(cancel) {
                return Ok(LoopEnd::Cancelled);
            }
            let step_started = Instant::now();
            let position = StepPosition { epoch, index, iteration, batches_per_epoch };
            for callback in callbacks.iter_mut() {
                callback.before_batch(learner, &position);
            }
            let lr = learner.head_lr();
            let pending = learner.step(&batch)?;
            iteration += 1;
            if let Some(((position, lr), loss)) = losses.push((position, lr), pending) {
                let step = StepEnd { position, loss, smooth_loss: smooth.push(loss), lr, seconds: secs(started) };
                if after_batch(learner, callbacks, &step)? == Control::Stop {
                    return Ok(LoopEnd::Stopped);
                }
            }
            train_time += step_started.elapsed();
            trained_images += batch.len();
            waiting = Instant::now();
        }
        if let Some(((position, lr), loss)) = losses.finish() {
            let step = StepEnd { position, loss, smooth_loss: smooth.push(loss), lr, seconds: secs(started) };
            if after_batch(learner, callbacks, &step)? == Control::Stop {
                return Ok(LoopEnd::Stopped);
            }
        }
        let tally = if plan.validate {
            // The training steps' freed activations go back to the kernel before validation
            // and the checkpoint take their own memory: the epoch's peak stays that of a step.
            crate::system::release_freed_memory();
            match learner.validate(data, emit, cancel) {
                Ok(tally) => Some(tally),
                Err(error) if is_cancelled(&error) => return Ok(LoopEnd::Cancelled),
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        let row = EpochRow {
            epoch,
            train_loss: smooth.value(),
            valid_loss: tally.as_ref().map_or(f64::NAN, |t| t.mean_loss()),
            error_rate: tally.as_ref().map_or(f64::NAN, |t| t.error_rate()),
            accuracy: tally.as_ref().map_or(f64::NAN, |t| t.accuracy()),
            seconds: secs(started),
            train_images_per_second: trained_images as f64 / train_time.as_secs_f64().max(1e-9),
            data_wait_seconds: data_wait.as_secs_f64(),
        };
        let mut control = Control::Continue;
        for callback in callbacks.iter_mut() {
            if callback.after_epoch(learner, &row)? == Control::Stop {
                control = Control::Stop;
            }
        }
        if control == Control::Stop {
            return Ok(LoopEnd::Stopped);
        }
    }
    unreachable!("the epochs never run out")
}

fn after_batch(learner: &mut Learner, callbacks: &mut [&mut dyn Callback], step: &StepEnd) -> Result<Control> {
    for callback in callbacks.iter_mut() {
        if callback.after_batch(learner, step)? == Control::Stop {
            return Ok(Control::Stop);
        }
    }
    Ok(Control::Continue)
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}
