//! `mednist export [PATH]`: the lesson's `learn.export()`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::cli::progress::StderrProgress;
use crate::learn::device::DeviceChoice;
use crate::learn::open::open_saved;
use crate::workspace::Workspace;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where to write the model [default: export.mednist in the workspace]
    pub path: Option<PathBuf>,
}

pub fn run(workspace: &Workspace, args: &ExportArgs, json: bool) -> Result<()> {
    let learner = open_saved(workspace, DeviceChoice::Cpu, &StderrProgress::new())?;
    let path = args.path.clone().unwrap_or_else(|| workspace.export_file());
    learner.export(&path)?;
    let bytes = std::fs::metadata(&path)?.len();
    if json {
        return crate::cli::print_json(
            &json!({ "path": path, "bytes": bytes, "arch": learner.arch, "classes": learner.classes }),
        );
    }
    println!(
        "exported the {} ({} classes, {} epoch(s) trained) to {} ({:.1} MB): `mednist predict FILE...` uses it",
        learner.arch,
        learner.classes.len(),
        learner.epochs_done(),
        path.display(),
        bytes as f64 / 1e6
    );
    Ok(())
}
