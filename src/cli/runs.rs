//! `mednist runs`: the workspace's training runs, one line each; `runs rm NAME`; and
//! `runs compare A B ...`: their tables side by side and their curves overlaid.

use anyhow::{Result, anyhow};

use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::render::runs::{COMPARED, LISTING_HEADERS, SideBySide, curves, listing_cells};
use crate::runs::{RunStatus, RunSummary, Runs, RunsError, clock};
use crate::workspace::Workspace;

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Delete a run: its record, event log and checkpoints
    Rm { name: String },
    /// Compare runs: their epoch tables side by side and valid_loss / error_rate curves overlaid
    Compare {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(workspace: &Workspace, args: &RunsArgs, json: bool) -> Result<()> {
    let runs = Runs::open(workspace, &StderrProgress::new())?;
    match &args.command {
        None => list(&runs, json),
        Some(RunsCommand::Rm { name }) => remove(&runs, name, json),
        Some(RunsCommand::Compare { names }) => compare(&runs, names, json),
    }
}

fn list(runs: &Runs, json: bool) -> Result<()> {
    let summaries = runs.summaries()?;
    if json {
        return super::print_json(&serde_json::json!({ "current": runs.current(), "runs": summaries }));
    }
    if summaries.is_empty() {
        println!("no runs in {} yet: start one with `mednist train`", runs.dir().display());
        return Ok(());
    }
    let current = runs.current();
    let mut table = Table::new(LISTING_HEADERS.into_iter().chain(["started", "time"]));
    for summary in &summaries {
        let record = &summary.record;
        let timing = [record.started_at.clone(), clock::duration(record.seconds())];
        table.row(listing_cells(summary, current.as_deref()).into_iter().chain(timing));
    }
    print!("{}", table.render());
    println!("* the current run, which `mednist train` continues");
    for record in summaries.iter().map(|summary| &summary.record) {
        if let (RunStatus::Failed, Some(message)) = (record.status, &record.message) {
            println!("{} failed: {message}", record.name);
        }
    }
    Ok(())
}

fn remove(runs: &Runs, name: &str, json: bool) -> Result<()> {
    runs.remove(name).map_err(|error| match error.downcast::<RunsError>() {
        Ok(RunsError::Running { name, pid }) => {
            anyhow!("run {name} is training (pid {pid}): stop it first (kill {pid}), then remove it")
        }
        Ok(other) => other.into(),
        Err(error) => error,
    })?;
    if json {
        return super::print_json(&serde_json::json!({ "removed": name }));
    }
    println!("removed run {name}");
    Ok(())
}

fn compare(runs: &Runs, names: &[String], json: bool) -> Result<()> {
    let summaries = names.iter().map(|name| runs.summary(name)).collect::<Result<Vec<_>>>()?;
    if json {
        return super::print_json(&serde_json::json!({ "runs": summaries }));
    }
    let compared: Vec<&RunSummary> = summaries.iter().collect();
    let side_by_side = SideBySide::new(&compared);
    let mut table = Table::new(side_by_side.headers);
    for row in side_by_side.rows {
        table.row(row);
    }
    print!("{}", table.render());
    for (metric, value) in COMPARED {
        println!("\n{}", super::charts::curves_text(metric, &curves(&compared, value), (76, 14)));
    }
    Ok(())
}
