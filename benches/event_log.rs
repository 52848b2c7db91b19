//! What the run's event log costs the training per batch: a training epoch emits one `batch` event per step, each serialised and appended to `events.jsonl`
//! (flushed at least once a second) before the front end sees it.
//!
//!     cargo bench --bench event_log -- [--events 200000]
//!
//! Prints the median time and the bytes per batch event over five runs, written to a file
//! in the system's temporary folder (the disk a workspace would be on may be slower).

use std::time::Instant;

use mednist::event::{BatchEnd, Emit, Event};
use mednist::job::CancelToken;
use mednist::runs::event_log::EventLog;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut events = 200_000usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--events" => events = args.next().and_then(|n| n.parse().ok()).expect("--events takes a count"),
            "--bench" => {}
            other => panic!("unknown argument {other} (takes --events N)"),
        }
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut timings = Vec::new();
    let mut bytes = 0;
    for run in 0..5 {
        let path = dir.path().join(format!("events-{run}.jsonl"));
        let discard = |_: Event| {};
        let log = EventLog::append(&path, &discard, CancelToken::new()).expect("a writable log");
        // Steps in an epoch of the full MedNIST's training split at batch size 64 (47,164 images).
        let batches = 737;
        let started = Instant::now();
        for step in 0..events {
            log.emit(Event::Batch(BatchEnd {
                epoch: step / batches,
                batch: step % batches + 1,
                batches,
                loss: 1.0 / (step + 1) as f64,
                smooth_loss: 0.5 + 1.0 / (step + 2) as f64,
                lr: 1e-3 * (step % 997) as f64 / 997.0,
                seconds: step as f64 * 0.8,
            }));
        }
        assert_eq!(log.close(), None, "the log could not be written");
        timings.push(started.elapsed().as_secs_f64() / events as f64);
        bytes = std::fs::metadata(&path).expect("the log was written").len();
    }
    timings.sort_by(f64::total_cmp);
    let median = timings[timings.len() / 2];
    println!(
        "event log: {:.2} µs and {:.0} bytes per batch event ({events} events, median of 5)",
        median * 1e6,
        bytes as f64 / events as f64
    );
}
