//! The run registry: one folder per training run under `<workspace>/runs/`, and
//! `runs/current`, a symbolic link to the run `mednist train` continues.
//!
//! ```text
//! runs/
//!   current -> 2026-12-03-1051-07   the latest run (replaced atomically, by rename)
//!   lock.json                       the one training process writing (pid, run)
//!   2026-12-03-1051-07/
//!     run.json       settings, versions, device, times, status (and the failure's message), pid
//!     events.jsonl   every event the training emitted, one JSON object a line
//!     train.log      what a detached training printed
//!     checkpoint.json, model-NNNN.bpk, ...   the learner's checkpoint (learn::checkpoint)
//! ```
//!
//! A workspace from before the registry has a real folder at `runs/current`; [`Runs::open`]
//! turns it into a named run (a rename, so its checkpoint is never copied or lost).

pub mod clock;
pub mod event_log;
pub mod lock;
pub mod process;
pub mod recording;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::event::{Emit, EpochRow, Event};
use crate::learn::checkpoint;
use crate::workspace::{Workspace, read_json, write_json_atomic};
pub use process::{interrupt, is_alive};

const CURRENT: &str = "current";
const RECORD_FILE: &str = "run.json";
/// What a detached training prints (its stdout and stderr).
pub const TRAIN_LOG_FILE: &str = "train.log";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Finished,
    /// Asked to stop (Ctrl-C, Esc, a cancel); the last finished epoch's checkpoint stands.
    Stopped,
    Failed,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
        })
    }
}

/// `run.json`: what a run was started with, on what, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub name: String,
    pub status: RunStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The training process while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Seconds since the Unix epoch, and the same in local time for people.
    pub started: i64,
    pub started_at: String,
    #[serde(default)]
    pub ended: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub split_fingerprint: Option<String>,
    pub versions: Versions,
    /// What the front end started the run with (its own words: flags, pane settings).
    #[serde(default)]
    pub settings: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub mednist: String,
    pub burn: String,
    pub libtorch: Option<String>,
}

impl Versions {
    pub fn of_this_build() -> Self {
        Self {
            mednist: env!("CARGO_PKG_VERSION").into(),
            burn: env!("MEDNIST_BURN_VERSION").into(),
            libtorch: crate::system::loaded_libtorch_version(),
        }
    }
}

impl RunRecord {
    /// A run starting now in this process.
    pub fn starting(name: &str, settings: serde_json::Value) -> Self {
        let now = clock::now_unix();
        Self {
            name: name.into(),
            status: RunStatus::Running,
            message: None,
            pid: Some(std::process::id()),
            started: now,
            started_at: clock::timestamp(now),
            ended: None,
            ended_at: None,
            arch: None,
            device: None,
            split_fingerprint: None,
            versions: Versions::of_this_build(),
            settings,
        }
    }

    /// Records the end of the run now.
    pub fn end(&mut self, status: RunStatus, message: Option<String>) {
        self.end_at(status, message, clock::now_unix());
    }

    fn end_at(&mut self, status: RunStatus, message: Option<String>, unix: i64) {
        self.status = status;
        self.message = message;
        self.pid = None;
        self.ended = Some(unix);
        self.ended_at = Some(clock::timestamp(unix));
    }

    /// Seconds from start to end, or to now while running.
    pub fn seconds(&self) -> i64 {
        self.ended.unwrap_or_else(clock::now_unix) - self.started
    }
}

/// What the registry refuses, in words that name no front end's controls.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("run name {0:?} is not usable: use up to 64 letters, digits, '-' and '_' (and not \"current\")")]
    BadName(String),
    #[error("a run named {0} exists already: pick another name")]
    NameTaken(String),
    #[error("no run named {name} in {dir}; {}", known_runs(.known))]
    Unknown { name: String, dir: PathBuf, known: Vec<String> },
    #[error("run {name} is training (pid {pid})")]
    Running { name: String, pid: u32 },
}

fn known_runs(known: &[String]) -> String {
    if known.is_empty() { "there are no runs yet".into() } else { format!("the runs are: {}", known.join(", ")) }
}

/// A run as listed: its record and the epoch rows of its event log.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    #[serde(flatten)]
    pub record: RunRecord,
    pub rows: Vec<EpochRow>,
    /// The epoch with the lowest valid_loss.
    pub best: Option<EpochRow>,
}

/// The runs of one workspace.
#[derive(Debug, Clone)]
pub struct Runs {
    dir: PathBuf,
}

