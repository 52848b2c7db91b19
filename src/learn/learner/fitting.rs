//! `fit_one_cycle`, and what the training loop (`learn::fit`) asks of a learner as it runs.

use anyhow::Result;

use super::{GROUPS, Learner};
use crate::data::augment::Augment;
use crate::data::batches::{BatchPlan, Prefetcher};
use crate::event::{Emit, EpochRow, Event, TrainStart};
use crate::job::{CancelToken, Cancelled};
use crate::learn::callbacks::{
    BatchEvents, EarlyStopping, EpochRecord, OneCycleSchedule, SaveCheckpoints, TerminateOnNan,
};
use crate::learn::checkpoint::CyclePosition;
use crate::learn::data::TrainData;
use crate::learn::distributed::Distributed;
use crate::learn::fit::{self, Callback, LoopEnd, LoopPlan};
use crate::learn::schedule::{MaxLr, OneCycle};
use crate::remedy::{Remedy, fixable};

impl Learner {
    /// fastai's `fit_one_cycle(epochs, max_lr)`. An interrupted cycle is resumed where it
    /// stopped (its schedule kept); otherwise a new cycle starts, continuing the weights,
    /// the optimizer state and the epoch numbers. Stopped on request, it fails with
    /// [`Cancelled`] and the last completed epoch's checkpoint stands.
    pub fn fit_one_cycle(
        &mut self,
        data: &TrainData,
        epochs: usize,
        max_lr: MaxLr,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<()> {
        self.check_data(data)?;
        let (world_size, share) = match &self.runtime.distributed {
            Some(distributed) => (distributed.size(), distributed.training_share(data.train.len())),
            None => (1, data.train.len()),
        };
        let steps_per_epoch = share / self.settings.batch_size.max(1);
        if steps_per_epoch == 0 {
            let per_rank = if world_size > 1 { format!(" ({share} per process)") } else { String::new() };
            return Err(fixable(
                format!(
                    "{} training images{per_rank} make no full batch of {}",
                    data.train.len(),
                    self.settings.batch_size
                ),
                [Remedy::SmallerBatch],
            ));
        }
        let cycle = match self.cycle.take() {
            Some(mut cycle) if !cycle.is_complete() => {
                emit.info(format!(
                    "resuming the interrupted {}-epoch cycle at its epoch {} (a new learner starts over)",
                    cycle.epochs,
                    cycle.epochs_done + 1
                ));
                if cycle.steps_per_epoch != steps_per_epoch {
                    emit.info(format!(
                        "an epoch is now {steps_per_epoch} batches, not {} (another batch size or number of processes): the rest of the cycle keeps its shape",
                        cycle.steps_per_epoch
                    ));
                    cycle.rescale(steps_per_epoch);
                }
                cycle
            }
            _ => CyclePosition {
                schedule: OneCycle::new(epochs * steps_per_epoch, max_lr.per_group(GROUPS.len())),
                epochs,
                epochs_done: 0,
                steps_per_epoch,
            },
        };
        emit.emit(Event::TrainStarted(TrainStart {
            arch: self.arch.name().into(),
            device: self.device_label.clone(),
            precision: self.runtime.precision.name().into(),
            classes: self.classes.clone(),
            first_epoch: self.epochs_done,
            cycle_epochs: cycle.epochs,
            cycle_epochs_done: cycle.epochs_done,
            batches_per_epoch: steps_per_epoch,
            world_size,
            train_images: data.train.len(),
            valid_images: data.valid.len(),
            max_lrs: cycle.schedule.max_lrs.clone(),
        }));
        if self.temperature.take().is_some() {
            emit.info(
                "training changes the weights: the calibration temperature is dropped (calibrating again fits a new one)"
                    .into(),
            );
        }
        self.cycle = Some(cycle);
        let monitor = self.settings.monitor;
        let (mut schedule, mut nan, mut batches, mut record) =
            (OneCycleSchedule, TerminateOnNan, BatchEvents(emit), EpochRecord(emit));
        let mut early_stopping = self.settings.patience.map(|patience| EarlyStopping::new(monitor, patience, emit));
        let mut checkpoints = SaveCheckpoints { monitor, emit };
        let mut callbacks: Vec<&mut dyn Callback> = vec![&mut schedule, &mut nan, &mut batches, &mut record];
        if let Some(early_stopping) = early_stopping.as_mut() {
            callbacks.push(early_stopping);
        }
        // In a process group every rank holds the same learner: rank 0 writes it.
        if self.runtime.distributed.as_ref().is_none_or(|distributed| distributed.rank() == 0) {
            callbacks.push(&mut checkpoints);
        }
        let plan = LoopPlan { first_epoch: self.epochs_done, validate: true };
        match fit::run(self, data, plan, &mut callbacks, emit, cancel)? {
            LoopEnd::Stopped => {
                emit.emit(Event::TrainFinished { epochs: self.cycle.as_ref().map_or(0, |cycle| cycle.epochs_done) });
                Ok(())
            }
            LoopEnd::Cancelled => {
                emit.emit(Event::TrainCancelled { completed_epochs: self.epochs_done });
                Err(Cancelled.into())
            }
        }
    }

    pub(in crate::learn) fn cycle(&self) -> Option<&CyclePosition> {
        self.cycle.as_ref()
    }

    pub(in crate::learn) fn cycle_mut(&mut self) -> Option<&mut CyclePosition> {
        self.cycle.as_mut()
    }

    /// An epoch done: the next epoch's number moves on and its row joins the history.
    pub(in crate::learn) fn record_epoch(&mut self, row: EpochRow) {
        self.epochs_done += 1;
        self.history.push(row);
    }

    /// Every layer group's learning rate and beta1 for the next step.
    pub(in crate::learn) fn set_hypers(&self, lrs: &[f64], beta1: f64) {
        self.hypers.set(lrs, beta1);
    }

    /// The head group's learning rate for the next step (the one the tables show).
    pub(in crate::learn) fn head_lr(&self) -> f64 {
        self.hypers.lr(GROUPS.len() - 1)
    }

    /// Epoch `epoch`'s training batches: shuffled and augmented by (seed, epoch); in a process
    /// group, this rank's share of them.
    pub(in crate::learn) fn training_batches(&self, data: &TrainData, epoch: usize) -> Prefetcher {
        let plan =
            BatchPlan::training(&data.train, self.settings.batch_size, Augment::default(), self.settings.seed, epoch);
        let plan = match &self.runtime.distributed {
            Some(distributed) => distributed.shard(plan),
            None => plan,
        };
        self.runtime.feed.batches(data.cache.clone(), plan)
    }

    /// Whether the loop stops before its next batch: when `cancel` is set, or in a process group
    /// when the ranks agreed to (each rank's request travels with its gradients).
    pub(in crate::learn) fn stop_requested(&self, cancel: &CancelToken) -> bool {
        match &self.runtime.distributed {
            Some(distributed) => distributed.stop_agreed(),
            None => cancel.is_cancelled(),
        }
    }

    /// Makes this learner a rank of a data-parallel training (see [`crate::learn::distributed`]); its
    /// state must be the same as every other rank's.
    pub(in crate::learn) fn join(&mut self, distributed: Distributed) {
        self.runtime.distributed = Some(distributed);
    }

    /// Sets every layer group's learning rate (and beta1 0.9) for steps outside a one-cycle
    /// fit: benchmarks and the learning-rate finder.
    pub fn set_learning_rate(&self, lr: f64) {
        self.hypers.set(&vec![lr; GROUPS.len()], 0.9);
    }
}
