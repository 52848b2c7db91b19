//! Renders step events on stderr: a progress bar when stderr is a terminal, and log lines.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::{Emit, Event, Level, Stage};

/// An [`Emit`] for headless commands. Bars are hidden when stderr is not a terminal
/// (CI logs, pipes), so the output there is the log lines alone.
pub struct StderrProgress {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl StderrProgress {
    pub fn new() -> Self {
        Self { bar: Mutex::new(None), quiet: false }
    }

    /// Shows warnings only: for `--json`, where stdout carries the result.
    pub fn quiet() -> Self {
        Self { bar: Mutex::new(None), quiet: true }
    }

    fn start(&self, stage: Stage, total: Option<u64>) {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = match (stage.counts_bytes(), total.is_some()) {
            (true, true) => "{msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            (true, false) => "{msg:12} {spinner} {bytes} {bytes_per_sec}",
            (false, true) => "{msg:12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
            (false, false) => "{msg:12} {spinner} {pos}",
        };
        bar.set_style(ProgressStyle::with_template(template).expect("static template").progress_chars("=> "));
        bar.set_message(stage.label());
        if let Some(old) = self.bar.lock().expect("progress lock").replace(bar) {
            old.finish_and_clear();
        }
    }
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Emit for StderrProgress {
    fn emit(&self, event: Event) {
        match event {
            Event::StageStarted { stage, total } if !self.quiet => self.start(stage, total),
            Event::Progress { done, total, .. } => {
                if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
                    if let Some(total) = total {
                        bar.set_length(total);
                    }
                    bar.set_position(done);
                }
            }
            Event::StageFinished { .. } => {
                if let Some(bar) = self.bar.lock().expect("progress lock").take() {
                    bar.finish_and_clear();
                }
            }
            Event::Log { level, message } => {
                let line = match level {
                    Level::Info if self.quiet => return,
                    Level::Info => message,
                    Level::Warn => format!("warning: {message}"),
                };
                match self.bar.lock().expect("progress lock").as_ref() {
                    Some(bar) => bar.suspend(|| eprintln!("{line}")),
                    None => eprintln!("{line}"),
                }
            }
            _ => {}
        }
    }
}
