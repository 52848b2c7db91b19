//! The app's log file (`<workspace>/logs/tui.log`): nothing may be printed on the screen while
//! the app owns the terminal, so job messages, timings and panics go here.

use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

pub struct LogFile {
    file: Mutex<File>,
    path: PathBuf,
    started: Instant,
}

impl LogFile {
    /// Appends to `tui.log` in `dir`, creating both as needed.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create the log folder {}", dir.display()))?;
        let path = dir.join("tui.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?;
        let log = Self { file: Mutex::new(file), path, started: Instant::now() };
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        log.line(format_args!("mednist {} started (unix time {unix})", env!("CARGO_PKG_VERSION")));
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line, stamped with the seconds since the app started. Failures to log are
    /// ignored: the log must never take the app down.
    pub fn line(&self, message: impl Display) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if let Ok(mut file) = self.file.lock() {
            let _ = writeln!(file, "[{elapsed:9.3}s] {message}");
        }
    }
}
