//! A learner's checkpoint: weights, optimizer state, schedule position and what the model
//! was trained on, written so that a crash at any point leaves a usable one behind.
//!
//! The weight and optimizer files carry the epoch in their names and are streamed to disk
//! first (each temp-then-rename); `checkpoint.json`, which names them, is replaced last.
//! Readers only follow `checkpoint.json`, so they see either the old set or the new one. The
//! checkpoint of the epoch before stays too (`checkpoint-previous.json` and its files), so a
//! latest file damaged on disk falls back to it ([`load_with_fallback`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::schedule::OneCycle;
use crate::data::window::Window;
use crate::event::{Emit, EpochRow};
use crate::model::Arch;
use crate::remedy::{Remedy, fixable};
use crate::workspace::{read_json, write_atomic, write_json_atomic};

const STATE_FILE: &str = "checkpoint.json";
/// The checkpoint of the epoch before the latest one.
const PREVIOUS_FILE: &str = "checkpoint-previous.json";
/// The checkpoint of the best epoch by the monitored validation figure: the same files as
/// the latest checkpoint had when it was marked, kept while later epochs are written.
const BEST_FILE: &str = "checkpoint-best.json";
const FORMAT: u32 = 1;

/// Where the learner stands, as recorded in `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format: u32,
    pub arch: Arch,
    pub classes: Vec<String>,
    pub image_size: usize,
    /// The window its images were rendered with (checkpoints from before windows: `file`).
    #[serde(default)]
    pub window: Window,
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

    /// The same cycle over epochs of `steps_per_epoch` steps: the schedule stretches so that the
    /// epochs done end where they ended (resuming with another batch size or number of processes).
    pub fn rescale(&mut self, steps_per_epoch: usize) {
        self.schedule.total_steps = self.epochs * steps_per_epoch;
        self.steps_per_epoch = steps_per_epoch;
    }

    /// Early stopping: the cycle ends at the epochs done, so the next fit starts a new one.
    pub fn end_early(&mut self) {
        self.epochs = self.epochs_done;
    }
}

/// Writes a checkpoint into `dir`: the weights and optimizer state (`write_model` and
/// `write_optimizer` write them to the path they are given, atomically), then the state
/// naming them. The checkpoint it replaces becomes the previous one when its epoch differs.
pub fn save(
    dir: &Path,
    state: &CheckpointState,
    write_model: impl FnOnce(&Path) -> Result<()>,
    write_optimizer: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let state_path = dir.join(STATE_FILE);
    let replaced = read_state(&state_path).ok();
    let mut state = state.clone();
    state.format = FORMAT;
    state.model_file = format!("model-{:04}.bpk", state.epochs_done);
    state.optimizer_file = format!("optimizer-{:04}.bpk", state.epochs_done);
    let written = |name: &str| dir.join(name);
    write_model(&written(&state.model_file))
        .with_context(|| format!("cannot write {}", written(&state.model_file).display()))?;
    write_optimizer(&written(&state.optimizer_file))
        .with_context(|| format!("cannot write {}", written(&state.optimizer_file).display()))?;
    if let Some(replaced) = replaced.filter(|replaced| replaced.epochs_done != state.epochs_done) {
        write_json_atomic(&dir.join(PREVIOUS_FILE), &replaced)?;
    }
    write_json_atomic(&state_path, &state)?;
    remove_stale(dir);
    Ok(state_path)
}

/// A checkpoint as found on disk: its state and the files it names (not read yet).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub state: CheckpointState,
    pub model: PathBuf,
    pub optimizer: PathBuf,
}

/// The latest checkpoint in `dir`, or `None` when there is none.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.exists() {
        return Ok(None);
    }
    checkpoint_at(dir, &state_path).map(Some)
}

/// Opens the latest checkpoint in `dir` with `open`; when it is damaged (its state, or a
/// file it names, cannot be read or `open` fails on it) the previous epoch's is opened
/// instead, with a warning through `emit`. `None` when `dir` holds no checkpoint.
pub fn load_with_fallback<T>(dir: &Path, emit: &dyn Emit, open: impl Fn(Checkpoint) -> Result<T>) -> Result<Option<T>> {
    let (latest, previous) = (dir.join(STATE_FILE), dir.join(PREVIOUS_FILE));
    if !latest.exists() && !previous.exists() {
        return Ok(None);
    }
    let damaged = match checkpoint_at(dir, &latest).and_then(&open) {
        Ok(opened) => return Ok(Some(opened)),
        Err(error) => error,
    };
    let Ok(fallback) = checkpoint_at(dir, &previous) else {
        return Err(damaged.context(format!("the checkpoint in {} cannot be used", dir.display())));
    };
    let epoch = fallback.state.epochs_done;
    let opened = open(fallback).with_context(|| {
        format!("neither the latest checkpoint in {} ({damaged:#}) nor the one before can be used", dir.display())
    })?;
    emit.warn(format!(
        "the latest checkpoint in {} cannot be used ({damaged:#}); continuing from the one before, after {epoch} epoch(s)",
        dir.display()
    ));
    Ok(Some(opened))
}

