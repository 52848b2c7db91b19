//! `mednist runs`: the workspace's training runs, one line each; `runs rm NAME`; and
//! `runs compare A B ...`: their tables side by side and their curves overlaid.

use std::collections::BTreeSet;

use anyhow::{Result, anyhow};

use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
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
    let summaries = runs.names()?.iter().map(|name| runs.summary(name)).collect::<Result<Vec<_>>>()?;
    if json {
        return super::print_json(&serde_json::json!({ "current": runs.current(), "runs": summaries }));
    }
    if summaries.is_empty() {
        println!("no runs in {} yet: start one with `mednist train`", runs.dir().display());
        return Ok(());
    }
    let current = runs.current();
    let mut table =
        Table::new(["run", "status", "arch", "epochs", "best", "valid_loss", "error_rate", "started", "time"]);
    for summary in &summaries {
        let record = &summary.record;
        let best = summary.best.as_ref();
        let marked = if current.as_deref() == Some(record.name.as_str()) { "*" } else { "" };
        table.row([
            format!("{}{marked}", record.name),
            record.status.to_string(),
            record.arch.clone().unwrap_or_else(|| "-".into()),
            summary.rows.len().to_string(),
            best.map_or("-".into(), |row| row.epoch.to_string()),
            best.map_or("-".into(), |row| format!("{:.6}", row.valid_loss)),
            best.map_or("-".into(), |row| format!("{:.6}", row.error_rate)),
            record.started_at.clone(),
            clock::duration(record.seconds()),
        ]);
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
    print!("{}", side_by_side(&summaries).render());
    let curve = |metric: fn(&crate::event::EpochRow) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        let points = |summary: &RunSummary| summary.rows.iter().map(|row| (row.epoch as f64, metric(row))).collect();
        summaries.iter().map(|summary| (summary.record.name.clone(), points(summary))).collect()
    };
    for (title, curves) in [("valid_loss", curve(|row| row.valid_loss)), ("error_rate", curve(|row| row.error_rate))] {
        println!("\n{}", super::charts::curves_text(title, &curves, (76, 14)));
    }
    Ok(())
}

/// One row per epoch, and per run its valid_loss and error_rate (`-` where it has none).
fn side_by_side(summaries: &[RunSummary]) -> Table {
    let mut headers = vec!["epoch".to_string()];
    for summary in summaries {
        headers.push(format!("{} valid_loss", summary.record.name));
        headers.push(format!("{} error_rate", summary.record.name));
    }
    let mut table = Table::new(headers);
    let epochs: BTreeSet<usize> = summaries.iter().flat_map(|s| s.rows.iter().map(|row| row.epoch)).collect();
    for epoch in epochs {
        let mut cells = vec![epoch.to_string()];
        for summary in summaries {
            match summary.rows.iter().rfind(|row| row.epoch == epoch) {
                Some(row) => cells.extend([format!("{:.6}", row.valid_loss), format!("{:.6}", row.error_rate)]),
                None => cells.extend(["-".to_string(), "-".to_string()]),
            }
        }
        table.row(cells);
    }
    table
}
