//! The workspace's runs, read for the Train pane's runs view off the UI thread: on a short
//! thread of its own rather than the kernel's queue, which a fit holds for its whole length
//! (runs are compared while one trains).

use std::thread;

use anyhow::Result;
use tokio::sync::mpsc::UnboundedSender;

use super::{JobMessage, Output};
use crate::runs::{RunSummary, Runs};
use crate::tui::panes::PaneId;

/// Every run of the workspace, oldest first, and which one `mednist train` continues.
#[derive(Debug, Clone)]
pub struct RunsListing {
    pub runs: Vec<RunSummary>,
    pub current: Option<String>,
}

impl RunsListing {
    pub fn read(runs: &Runs) -> Result<Self> {
        Ok(Self { runs: runs.summaries()?, current: runs.current() })
    }
}

/// Reads the runs on a thread of its own; the listing, or why it could not be read, comes to
/// the Train pane as [`Output::Runs`].
pub fn read_in_background(runs: Runs, messages: UnboundedSender<JobMessage>) -> std::io::Result<()> {
    thread::Builder::new().name("mednist-runs".into()).spawn(move || {
        let listing = RunsListing::read(&runs).map_err(|error| crate::tui::errors::describe(&error));
        let _ = messages.send(JobMessage::Output { pane: PaneId::Train, output: Output::Runs(listing) });
    })?;
    Ok(())
}
