//! The pieces plugged into the training loop ([`super::fit`]): a fit is the one-cycle
//! schedule, NaN stopping, batch events, the epoch record, early stopping and checkpoints;
//! the learning-rate finder is its sweep alone.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::fit::{Callback, Control, StepEnd, StepPosition};
use super::learner::Learner;
use super::lr_find::{LrFindOptions, LrRecorder};
use crate::event::{BatchEnd, Emit, EpochRow, Event, LrStep, Stage};

/// The validation figure that decides the best epoch and early stopping; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[default]
    ValidLoss,
    ErrorRate,
}

impl Monitor {
    pub const ALL: [Monitor; 2] = [Monitor::ValidLoss, Monitor::ErrorRate];

    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValidLoss => "valid_loss",
            Monitor::ErrorRate => "error_rate",
        }
    }

    pub fn of(self, row: &EpochRow) -> f64 {
        match self {
            Monitor::ValidLoss => row.valid_loss,
            Monitor::ErrorRate => row.error_rate,
        }
    }

    /// The row of `history` where this figure is lowest (the first of equals).
    pub fn best_of(self, history: &[EpochRow]) -> Option<&EpochRow> {
        history.iter().filter(|row| self.of(row).is_finite()).min_by(|a, b| self.of(a).total_cmp(&self.of(b)))
    }
}

impl fmt::Display for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Monitor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Monitor::ALL
            .into_iter()
            .find(|monitor| monitor.name() == text.trim())
            .ok_or_else(|| format!("unknown metric '{text}': use valid_loss or error_rate"))
    }
}

/// fastai's one-cycle schedule: sets each step's learning rates and momentum from the
/// learner's cycle, counts its epochs, and ends the loop when the cycle is complete.
pub struct OneCycleSchedule;

impl Callback for OneCycleSchedule {
    fn before_batch(&mut self, learner: &mut Learner, position: &StepPosition) {
        let cycle = learner.cycle().expect("a fit has a cycle");
        let hyper = cycle.schedule.at(cycle.epochs_done * cycle.steps_per_epoch + position.index);
        learner.set_hypers(&hyper.lrs, hyper.beta1);
    }

    fn after_epoch(&mut self, learner: &mut Learner, _row: &EpochRow) -> Result<Control> {
        let cycle = learner.cycle_mut().expect("a fit has a cycle");
        cycle.epochs_done += 1;
        Ok(if cycle.is_complete() { Control::Stop } else { Control::Continue })
    }
}

/// fastai's `TerminateOnNaNCallback`: a loss that is not finite ends the fit with an error;
/// the last epoch's checkpoint stands.
pub struct TerminateOnNan;

impl Callback for TerminateOnNan {
    fn after_batch(&mut self, _learner: &mut Learner, step: &StepEnd) -> Result<Control> {
        if !step.loss.is_finite() {
            bail!(
                "the training loss became {} at epoch {}, batch {}: try a smaller maximum learning rate",
                step.loss,
                step.position.epoch,
                step.position.index + 1
            );
        }
        Ok(Control::Continue)
    }
}

/// Emits each training batch's [`Event::Batch`].
pub struct BatchEvents<'a>(pub &'a dyn Emit);

impl Callback for BatchEvents<'_> {
    fn after_batch(&mut self, _learner: &mut Learner, step: &StepEnd) -> Result<Control> {
        self.0.emit(Event::Batch(BatchEnd {
            epoch: step.position.epoch,
            batch: step.position.index + 1,
            batches: step.position.batches_per_epoch,
            loss: step.loss,
            smooth_loss: step.smooth_loss,
            lr: step.lr,
            seconds: step.seconds,
        }));
        Ok(Control::Continue)
    }
}

/// fastai's `Recorder` at the epoch's end: the row joins the learner's history and the table.
pub struct EpochRecord<'a>(pub &'a dyn Emit);

impl Callback for EpochRecord<'_> {
    fn after_epoch(&mut self, learner: &mut Learner, row: &EpochRow) -> Result<Control> {
        learner.record_epoch(row.clone());
        self.0.emit(Event::Epoch(row.clone()));
        Ok(Control::Continue)
    }
}

/// fastai's `EarlyStoppingCallback`: ends the fit once the monitored figure has not improved
/// on the best of this fit for `patience` epochs. The cycle is then over: the next fit starts
/// a new one rather than resuming it.
pub struct EarlyStopping<'a> {
    monitor: Monitor,
    patience: usize,
    best: Option<(usize, f64)>,
    emit: &'a dyn Emit,
}

impl<'a> EarlyStopping<'a> {
    pub fn new(monitor: Monitor, patience: usize, emit: &'a dyn Emit) -> Self {
        Self { monitor, patience, best: None, emit }
    }
}

impl Callback for EarlyStopping<'_> {
    fn after_epoch(&mut self, learner: &mut Learner, row: &EpochRow) -> Result<Control> {
        let value = self.monitor.of(row);
        if self.best.is_none_or(|(_, best)| value < best) {
            self.best = Some((row.epoch, value));
        }
        let (best_epoch, best) = self.best.expect("set above");
        if row.epoch - best_epoch < self.patience.max(1) {
            return Ok(Control::Continue);
        }
        learner.cycle_mut().expect("a fit has a cycle").end_early();
        self.emit.emit(Event::EarlyStopped {
            epoch: row.epoch,
            monitor: self.monitor.name().into(),
            best_epoch,
            best,
            patience: self.patience,
        });
        Ok(Control::Stop)
    }
}

/// Writes the checkpoint after every epoch and marks it the best one when the monitored
/// figure is the lowest of the learner's history.
pub struct SaveCheckpoints<'a> {
    pub monitor: Monitor,
    pub emit: &'a dyn Emit,
}

impl Callback for SaveCheckpoints<'_> {
    fn after_epoch(&mut self, learner: &mut Learner, row: &EpochRow) -> Result<Control> {
        let path = learner.save()?;
        let best = self.monitor.best_of(learner.history()).is_some_and(|best| best.epoch == row.epoch);
        if best {
            checkpoint::mark_best(learner.run_dir())?;
        }
        self.emit.emit(Event::CheckpointSaved { epoch: row.epoch, path, best });
        Ok(Control::Continue)
    }
}

/// The learning-rate finder's sweep: exponentially growing rates, each loss recorded, stopped
/// after its iterations or when the loss diverges.
pub struct LrSweep<'a> {
    pub options: LrFindOptions,
    pub recorder: LrRecorder,
    pub emit: &'a dyn Emit,
}

impl Callback for LrSweep<'_> {
    fn before_batch(&mut self, learner: &mut Learner, position: &StepPosition) {
        learner.set_learning_rate(self.options.lr_at(position.iteration));
    }

    fn after_batch(&mut self, _learner: &mut Learner, step: &StepEnd) -> Result<Control> {
        let iteration = step.position.iteration + 1;
        let (smooth_loss, go_on) = self.recorder.record(step.lr, step.loss);
        let iterations = self.options.iterations;
        self.emit.emit(Event::LrFindStep(LrStep { iteration, iterations, lr: step.lr, loss: step.loss, smooth_loss }));
        let total = Some(iterations as u64);
        self.emit.emit(Event::Progress { stage: Stage::LrFind, done: iteration as u64, total });
        Ok(if go_on { Control::Continue } else { Control::Stop })
    }
}
