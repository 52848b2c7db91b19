//! Showing a training that another process runs in the workspace (a detached `mednist train`):
//! its event log is followed on a thread of its own and fed to the Train pane as its events,
//! through the channel the kernel's messages take.

use std::thread;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc::UnboundedSender;

use super::jobs::{JobMessage, Outcome};
use super::panes::PaneId;
use crate::runs::event_log::{EVENTS_FILE, EventReader};
use crate::runs::{RunStatus, Runs};

/// How often the follower looks for new lines (the log is flushed at least every second).
const POLL: Duration = Duration::from_millis(300);

/// A run another live process trains in this workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRun {
    pub name: String,
    pub pid: u32,
    /// Started with `--detach`, not in a terminal of its own.
    pub detached: bool,
}

impl OtherRun {
    /// "run NAME, pid N, detached".
    pub fn describe(&self) -> String {
        let how = if self.detached { "detached" } else { "in another process" };
        format!("run {}, pid {}, {how}", self.name, self.pid)
    }
}

/// The run a live process other than this one trains in the workspace, if any.
pub fn find(runs: &Runs) -> Option<OtherRun> {
    let owner = runs.lock_owner().filter(|owner| owner.pid != std::process::id() && !owner.run.is_empty())?;
    let record = runs.record(&owner.run).ok()?;
    let command = record.settings.get("command").and_then(|command| command.as_array());
    let detached = command.is_some_and(|args| args.iter().any(|arg| arg == "--detached-run"));
    Some(OtherRun { name: owner.run, pid: owner.pid, detached })
}

/// Follows `run`'s event log from its start on a thread of its own: each event goes to
/// `messages` as the Train pane's, and once the run has ended a `Finished` says how.
pub fn follow(runs: Runs, run: OtherRun, messages: UnboundedSender<JobMessage>) -> std::io::Result<()> {
    thread::Builder::new().name("mednist-attach".into()).spawn(move || {
        let outcome = relay(&runs, &run, &messages).unwrap_or_else(|error| Outcome::Failed(format!("{error:#}")));
        let _ = messages.send(JobMessage::Finished { pane: PaneId::Train, outcome });
    })?;
    Ok(())
}

fn relay(runs: &Runs, run: &OtherRun, messages: &UnboundedSender<JobMessage>) -> Result<Outcome> {
    let mut reader = EventReader::new(&runs.run_dir(&run.name).join(EVENTS_FILE));
    let mut record = runs.record(&run.name)?;
    loop {
        for event in reader.read_new()? {
            if messages.send(JobMessage::Event { pane: PaneId::Train, event }).is_err() {
                anyhow::bail!("the app has closed");
            }
        }
        if record.status != RunStatus::Running {
            break;
        }
        thread::sleep(POLL);
        // Read after the status, so that the lines written before it ended are all passed on.
        record = runs.record(&run.name)?;
    }
    Ok(match record.status {
        RunStatus::Finished => Outcome::Done,
        RunStatus::Stopped => Outcome::Cancelled,
        RunStatus::Failed | RunStatus::Running => Outcome::Failed(format!(
            "run {} failed: {}",
            run.name,
            record.message.as_deref().unwrap_or("no reason recorded")
        )),
    })
}
