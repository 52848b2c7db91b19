//! A run's event log, `events.jsonl`: every event the training emits, one JSON object a
//! line, appended as they come so that `mednist logs -f` (and a reconnecting front end) can
//! follow a training from another process.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::event::{Emit, Event};
use crate::job::CancelToken;

pub const EVENTS_FILE: &str = "events.jsonl";

/// Lines reach the file at least this often (and at every epoch), so a follower lags little.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// An [`Emit`] that appends every event to the log, then passes it on to `inner`.
///
/// A write that fails (a full disk) stops the training after the batch through `stop`; the
/// last epoch's checkpoint stands, and [`EventLog::failure`] says what went wrong.
pub struct EventLog<'a> {
    path: PathBuf,
    inner: &'a dyn Emit,
    stop: CancelToken,
    writer: Mutex<Writer>,
}

struct Writer {
    out: BufWriter<File>,
    flushed: Instant,
    failure: Option<String>,
}

impl<'a> EventLog<'a> {
    /// Appends to the log at `path` (created if absent).
    pub fn append(path: &Path, inner: &'a dyn Emit, stop: CancelToken) -> Result<Self> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let writer = Writer { out: BufWriter::new(file), flushed: Instant::now(), failure: None };
        Ok(Self { path: path.to_path_buf(), inner, stop, writer: Mutex::new(writer) })
    }

    /// Why the log could not be written, if it could not.
    pub fn failure(&self) -> Option<String> {
        self.writer.lock().expect("event log lock").failure.clone()
    }

    /// Writes out what is buffered; the failure, if writing failed at any point.
    pub fn close(&self) -> Option<String> {
        let mut writer = self.writer.lock().expect("event log lock");
        if writer.failure.is_none()
            && let Err(error) = writer.out.flush()
        {
            writer.failure = Some(format!("cannot write {}: {error}", self.path.display()));
        }
        writer.failure.clone()
    }

    fn record(&self, event: &Event) {
        let mut writer = self.writer.lock().expect("event log lock");
        if writer.failure.is_some() {
            return;
        }
        let mut line = serde_json::to_vec(event).expect("events serialise");
        line.push(b'\n');
        let due = !matches!(event, Event::Batch(_) | Event::Progress { .. }) || writer.flushed.elapsed() >= FLUSH_EVERY;
        let written = writer.out.write_all(&line).and_then(|()| if due { writer.out.flush() } else { Ok(()) });
        match written {
            Ok(()) if due => writer.flushed = Instant::now(),
            Ok(()) => {}
            Err(error) => {
                let message = format!("cannot write {}: {error}", self.path.display());
                writer.failure = Some(message.clone());
                drop(writer);
                self.stop.cancel();
                self.inner.warn(format!("{message}; stopping after this batch"));
            }
        }
    }
}

impl Emit for EventLog<'_> {
    fn emit(&self, event: Event) {
        self.record(&event);
        self.inner.emit(event);
    }
}

/// Reads a log as it grows: each call returns the events of the lines completed since.
pub struct EventReader {
    path: PathBuf,
    read: u64,
    partial: Vec<u8>,
    line: usize,
}

impl EventReader {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), read: 0, partial: Vec::new(), line: 0 }
    }

    /// The events of the lines written since the last call (none while the file is absent).
    pub fn read_new(&mut self) -> Result<Vec<Event>> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", self.path.display())),
        };
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(self.read))?;
        let mut bytes = std::mem::take(&mut self.partial);
        let appended = file.read_to_end(&mut bytes).with_context(|| format!("cannot read {}", self.path.display()))?;
        self.read += appended as u64;
        // A line being written (no newline yet) waits for the next call.
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |end| end + 1);
        self.partial = bytes.split_off(complete);
        let mut events = Vec::new();
        for line in bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            self.line += 1;
            let event = serde_json::from_slice(line)
                .with_context(|| format!("{} line {} is not an event", self.path.display(), self.line))?;
            events.push(event);
        }
        Ok(events)
    }
}

/// Every complete event in the log at `path` (none when it is absent).
pub fn read_all(path: &Path) -> Result<Vec<Event>> {
    EventReader::new(path).read_new()
}

/// Writes a whole log at once (a run migrated from before the registry).
pub fn write_all(path: &Path, events: impl IntoIterator<Item = Event>) -> Result<()> {
    let mut bytes = Vec::new();
    for event in events {
        serde_json::to_writer(&mut bytes, &event)?;
        bytes.push(b'\n');
    }
    crate::workspace::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BatchEnd, EpochRow};

    fn batch(batch: usize) -> Event {
        Event::Batch(BatchEnd { epoch: 0, batch, batches: 9, loss: 0.5, smooth_loss: 0.6, lr: 1e-3, seconds: 0.1 })
    }

    fn row() -> Event {
        Event::Epoch(EpochRow {
            epoch: 0,
            train_loss: 0.3,
            valid_loss: 0.2,
            error_rate: 0.1,
            accuracy: 0.9,
            seconds: 3.0,
            train_images_per_second: 10.0,
            data_wait_seconds: 0.0,
        })
    }

    #[test]
    fn a_follower_reads_each_completed_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let mut reader = EventReader::new(&path);
        assert!(reader.read_new().unwrap().is_empty(), "no file yet");
        let passed = Mutex::new(0);
        let count = |_| *passed.lock().unwrap() += 1;
        let log = EventLog::append(&path, &count, CancelToken::new()).unwrap();
        log.emit(batch(1));
        log.emit(row());
        assert_eq!(reader.read_new().unwrap(), vec![batch(1), row()], "an epoch row flushes");
        // Half a line, as a follower may catch a write in progress.
        let mut file = File::options().append(true).open(&path).unwrap();
        let line = serde_json::to_string(&batch(2)).unwrap();
        file.write_all(&line.as_bytes()[..10]).unwrap();
        assert!(reader.read_new().unwrap().is_empty());
        writeln!(file, "{}", &line[10..]).unwrap();
        assert_eq!(reader.read_new().unwrap(), vec![batch(2)]);
        assert_eq!(log.close(), None);
        assert_eq!(*passed.lock().unwrap(), 2);
    }

    #[test]
    fn a_full_disk_stops_the_training_with_the_message() {
        let stop = CancelToken::new();
        let warnings = Mutex::new(Vec::new());
        let emit = |event: Event| {
            if let Event::Log { message, .. } = event {
                warnings.lock().unwrap().push(message);
            }
        };
        let log = EventLog::append(Path::new("/dev/full"), &emit, stop.clone()).unwrap();
        log.emit(row());
        assert!(stop.is_cancelled());
        let failure = log.failure().unwrap();
        assert!(failure.contains("/dev/full") && failure.contains("No space left"), "{failure}");
        assert_eq!(log.close(), Some(failure));
        assert_eq!(warnings.into_inner().unwrap().len(), 1, "said once");
    }
}