impl Runs {
    /// The registry of `workspace`, migrating an old single `runs/current/` folder first
    /// (saying so through `emit`).
    pub fn open(workspace: &Workspace, emit: &dyn Emit) -> Result<Self> {
        let runs = Self { dir: workspace.root().join("runs") };
        fs::create_dir_all(&runs.dir).with_context(|| format!("cannot create {}", runs.dir.display()))?;
        runs.migrate_old_current(emit)?;
        Ok(runs)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every run's name, oldest first.
    pub fn names(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))?;
        let mut runs: Vec<(i64, String)> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| valid_name(name))
            .map(|name| (self.load_record(&name).map_or(i64::MAX, |record| record.started), name))
            .collect();
        runs.sort();
        Ok(runs.into_iter().map(|(_, name)| name).collect())
    }

    /// The run `runs/current` points at.
    pub fn current(&self) -> Option<String> {
        let target = fs::read_link(self.dir.join(CURRENT)).ok()?;
        let name = target.file_name()?.to_str()?.to_string();
        self.run_dir(&name).is_dir().then_some(name)
    }

    /// Creates a new run's folder, named `name` or after the time now.
    pub fn create(&self, name: Option<&str>) -> Result<String> {
        if let Some(name) = name {
            if !valid_name(name) {
                return Err(RunsError::BadName(name.into()).into());
            }
            return match fs::create_dir(self.run_dir(name)) {
                Ok(()) => Ok(name.into()),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(RunsError::NameTaken(name.into()).into())
                }
                Err(error) => Err(error).with_context(|| format!("cannot create {}", self.run_dir(name).display())),
            };
        }
        for name in candidates(&clock::run_name(clock::now_unix())) {
            match fs::create_dir(self.run_dir(&name)) {
                Ok(()) => return Ok(name),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot create {}", self.run_dir(&name).display()));
                }
            }
        }
        unreachable!("some suffix is free")
    }

    /// Points `runs/current` at `name`: a new link renamed over the old one, so readers see
    /// one or the other.
    pub fn set_current(&self, name: &str) -> Result<()> {
        let staged = self.dir.join(format!(".current-{}", std::process::id()));
        let _ = fs::remove_file(&staged);
        std::os::unix::fs::symlink(name, &staged)
            .with_context(|| format!("cannot create a link in {}", self.dir.display()))?;
        fs::rename(&staged, self.dir.join(CURRENT))
            .with_context(|| format!("cannot point {} at {name}", self.dir.join(CURRENT).display()))
    }

    /// `name`'s record; a run left "running" by a process that is gone is recorded as failed.
    pub fn record(&self, name: &str) -> Result<RunRecord> {
        if !valid_name(name) || !self.run_dir(name).is_dir() {
            let known = self.names()?;
            return Err(RunsError::Unknown { name: name.into(), dir: self.dir.clone(), known }.into());
        }
        let record = self.load_record(name)?;
        match record.pid {
            Some(pid) if record.status == RunStatus::Running && !is_alive(pid) => {
                let last_event = fs::metadata(self.run_dir(name).join(event_log::EVENTS_FILE))
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or_else(clock::now_unix, |since| since.as_secs() as i64);
                self.update(name, |record| {
                    let message = format!("process {pid} ended without finishing: killed?");
                    record.end_at(RunStatus::Failed, Some(message), last_event);
                })
            }
            _ => Ok(record),
        }
    }

    fn load_record(&self, name: &str) -> Result<RunRecord> {
        read_json(&self.run_dir(name).join(RECORD_FILE))
    }

    pub fn write_record(&self, record: &RunRecord) -> Result<()> {
        write_json_atomic(&self.run_dir(&record.name).join(RECORD_FILE), record)
    }

    /// Reads, changes and writes back `name`'s record.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut RunRecord)) -> Result<RunRecord> {
        let mut record = self.load_record(name)?;
        change(&mut record);
        self.write_record(&record)?;
        Ok(record)
    }

    /// `name`'s record and the epochs of its event log.
    pub fn summary(&self, name: &str) -> Result<RunSummary> {
        let record = self.record(name)?;
        let events = event_log::read_all(&self.run_dir(name).join(event_log::EVENTS_FILE))?;
        let rows: Vec<EpochRow> = events
            .into_iter()
            .filter_map(|event| if let Event::Epoch(row) = event { Some(row) } else { None })
            .collect();
        let best =
            rows.iter().filter(|row| !row.valid_loss.is_nan()).min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss));
        Ok(RunSummary { best: best.cloned(), rows, record })
    }

    /// Every run's summary, oldest first.
    pub fn summaries(&self) -> Result<Vec<RunSummary>> {
        self.names()?.iter().map(|name| self.summary(name)).collect()
    }

    /// Deletes a run that is not training. When it was the current one, the latest run left
    /// becomes current.
    pub fn remove(&self, name: &str) -> Result<()> {
        let record = self.record(name)?;
        if let (RunStatus::Running, Some(pid)) = (record.status, record.pid) {
            return Err(RunsError::Running { name: name.into(), pid }.into());
        }
        // Out of the listing first, so an interrupted removal leaves no half run behind.
        let doomed = self.dir.join(format!(".removing-{name}"));
        fs::rename(self.run_dir(name), &doomed)
            .with_context(|| format!("cannot remove {}", self.run_dir(name).display()))?;
        if fs::read_link(self.dir.join(CURRENT)).is_ok_and(|target| target == Path::new(name)) {
            match self.names()?.last() {
                Some(latest) => self.set_current(latest)?,
                None => fs::remove_file(self.dir.join(CURRENT))
                    .with_context(|| format!("cannot remove {}", self.dir.join(CURRENT).display()))?,
            }
        }
        fs::remove_dir_all(&doomed).with_context(|| format!("cannot remove {}", doomed.display()))
    }

    /// A `runs/current` that is a real folder (mednist before the registry) becomes a run of
    /// its own, named after its checkpoint's time, with its history as the event log.
    fn migrate_old_current(&self, emit: &dyn Emit) -> Result<()> {
        let current = self.dir.join(CURRENT);
        let Ok(meta) = fs::symlink_metadata(&current) else { return Ok(()) };
        if !meta.is_dir() {
            return Ok(());
        }
        let saved = checkpoint::load(&current).ok().flatten();
        let modified = fs::metadata(current.join("checkpoint.json")).or_else(|_| fs::metadata(&current));
        let unix = modified
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(clock::now_unix, |since| since.as_secs() as i64);
        let name = candidates(&clock::run_name(unix)).find(|name| !self.run_dir(name).exists()).expect("endless");
        fs::rename(&current, self.run_dir(&name))
            .with_context(|| format!("cannot move {} to {}", current.display(), self.run_dir(&name).display()))?;
        let mut record = RunRecord::starting(&name, serde_json::Value::Null);
        (record.started, record.started_at) = (unix, clock::timestamp(unix));
        record.end_at(RunStatus::Finished, None, unix);
        if let Some(saved) = &saved {
            record.arch = Some(saved.state.arch.to_string());
            record.split_fingerprint = Some(saved.state.split_fingerprint.clone());
            let rows = saved.state.history.iter().cloned().map(Event::Epoch);
            event_log::write_all(&self.run_dir(&name).join(event_log::EVENTS_FILE), rows)?;
        }
        self.write_record(&record)?;
        self.set_current(&name)?;
        emit.info(format!(
            "moved the learner of {} into run {name}; {} points at it",
            current.display(),
            current.display()
        ));
        Ok(())
    }
}

