//! A training recorded as a run: the workspace lock held while it trains, `run.json` from
//! running to how it ended, and every event in `events.jsonl`. `mednist train` and the app's
//! Train pane record their trainings through it, so both leave the same traces.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::event_log::{EVENTS_FILE, EventLog};
use super::lock::{TakenOver, TrainLock};
use super::{RunRecord, RunStatus, Runs};
use crate::event::Emit;
use crate::job::CancelToken;
use crate::learn::checkpoint;

/// How a training ended, as the code that ran it saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Finished,
    /// Stopped on request after a batch; the last finished epoch's checkpoint stands.
    Stopped,
    Failed(String),
}

impl Runs {
    /// Takes the training lock (see [`Runs::lock`]), saying through `emit` when it took over
    /// one left by a process that died.
    pub fn lock_for_training(&self, emit: &dyn Emit) -> Result<TrainLock> {
        let (lock, taken_over) = self.lock()?;
        if let Some(TakenOver(owner)) = taken_over {
            emit.warn(format!(
                "took over the training lock of run {} from pid {}, which ended without releasing it",
                owner.run, owner.pid
            ));
        }
        Ok(lock)
    }

    /// Creates a new run (named `name`, or after the time) and makes it current; with
    /// `start_from`, it starts with a copy of the checkpoint in that folder.
    pub fn new_current(&self, name: Option<&str>, start_from: Option<&Path>) -> Result<String> {
        let name = self.create(name)?;
        if let Some(from) = start_from
            && let Err(error) = checkpoint::copy(from, &self.run_dir(&name))
        {
            let _ = std::fs::remove_dir_all(self.run_dir(&name));
            return Err(error);
        }
        self.set_current(&name)?;
        Ok(name)
    }
}

/// A training being recorded in a run. It holds the workspace lock until it ends; one dropped
/// without [`Recording::end`] (a panic) is recorded as failed.
pub struct Recording<'a> {
    runs: &'a Runs,
    name: String,
    lock: Option<TrainLock>,
}

impl<'a> Recording<'a> {
    /// Records run `name` as running in this process, started with `settings`.
    pub fn begin(runs: &'a Runs, mut lock: TrainLock, name: &str, settings: serde_json::Value) -> Result<Self> {
        lock.set_run(name)?;
        runs.write_record(&RunRecord::starting(name, settings))?;
        Ok(Self { runs, name: name.into(), lock: Some(lock) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> PathBuf {
        self.runs.run_dir(&self.name)
    }

    /// An [`EventLog`] appending to the run's `events.jsonl` before passing events on to `inner`.
    pub fn event_log<'e>(&self, inner: &'e dyn Emit, stop: CancelToken) -> Result<EventLog<'e>> {
        EventLog::append(&self.dir().join(EVENTS_FILE), inner, stop)
    }

    /// Notes what the learner is, once it is open.
    pub fn describe(&self, arch: String, device: String, split_fingerprint: String) -> Result<()> {
        self.runs.update(&self.name, |record| {
            record.arch = Some(arch);
            record.device = Some(device);
            record.split_fingerprint = Some(split_fingerprint);
        })?;
        Ok(())
    }

    /// Records that the training could not start, with `error` as the front end words it
    /// (`describe`); returns `error`.
    pub fn fail(mut self, error: anyhow::Error, describe: fn(&anyhow::Error) -> String) -> anyhow::Error {
        // The first error is the one to report; a record that cannot be written is settled as
        // failed later anyway, once this process has gone.
        let _ = self.settle(RunStatus::Failed, Some(describe(&error)));
        error
    }

    /// Records how the training ended and releases the lock. A stop that came from an event
    /// log that could not be written is a failure, with the log's message.
    pub fn end(mut self, ended: Ended, log: &EventLog) -> Result<RunRecord> {
        let log_failure = log.close();
        let (status, message) = match (ended, log_failure) {
            (Ended::Finished, _) => (RunStatus::Finished, None),
            (Ended::Stopped, Some(failure)) => (RunStatus::Failed, Some(failure)),
            (Ended::Stopped, None) => (RunStatus::Stopped, None),
            (Ended::Failed(message), _) => (RunStatus::Failed, Some(message)),
        };
        self.settle(status, message)
    }

    /// Gives the run and its lock to process `pid` (a detached training), which records the rest.
    pub fn hand_over(mut self, pid: u32) -> Result<()> {
        self.runs.update(&self.name, |record| record.pid = Some(pid))?;
        self.lock.take().expect("held until settled or handed over").hand_over(pid)
    }

    fn settle(&mut self, status: RunStatus, message: Option<String>) -> Result<RunRecord> {
        let record = self.runs.update(&self.name, |record| record.end(status, message));
        self.lock = None;
        record
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = self.settle(RunStatus::Failed, Some("the training ended without saying how (a crash?)".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;

    #[test]
    fn a_recording_holds_the_lock_and_ends_in_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let runs = Runs::open(&Workspace::at(dir.path()), &|_| {}).unwrap();
        let name = runs.new_current(Some("first"), None).unwrap();
        let recording =
            Recording::begin(&runs, runs.lock_for_training(&|_| {}).unwrap(), &name, serde_json::json!({})).unwrap();
        let owner = runs.lock_owner().unwrap();
        assert_eq!((owner.pid, owner.run.as_str()), (std::process::id(), "first"));
        assert_eq!(runs.record("first").unwrap().status, RunStatus::Running);
        let log = recording.event_log(&|_| {}, CancelToken::new()).unwrap();
        let record = recording.end(Ended::Stopped, &log).unwrap();
        assert_eq!((record.status, record.pid), (RunStatus::Stopped, None));
        assert!(runs.lock_owner().is_none(), "released");
        assert_eq!(runs.current().as_deref(), Some("first"));
    }

    #[test]
    fn a_recording_dropped_without_an_end_is_recorded_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let runs = Runs::open(&Workspace::at(dir.path()), &|_| {}).unwrap();
        let name = runs.new_current(None, None).unwrap();
        drop(
            Recording::begin(&runs, runs.lock_for_training(&|_| {}).unwrap(), &name, serde_json::Value::Null).unwrap(),
        );
        let record = runs.record(&name).unwrap();
        assert_eq!(record.status, RunStatus::Failed);
        assert!(record.message.unwrap().contains("without saying how"));
        assert!(runs.lock_owner().is_none());
    }
}