fn read_state(path: &Path) -> Result<CheckpointState> {
    let state: CheckpointState = read_json(path)?;
    if state.format != FORMAT {
        return Err(fixable(
            format!("{} has format {}, this mednist reads {FORMAT}", path.display(), state.format),
            [Remedy::StartFresh],
        ));
    }
    Ok(state)
}

/// The checkpoint `state_path` describes, its files checked to be there.
fn checkpoint_at(dir: &Path, state_path: &Path) -> Result<Checkpoint> {
    let state = read_state(state_path)?;
    let named = |name: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        fs::metadata(&path).with_context(|| {
            format!("checkpoint {} names {}, which cannot be read", state_path.display(), path.display())
        })?;
        Ok(path)
    };
    let (model, optimizer) = (named(&state.model_file)?, named(&state.optimizer_file)?);
    Ok(Checkpoint { state, model, optimizer })
}

/// Marks the latest checkpoint in `dir` as the best one (a copy of its state naming the same
/// files, which are then kept).
pub fn mark_best(dir: &Path) -> Result<()> {
    let state = read_state(&dir.join(STATE_FILE))?;
    write_json_atomic(&dir.join(BEST_FILE), &state)
}

/// Which of a run's kept checkpoints to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Which {
    /// The latest (falling back to the one before when damaged).
    #[default]
    Last,
    /// The best epoch's, by the monitored figure.
    Best,
    /// The one after this many epochs in all (`--epoch N`: the table's epoch N is N + 1 done).
    EpochsDone(usize),
}

impl std::str::FromStr for Which {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "last" => Ok(Which::Last),
            "best" => Ok(Which::Best),
            number => number
                .parse::<usize>()
                .map(|epoch| Which::EpochsDone(epoch + 1))
                .map_err(|_| format!("'{text}' is not an epoch: use best, last or the table's epoch number")),
        }
    }
}

/// The checkpoint `which` names in `dir`, `None` when the run has none at all. An epoch that
/// is not kept is an error listing those that are.
pub fn load_which(dir: &Path, which: Which) -> Result<Option<Checkpoint>> {
    let kept = || -> Vec<(String, CheckpointState)> {
        [(STATE_FILE, "last"), (PREVIOUS_FILE, "previous"), (BEST_FILE, "best")]
            .into_iter()
            .filter_map(|(file, name)| read_state(&dir.join(file)).ok().map(|state| (name.to_string(), state)))
            .collect()
    };
    let file = match which {
        Which::Last => STATE_FILE.to_string(),
        Which::Best => BEST_FILE.to_string(),
        Which::EpochsDone(done) => {
            let Some(file) = [STATE_FILE, PREVIOUS_FILE, BEST_FILE]
                .into_iter()
                .find(|file| read_state(&dir.join(file)).is_ok_and(|state| state.epochs_done == done))
            else {
                let listed: Vec<String> = kept()
                    .iter()
                    .filter_map(|(name, state)| {
                        state.epochs_done.checked_sub(1).map(|epoch| format!("epoch {epoch} ({name})"))
                    })
                    .collect();
                bail!(
                    "epoch {} is not kept in {}: only the last, the previous and the best epochs are ({})",
                    done - 1,
                    dir.display(),
                    if listed.is_empty() { "none yet".to_string() } else { listed.join(", ") }
                );
            };
            file.to_string()
        }
    };
    let path = dir.join(&file);
    if !path.exists() {
        if which == Which::Best && dir.join(STATE_FILE).exists() {
            bail!("no best checkpoint in {}: it was trained before mednist kept one; train an epoch", dir.display());
        }
        return Ok(None);
    }
    checkpoint_at(dir, &path).map(Some)
}

/// Copies the latest checkpoint in `from` to `to` (the lesson's `learn.save` / `learn.load`).
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    let Some(checkpoint) = load(from)? else {
        bail!("no checkpoint in {}: train first", from.display());
    };
    let copy_file = |source: PathBuf| {
        move |target: &Path| {
            let bytes = fs::read(&source).with_context(|| format!("cannot read {}", source.display()))?;
            write_atomic(target, &bytes)
        }
    };
    save(to, &checkpoint.state, copy_file(checkpoint.model), copy_file(checkpoint.optimizer))?;
    Ok(())
}

