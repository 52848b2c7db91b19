//! A learner's weights and optimizer state leaving it and coming back: checkpoints, the
//! snapshots lr_find and data-parallel ranks take, and exports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};

use super::{Learner, build_optimizer};
use crate::learn::checkpoint::{self, CheckpointState, Which};
use crate::learn::distributed::SharedState;
use crate::learn::export::{self, ExportHeader};
use crate::learn::onnx::{self, OnnxSummary};
use crate::learn::optimizer::Hypers;
use crate::model::{Arch, Classifier};

impl Learner {
    /// The weights (BatchNorm statistics included) and optimizer state, serialised.
    pub(super) fn snapshot(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let optimizer = self.optimizer.into_bytes().context("cannot serialise the optimizer state")?;
        Ok((self.weight_bytes()?.to_vec(), optimizer.to_vec()))
    }

    /// What another rank needs to become this learner: its state, weights and optimizer state.
    pub(in crate::learn) fn share(&self) -> Result<(SharedState, Vec<u8>, Vec<u8>)> {
        let (model, optimizer) = self.snapshot()?;
        let state = SharedState {
            arch: self.arch,
            image_size: self.image_size,
            window: self.window,
            split_fingerprint: self.split_fingerprint.clone(),
            frozen: self.frozen,
            epochs_done: self.epochs_done,
            cycle: self.cycle.clone(),
        };
        Ok((state, model, optimizer))
    }

    /// Becomes the learner another rank [`Learner::share`]d (of the same architecture).
    pub(in crate::learn) fn adopt(&mut self, state: SharedState, model: Vec<u8>, optimizer: Vec<u8>) -> Result<()> {
        (self.frozen, self.epochs_done, self.cycle) = (state.frozen, state.epochs_done, state.cycle);
        self.restore((model, optimizer))
    }

    /// Back to a [`Learner::snapshot`], in fresh modules: training passes since may have left
    /// BatchNorm updates pending in the current ones.
    pub(super) fn restore(&mut self, saved: (Vec<u8>, Vec<u8>)) -> Result<()> {
        let shape = (self.arch, self.classes.len(), self.frozen);
        let saved = Saved::Bytes(saved.0, saved.1);
        (*self.model, self.optimizer) =
            load_state(shape, saved, &self.hypers, self.settings.weight_decay, &self.device)
                .context("cannot restore the weights saved before the sweep")?;
        self.lay_out_weights();
        Ok(())
    }

    /// The weights, BatchNorm statistics included.
    fn weight_record(&self) -> ModuleRecord {
        // `valid()` folds a pending BatchNorm statistics update in before the record is taken.
        let _ = self.model.valid();
        self.model.clone().into_record()
    }

    /// The weights as a burnpack record in memory.
    fn weight_bytes(&self) -> Result<Bytes> {
        self.weight_record().into_bytes().context("cannot serialise the weights")
    }

    /// The lesson's `learn.export()`: one file with the weights and what prediction needs.
    pub fn export(&self, path: &Path) -> Result<()> {
        export::write(path, &self.export_header()?, &self.weight_bytes()?)
    }

    /// The model as a standard ONNX file (see [`onnx`]), for inference servers.
    pub fn export_onnx(&self, path: &Path) -> Result<OnnxSummary> {
        onnx::write(&self.model.valid(), &self.export_header()?, path)
    }

    fn export_header(&self) -> Result<ExportHeader> {
        if self.epochs_done == 0 {
            bail!(
                "the {} in {} is not trained yet: run `mednist train` before exporting it",
                self.arch,
                self.run_dir.display()
            );
        }
        let header = ExportHeader::new(self.arch, self.classes.clone(), self.image_size, self.window, self.epochs_done);
        Ok(header.with_temperature(self.temperature))
    }

    /// Writes the checkpoint for the epochs done so far into the run folder: a fit does after
    /// every epoch, `set_frozen` needs it to last. The records are streamed to their files
    /// one after the other, never held whole in memory beside the model.
    pub fn save(&self) -> Result<PathBuf> {
        if self.opened_at != Which::Last {
            bail!(
                "this learner was opened at an earlier epoch than the latest in {}: saving it would replace the latest checkpoint",
                self.run_dir.display()
            );
        }
        let state = CheckpointState {
            format: 0,
            arch: self.arch,
            classes: self.classes.clone(),
            image_size: self.image_size,
            window: self.window,
            split_fingerprint: self.split_fingerprint.clone(),
            frozen: self.frozen,
            epochs_done: self.epochs_done,
            cycle: self.cycle.clone().context("a checkpoint is written during a fit")?,
            history: self.history.clone(),
            model_file: String::new(),
            optimizer_file: String::new(),
            temperature: self.temperature,
        };
        checkpoint::save(
            &self.run_dir,
            &state,
            |path| Ok(self.weight_record().save(path)?),
            |path| Ok(self.optimizer.save(path)?),
        )
    }
}

/// Saved weights and optimizer state: a snapshot in memory, or a checkpoint's files.
pub(super) enum Saved<'a> {
    Bytes(Vec<u8>, Vec<u8>),
    Files(&'a Path, &'a Path),
}

/// A model and its optimizer rebuilt from what was saved of them, for (architecture,
/// classes, frozen).
pub(super) fn load_state(
    (arch, classes, frozen): (Arch, usize, bool),
    saved: Saved,
    hypers: &Arc<Hypers>,
    weight_decay: f64,
    device: &Device,
) -> Result<(Classifier, ModuleOptimizer)> {
    let optimizer = build_optimizer(hypers, weight_decay);
    let (record, optimizer): (Result<ModuleRecord>, Result<ModuleOptimizer>) = match saved {
        Saved::Bytes(model, state) => (
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(model)).context("the weights cannot be read"),
            optimizer.from_bytes(Bytes::from_bytes_vec(state)).context("the optimizer state cannot be read"),
        ),
        Saved::Files(model, state) => (
            ModuleRecord::load(model).with_context(|| format!("the weights in {} cannot be read", model.display())),
            optimizer.load(state).with_context(|| format!("the optimizer state in {} cannot be read", state.display())),
        ),
    };
    let model = Classifier::new(arch, classes, device)
        .try_load_record(record?)
        .with_context(|| format!("the weights do not fit a {arch}"))?;
    let optimizer = optimizer?;
    Ok((if frozen { model.freeze_body() } else { model }, optimizer))
}
