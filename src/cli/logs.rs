//! `mednist logs [-f] [RUN]`: a run's events as the training table (or JSON lines), read
//! from its event log; `-f` follows a running run until it ends.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::progress::StderrProgress;
use crate::cli::train::TrainRender;
use crate::event::Emit;
use crate::runs::event_log::{EVENTS_FILE, EventReader};
use crate::runs::{RunStatus, Runs};
use crate::workspace::Workspace;

/// How often a follower looks for new lines (the log is flushed at least every second).
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep printing as the run trains, until it ends
    #[arg(short, long)]
    pub follow: bool,
    /// The run [default: the current one]
    pub run: Option<String>,
}

pub fn run(workspace: &Workspace, args: &LogsArgs, json: bool) -> Result<()> {
    let runs = Runs::open(workspace, &StderrProgress::new())?;
    let name = match &args.run {
        Some(name) => name.clone(),
        None => match runs.current() {
            Some(name) => name,
            None => bail!("no runs in {} yet: start one with `mednist train`", runs.dir().display()),
        },
    };
    let mut record = runs.record(&name)?;
    let render = TrainRender::new(json);
    let mut reader = EventReader::new(&runs.run_dir(&name).join(EVENTS_FILE));
    loop {
        reader.read_new()?.into_iter().for_each(|event| render.emit(event));
        if !args.follow || record.status != RunStatus::Running {
            break;
        }
        std::thread::sleep(POLL);
        // Read after the status, so that the lines written before it ended are all shown.
        record = runs.record(&name)?;
    }
    render.finish();
    let ended = match &record.message {
        Some(message) => format!("run {name} {}: {message}", record.status),
        None => format!("run {name} {}", record.status),
    };
    if args.follow && record.status == RunStatus::Failed {
        bail!(ended);
    }
    eprintln!("{ended}");
    Ok(())
}
