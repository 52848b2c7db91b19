//! `mednist train --detach`: the same training in a background process of its own session,
//! so that closing the terminal or dropping the SSH connection does not stop it.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::runs::recording::Recording;
use crate::runs::{Runs, TRAIN_LOG_FILE};

/// Starts this program again with the same arguments, less `--detach`, training in the run
/// `recording` records (its lock goes to the new process), and returns once it has started.
pub fn launch(runs: &Runs, recording: Recording, json: bool) -> Result<()> {
    let name = recording.name().to_string();
    let started = spawn(runs, &name);
    let (pid, log_path) = match started {
        Ok(started) => started,
        Err(error) => return Err(recording.fail(error, super::errors::describe)),
    };
    recording.hand_over(pid)?;
    if json {
        super::print_json(&serde_json::json!({ "run": name, "pid": pid, "log": log_path }))
    } else {
        println!("run {name} is training in the background (pid {pid}), writing to {}", log_path.display());
        println!("follow it with: mednist logs -f {name}");
        Ok(())
    }
}

/// The background process, in a session of its own: its pid and the log it writes to.
fn spawn(runs: &Runs, name: &str) -> Result<(u32, std::path::PathBuf)> {
    let log_path = runs.run_dir(name).join(TRAIN_LOG_FILE);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let program = std::env::current_exe().context("cannot find this program to start it in the background")?;
    let args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .filter(|arg| arg != "--detach")
        .chain([OsString::from("--detached-run"), OsString::from(name)])
        .collect();
    let mut command = Command::new(&program);
    command.args(&args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid and signal.
    unsafe {
        command.pre_exec(|| {
            // A session of its own: no controlling terminal, so no hang-up when it closes.
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let child = command.spawn().with_context(|| format!("cannot start {}", program.display()))?;
    Ok((child.id(), log_path))
}
