//! One training writes to a workspace at a time: `runs/lock.json` names its pid and run.
//!
//! The lock is a complete file hard-linked into place, so it appears atomically with its
//! contents and only one of two racing processes gets it (link fails on an existing name,
//! as O_EXCL does). A lock whose process has died is taken over.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{Runs, RunsError, is_alive};
use crate::workspace::{read_json, write_atomic};

const LOCK_FILE: &str = "lock.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockOwner {
    pub pid: u32,
    /// The run it trains; empty while the run is being chosen.
    pub run: String,
}

/// The workspace's training lock, held until dropped (or handed over).
#[derive(Debug)]
pub struct TrainLock {
    path: PathBuf,
    owner: LockOwner,
    held: bool,
}

/// A lock left by a process that had died, taken over.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenOver(pub LockOwner);

impl Runs {
    /// Takes the lock for this process, or fails with [`RunsError::Running`] naming the run
    /// and the process holding it.
    pub fn lock(&self) -> Result<(TrainLock, Option<TakenOver>)> {
        let path = self.dir().join(LOCK_FILE);
        let owner = LockOwner { pid: std::process::id(), run: String::new() };
        let mut taken_over = None;
        // Twice at most: once more after removing a dead process's lock.
        for _ in 0..2 {
            if place(&path, &owner)? {
                return Ok((TrainLock { path, owner, held: true }, taken_over));
            }
            let Ok(holder) = read_json::<LockOwner>(&path) else { continue };
            if is_alive(holder.pid) {
                return Err(RunsError::Running { name: holder.run, pid: holder.pid }.into());
            }
            let _ = fs::remove_file(&path);
            taken_over = Some(TakenOver(holder));
        }
        anyhow::bail!("cannot take the training lock {}: another process keeps replacing it", path.display())
    }

    /// The lock a parent process took and is handing to this one (a detached training):
    /// it names this process or the one that started it.
    pub fn adopt_lock(&self, run: &str) -> Result<TrainLock> {
        let path = self.dir().join(LOCK_FILE);
        let holder: LockOwner = read_json(&path)?;
        let me = std::process::id();
        if holder.pid != me && holder.pid != std::os::unix::process::parent_id() {
            return Err(RunsError::Running { name: holder.run, pid: holder.pid }.into());
        }
        let mut lock = TrainLock { path, owner: LockOwner { pid: me, run: run.into() }, held: true };
        lock.write()?;
        Ok(lock)
    }

    /// Who holds the lock, when a live process does.
    pub fn lock_owner(&self) -> Option<LockOwner> {
        read_json::<LockOwner>(&self.dir().join(LOCK_FILE)).ok().filter(|owner| is_alive(owner.pid))
    }
}

impl TrainLock {
    /// Records the run being trained.
    pub fn set_run(&mut self, run: &str) -> Result<()> {
        self.owner.run = run.into();
        self.write()
    }

    /// Gives the lock to process `pid`, which releases it when it ends.
    pub fn hand_over(mut self, pid: u32) -> Result<()> {
        self.owner.pid = pid;
        self.write()?;
        self.held = false;
        Ok(())
    }

    fn write(&mut self) -> Result<()> {
        write_atomic(&self.path, &serde_json::to_vec(&self.owner)?)
    }
}

impl Drop for TrainLock {
    fn drop(&mut self) {
        let still_ours = read_json::<LockOwner>(&self.path).is_ok_and(|holder| holder.pid == self.owner.pid);
        if self.held && still_ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Puts a lock naming `owner` at `path` unless one is there: `false` when one is.
fn place(path: &Path, owner: &LockOwner) -> Result<bool> {
    let dir = path.parent().expect("the lock is inside runs/");
    let staged = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    fs::write(staged.path(), serde_json::to_vec(owner)?).with_context(|| format!("cannot write {}", path.display()))?;
    match fs::hard_link(staged.path(), path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}
