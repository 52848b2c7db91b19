//! Where datasets, splits, training runs and logs live.
//!
//! ```text
//! <workspace>/
//!   dataset/        the active dataset: one sub-folder per class
//!   dataset.json    where it came from (source, checksum, image count)
//!   dataset-settings.json  how its files become images: the window, the frames (data::settings)
//!   split.json      the recorded train/valid split that training uses
//!   downloads/      downloaded archives; NAME.part while incomplete (resumed next time)
//!   runs/NAME/      one training run: its record, event log and checkpoint (crate::runs)
//!   runs/current    a link to the run being trained: `mednist train` resumes its checkpoint
//!   models/NAME/    checkpoints kept by `mednist train --save NAME` (the lesson's learn.save)
//!   logs/           log files
//!   tmp/            staging for extraction; same filesystem, so the final rename is atomic
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::remedy::{Remedy, fixable};

/// Environment variable that overrides the default workspace location.
pub const HOME_ENV: &str = "MEDNIST_HOME";

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// `explicit` (from `--workdir`) wins, then `$MEDNIST_HOME`, then the user's data dir.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Self> {
        let root = match explicit.or_else(|| std::env::var_os(HOME_ENV).map(PathBuf::from)) {
            Some(root) => root,
            None => directories::ProjectDirs::from("", "", "mednist")
                .context("cannot find a home directory for the workspace; pass --workdir or set MEDNIST_HOME")?
                .data_dir()
                .to_path_buf(),
        };
        Ok(Self::at(root))
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dataset_dir(&self) -> PathBuf {
        self.root.join("dataset")
    }

    pub fn dataset_info_file(&self) -> PathBuf {
        self.root.join("dataset.json")
    }

    pub fn dataset_settings_file(&self) -> PathBuf {
        self.root.join("dataset-settings.json")
    }

    pub fn split_file(&self) -> PathBuf {
        self.root.join("split.json")
    }

    pub fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// The learner being trained: `mednist train` resumes from the checkpoint here. A link
    /// to the current run's folder (crate::runs), or a real folder in a workspace that no
    /// training has used since before runs.
    pub fn current_run_dir(&self) -> PathBuf {
        self.root.join("runs").join("current")
    }

    /// A checkpoint kept under a name (`--save NAME`, `--load NAME`).
    pub fn saved_model_dir(&self, name: &str) -> Result<PathBuf> {
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.starts_with('.');
        if !valid {
            anyhow::bail!("model name {name:?} is not usable: use letters, digits, '-', '_' and '.'");
        }
        Ok(self.root.join("models").join(name))
    }

    /// Where `mednist export` writes and `mednist predict` reads by default.
    pub fn export_file(&self) -> PathBuf {
        self.root.join("export.mednist")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// A fresh staging directory inside the workspace (removed when dropped).
    pub fn staging_dir(&self) -> Result<tempfile::TempDir> {
        let tmp = self.root.join("tmp");
        fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        tempfile::Builder::new()
            .prefix("staging-")
            .tempdir_in(&tmp)
            .with_context(|| format!("cannot create a staging folder in {}", tmp.display()))
    }

    /// The active dataset folder, or a clear error telling how to get one.
    pub fn require_dataset(&self) -> Result<PathBuf> {
        let dir = self.dataset_dir();
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(fixable(format!("no dataset in workspace {}", self.root.display()), [Remedy::FetchFirst]))
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file().sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file written by [`write_json_atomic`], naming the file on error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid: delete it or run the step again", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        write_json_atomic(&file, &vec![1, 2]).unwrap();
        write_json_atomic(&file, &vec![3]).unwrap();
        let back: Vec<i32> = read_json(&file).unwrap();
        assert_eq!(back, vec![3]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn floats_read_back_bit_for_bit() {
        // serde_json's default float parsing can be one unit in the last place off; a resumed
        // learner's history and schedule must be the ones saved.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floats.json");
        let values = vec![3.6820139357961903f64, 0.1 + 0.2, 1e-3 / 25.0, 2.0f64.sqrt(), 1e-300 / 3.0];
        write_json_atomic(&file, &values).unwrap();
        let back: Vec<f64> = read_json(&file).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn explicit_workdir_wins_over_env() {
        let ws = Workspace::locate(Some(PathBuf::from("/x/y"))).unwrap();
        assert_eq!(ws.root(), Path::new("/x/y"));
        assert_eq!(ws.dataset_dir(), Path::new("/x/y/dataset"));
    }
}
