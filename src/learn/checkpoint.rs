//! A learner's checkpoint: weights, optimizer state, schedule position and what the model
//! was trained on, written so that a crash at any point leaves the previous one usable.
//!
//! The weight and optimizer files carry the epoch in their names and are written first
//! (each temp-then-rename); `checkpoint.json`, which names them, is replaced last. Readers
//! only follow `checkpoint.json`, so they see either the old set or the new one.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::schedule::OneCycle;
use crate::event::EpochRow;
use crate::model::Arch;
use crate::workspace::{read_json, write_atomic, write_json_atomic};

const STATE_FILE: &str = "checkpoint.json";
const FORMAT: u32 = 1;

/// Where the learner stands, as recorded in `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format: u32,
    pub arch: Arch,
    pub classes: Vec<String>,
    pub image_size: usize,
    /// Fingerprint of the split the model was trained on.
    pub split_fingerprint: String,
    pub frozen: bool,
    /// Epochs completed over the learner's life (the next epoch's number).
    pub epochs_done: usize,
    pub cycle: CyclePosition,
    pub history: Vec<EpochRow>,
    pub model_file: String,
    pub optimizer_file: String,
    /// Temperature scaling fitted on the validation set (`mednist interpret --calibrate`);
    /// predictions divide their logits by it. Absent in checkpoints that were never calibrated.
    #[serde(default)]
    pub temperature: Option<f32>,
}

/// The one-cycle fit in progress: resuming continues its schedule from `epochs_done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CyclePosition {
    pub schedule: OneCycle,
    pub epochs: usize,
    pub epochs_done: usize,
    pub steps_per_epoch: usize,
}

impl CyclePosition {
    pub fn is_complete(&self) -> bool {
        self.epochs_done >= self.epochs
    }
}

/// Writes a checkpoint into `dir`: weights and optimizer bytes, then the state naming them.
pub fn save(dir: &Path, state: &CheckpointState, model: &[u8], optimizer: &[u8]) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut state = state.clone();
    state.format = FORMAT;
    state.model_file = format!("model-{:04}.bpk", state.epochs_done);
    state.optimizer_file = format!("optimizer-{:04}.bpk", state.epochs_done);
    write_atomic(&dir.join(&state.model_file), model)?;
    write_atomic(&dir.join(&state.optimizer_file), optimizer)?;
    let state_path = dir.join(STATE_FILE);
    write_json_atomic(&state_path, &state)?;
    remove_stale(dir, &state);
    Ok(state_path)
}

/// A checkpoint as read back: the state and the bytes of the files it names.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub state: CheckpointState,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
}

/// Reads the checkpoint in `dir`, or `None` when there is none.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.exists() {
        return Ok(None);
    }
    let state: CheckpointState = read_json(&state_path)?;
    if state.format != FORMAT {
        bail!(
            "{} has format {}, this mednist reads {FORMAT}: train again with --fresh",
            state_path.display(),
            state.format
        );
    }
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read(&path).with_context(|| {
            format!("checkpoint {} names {}, which cannot be read", state_path.display(), path.display())
        })
    };
    let (model, optimizer) = (read(&state.model_file)?, read(&state.optimizer_file)?);
    Ok(Some(Checkpoint { state, model, optimizer }))
}

/// Copies the checkpoint in `from` to `to` (the lesson's `learn.save` / `learn.load`).
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    let Some(checkpoint) = load(from)? else {
        bail!("no checkpoint in {}: train first", from.display());
    };
    save(to, &checkpoint.state, &checkpoint.model, &checkpoint.optimizer)?;
    Ok(())
}

/// Removes weight and optimizer files that the current state no longer names.
fn remove_stale(dir: &Path, state: &CheckpointState) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".bpk") && (name.starts_with("model-") || name.starts_with("optimizer-"));
        if ours && name != state.model_file && name != state.optimizer_file {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epochs_done: usize) -> CheckpointState {
        CheckpointState {
            format: FORMAT,
            arch: Arch::Resnet18,
            classes: vec!["a".into(), "b".into()],
            image_size: 64,
            split_fingerprint: "f".into(),
            frozen: false,
            epochs_done,
            cycle: CyclePosition {
                schedule: OneCycle::new(30, vec![1e-3]),
                epochs: 3,
                epochs_done,
                steps_per_epoch: 10,
            },
            history: Vec::new(),
            model_file: String::new(),
            optimizer_file: String::new(),
            temperature: None,
        }
    }

    #[test]
    fn round_trip_and_stale_files_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        save(dir.path(), &state(1), b"m1", b"o1").unwrap();
        save(dir.path(), &state(2), b"m2", b"o2").unwrap();
        let loaded = load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.state.epochs_done, 2);
        assert_eq!((loaded.model.as_slice(), loaded.optimizer.as_slice()), (&b"m2"[..], &b"o2"[..]));
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, vec!["checkpoint.json", "model-0002.bpk", "optimizer-0002.bpk"]);
    }

    #[test]
    fn a_missing_weight_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state(1), b"m", b"o").unwrap();
        fs::remove_file(dir.path().join("model-0001.bpk")).unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(format!("{error:#}").contains("model-0001.bpk"), "{error:#}");
    }
}
