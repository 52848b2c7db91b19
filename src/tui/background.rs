//! The quit prompt's "detach": once the app's fit has stopped after its batch, the same
//! training continues in a detached `mednist train`, from the run's checkpoint.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::jobs::Continuation;
use crate::workspace::Workspace;

/// Starts `mednist train --detach` continuing `continuation`'s run; returns what to tell the
/// user: the run, its process and how to follow it.
pub fn continue_in_background(workspace: &Workspace, continuation: &Continuation) -> Result<String> {
    let program = std::env::current_exe().context("cannot find this program to start it in the background")?;
    let output = Command::new(&program)
        .arg("--workdir")
        .arg(workspace.root())
        .args(["--json", "train", "--detach"])
        .args(&continuation.flags)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let run = &continuation.run;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr.lines().rfind(|line| !line.trim().is_empty()).unwrap_or("no reason given");
        bail!("run {run} could not continue in the background: {}", why.trim_start_matches("error: "));
    }
    let started: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("run {run}: `mednist train --detach` said something unexpected"))?;
    let pid = started.get("pid").and_then(serde_json::Value::as_u64).unwrap_or_default();
    let run = started.get("run").and_then(serde_json::Value::as_str).unwrap_or(run);
    Ok(format!(
        "run {run} continues in the background (pid {pid}); the epoch that was in progress starts again there.\n\
         follow it with: mednist logs -f {run}"
    ))
}
