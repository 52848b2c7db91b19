//! The one event type every step emits. Front ends (headless output, TUI) only render these.

use serde::{Deserialize, Serialize};

/// What a long-running step is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Download,
    Verify,
    Extract,
    Scan,
    Decode,
    Validate,
    Predict,
    LrFind,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Download => "downloading",
            Stage::Verify => "verifying",
            Stage::Extract => "extracting",
            Stage::Scan => "scanning",
            Stage::Decode => "decoding",
            Stage::Validate => "validating",
            Stage::Predict => "predicting",
            Stage::LrFind => "finding lr",
        }
    }

    /// Whether `done`/`total` count bytes (else items).
    pub fn counts_bytes(self) -> bool {
        matches!(self, Stage::Download | Stage::Verify | Stage::Extract)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A stage started; `total` is known for downloads with a Content-Length, files, etc.
    StageStarted {
        stage: Stage,
        total: Option<u64>,
    },
    /// Progress within the current stage: `done` units of `total`.
    Progress {
        stage: Stage,
        done: u64,
        total: Option<u64>,
    },
    StageFinished {
        stage: Stage,
    },
    Log {
        level: Level,
        message: String,
    },
    /// A `fit_one_cycle` began (or resumed).
    TrainStarted(TrainStart),
    /// One training batch done.
    Batch(BatchEnd),
    /// One epoch done: a row of the lesson's table.
    Epoch(EpochRow),
    /// The checkpoint after an epoch was written.
    CheckpointSaved {
        epoch: usize,
        path: std::path::PathBuf,
        /// Whether it is now the best epoch's checkpoint too.
        best: bool,
    },
    /// Early stopping ended the fit: `monitor` had not improved on `best` (at `best_epoch`)
    /// for `patience` epochs.
    EarlyStopped {
        epoch: usize,
        monitor: String,
        best_epoch: usize,
        best: f64,
        patience: usize,
    },
    /// Training stopped early on request; the last completed epoch's checkpoint stands.
    TrainCancelled {
        completed_epochs: usize,
    },
    TrainFinished {
        epochs: usize,
    },
    /// One batch of the learning-rate finder's sweep.
    LrFindStep(LrStep),
}

/// What a cancelled fit leaves after `completed_epochs` epochs in all: the checkpoint of the
/// last one, named as the table numbers it (from 0), or nothing yet.
pub fn kept_after_cancel(completed_epochs: usize) -> String {
    match completed_epochs.checked_sub(1) {
        Some(last) => format!("the checkpoint after epoch {last} stands and `mednist train` resumes it"),
        None => "no epoch had finished, so nothing was saved and `mednist train` starts over".into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStart {
    pub arch: String,
    pub device: String,
    /// What the steps compute in: fp32, bf16 or fp16 (absent in logs from before precisions).
    #[serde(default)]
    pub precision: String,
    pub classes: Vec<String>,
    /// Epoch number (0-based, counted over the learner's life) this fit starts at.
    pub first_epoch: usize,
    /// Epochs in this one-cycle schedule, and how many of them are already done (resume).
    pub cycle_epochs: usize,
    pub cycle_epochs_done: usize,
    /// Batches each process trains per epoch.
    pub batches_per_epoch: usize,
    /// Processes training together (torchrun's WORLD_SIZE): each batch is `--bs` images per
    /// process (absent in logs from before distributed training: 1).
    #[serde(default = "one")]
    pub world_size: usize,
    pub train_images: usize,
    pub valid_images: usize,
    pub max_lrs: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEnd {
    pub epoch: usize,
    /// 1-based within the epoch.
    pub batch: usize,
    pub batches: usize,
    pub loss: f64,
    pub smooth_loss: f64,
    /// Learning rate of the head (the last layer group).
    pub lr: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub error_rate: f64,
    pub accuracy: f64,
    pub seconds: f64,
    /// Training images per second over this epoch's batches.
    pub train_images_per_second: f64,
    /// Time the training loop waited for batches (the data pipeline not keeping up).
    #[serde(default)]
    pub data_wait_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrStep {
    /// 1-based.
    pub iteration: usize,
    pub iterations: usize,
    pub lr: f64,
    pub loss: f64,
    pub smooth_loss: f64,
}

/// Where a step sends its events. Any `Fn(Event) + Sync` will do; `&|_| {}` ignores them.
/// Steps take `&dyn Emit`.
pub trait Emit: Sync {
    fn emit(&self, event: Event);

    fn info(&self, message: String) {
        self.emit(Event::Log { level: Level::Info, message });
    }

    fn warn(&self, message: String) {
        self.emit(Event::Log { level: Level::Warn, message });
    }
}

impl<F: Fn(Event) + Sync> Emit for F {
    fn emit(&self, event: Event) {
        self(event)
    }
}

/// serde's default for fields that logs from before them lack.
fn one() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_names_the_last_finished_epoch_as_the_table_does() {
        assert!(kept_after_cancel(3).contains("after epoch 2 stands"));
        assert!(kept_after_cancel(1).contains("after epoch 0 stands"));
        assert!(kept_after_cancel(0).contains("nothing was saved"));
    }
}