/// Removes weight and optimizer files that neither the latest, the previous nor the best
/// state names.
fn remove_stale(dir: &Path) {
    let named: Vec<String> = [STATE_FILE, PREVIOUS_FILE, BEST_FILE]
        .iter()
        .filter_map(|file| read_state(&dir.join(file)).ok())
        .flat_map(|state| [state.model_file, state.optimizer_file])
        .collect();
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".bpk") && (name.starts_with("model-") || name.starts_with("optimizer-"));
        if ours && !named.contains(&name) {
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
            window: Window::default(),
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

    fn writes(bytes: &'static [u8]) -> impl FnOnce(&Path) -> Result<()> {
        move |path| write_atomic(path, bytes)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// Opens a checkpoint as the learner does: reading its files, failing on a short one.
    fn open(checkpoint: Checkpoint) -> Result<(usize, Vec<u8>)> {
        let model = fs::read(&checkpoint.model)?;
        anyhow::ensure!(model.len() >= 2, "{} is cut short", checkpoint.model.display());
        Ok((checkpoint.state.epochs_done, model))
    }

    #[test]
    fn the_previous_epoch_is_kept_and_older_files_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        for (epochs, model) in [(1, b"m1"), (2, b"m2"), (3, b"m3")] {
            save(dir.path(), &state(epochs), writes(model), writes(b"o")).unwrap();
        }
        let loaded = load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.state.epochs_done, 3);
        assert_eq!(fs::read(&loaded.model).unwrap(), b"m3");
        assert_eq!(
            names(dir.path()),
            vec![
                "checkpoint-previous.json",
                "checkpoint.json",
                "model-0002.bpk",
                "model-0003.bpk",
                "optimizer-0002.bpk",
                "optimizer-0003.bpk"
            ]
        );
        // Saving the same epoch again (a freeze) keeps the epoch before as the previous one.
        save(dir.path(), &state(3), writes(b"m3'"), writes(b"o")).unwrap();
        let previous: CheckpointState = read_json(&dir.path().join(PREVIOUS_FILE)).unwrap();
        assert_eq!(previous.epochs_done, 2);
    }

    #[test]
    fn a_damaged_latest_checkpoint_falls_back_to_the_previous_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state(1), writes(b"m1"), writes(b"o1")).unwrap();
        save(dir.path(), &state(2), writes(b"m2"), writes(b"o2")).unwrap();
        fs::write(dir.path().join("model-0002.bpk"), b"m").unwrap();
        let warnings = std::sync::Mutex::new(Vec::new());
        let emit = |event: crate::event::Event| warnings.lock().unwrap().push(format!("{event:?}"));
        let (epochs, model) = load_with_fallback(dir.path(), &emit, open).unwrap().unwrap();
        assert_eq!((epochs, model.as_slice()), (1, &b"m1"[..]));
        let warnings = warnings.into_inner().unwrap();
        assert!(
            warnings.len() == 1 && warnings[0].contains("cut short") && warnings[0].contains("after 1 epoch"),
            "{warnings:?}"
        );

        // A latest state file cut short falls back too; with both damaged the error names both.
        fs::write(dir.path().join(STATE_FILE), b"{\"format\": 1, \"ar").unwrap();
        assert_eq!(load_with_fallback(dir.path(), &|_| {}, open).unwrap().unwrap().0, 1);
        fs::write(dir.path().join("model-0001.bpk"), b"").unwrap();
        let error = load_with_fallback(dir.path(), &|_| {}, open).unwrap_err();
        assert!(format!("{error:#}").contains("nor the one before"), "{error:#}");
    }

    #[test]
    fn a_missing_weight_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state(1), writes(b"m"), writes(b"o")).unwrap();
        fs::remove_file(dir.path().join("model-0001.bpk")).unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(format!("{error:#}").contains("model-0001.bpk"), "{error:#}");
    }

    #[test]
    fn a_copy_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a"), dir.path().join("b"));
        save(&from, &state(4), writes(b"weights"), writes(b"adam")).unwrap();
        copy(&from, &to).unwrap();
        let copied = load(&to).unwrap().unwrap();
        assert_eq!(copied.state.epochs_done, 4);
        assert_eq!(
            (fs::read(copied.model).unwrap(), fs::read(copied.optimizer).unwrap()),
            (b"weights".to_vec(), b"adam".to_vec())
        );
    }
}