/// `stem`, then `stem-2`, `stem-3`, ...: names for runs started in the same second.
fn candidates(stem: &str) -> impl Iterator<Item = String> + '_ {
    (1..).map(move |suffix| if suffix == 1 { stem.to_string() } else { format!("{stem}-{suffix}") })
}

/// Letters, digits, '-' and '_': safe in paths and shells; `current` is the link's.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != CURRENT
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Runs) {
        let dir = tempfile::tempdir().unwrap();
        let runs = Runs::open(&Workspace::at(dir.path()), &|_| {}).unwrap();
        (dir, runs)
    }

    #[test]
    fn runs_started_in_the_same_second_get_their_own_names() {
        let (_dir, runs) = registry();
        let (first, second) = (runs.create(None).unwrap(), runs.create(None).unwrap());
        assert!(second == format!("{first}-2") || second > first, "{first} {second}");
        let error = runs.create(Some(&first)).unwrap_err();
        assert!(matches!(error.downcast_ref(), Some(RunsError::NameTaken(_))), "{error:#}");
    }

    #[test]
    fn the_current_link_is_replaced_and_followed() {
        let (_dir, runs) = registry();
        assert_eq!(runs.current(), None);
        for name in ["a", "b"] {
            runs.create(Some(name)).unwrap();
            runs.set_current(name).unwrap();
            assert_eq!(runs.current().as_deref(), Some(name));
        }
        fs::write(runs.run_dir("b").join("x"), "through the link").unwrap();
        assert!(runs.dir().join("current/x").is_file());
        assert_eq!(fs::read_dir(runs.dir()).unwrap().count(), 3, "a, b and the link; no staged links left");
    }

    #[test]
    fn a_record_of_a_process_that_is_gone_says_failed() {
        let (_dir, runs) = registry();
        runs.create(Some("gone")).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let record = RunRecord { pid: Some(child.id()), ..RunRecord::starting("gone", serde_json::Value::Null) };
        runs.write_record(&record).unwrap();
        let settled = runs.record("gone").unwrap();
        assert_eq!(settled.status, RunStatus::Failed);
        assert_eq!(settled.message, Some(format!("process {} ended without finishing: killed?", child.id())));
        assert_eq!(runs.load_record("gone").unwrap(), settled, "and written so");
    }

    #[test]
    fn an_unknown_run_lists_the_known_ones() {
        let (_dir, runs) = registry();
        for name in ["first", "second"] {
            runs.create(Some(name)).unwrap();
            runs.write_record(&RunRecord::starting(name, serde_json::Value::Null)).unwrap();
        }
        let error = format!("{:#}", runs.record("third").unwrap_err());
        assert!(error.contains("no run named third") && error.contains("first, second"), "{error}");
    }
}
