//! One pane per notebook step. Each is a small component: its settings ([`Form`]), what it
//! shows of its last run ([`Cell`] plus its own output), `on_output` for results and `render`.

/// The [`Pane`] accessors of a pane struct with a `cell` field: `pane!(PaneId::Setup)` in its
/// `impl Pane`.
macro_rules! pane {
    ($id:expr) => {
        fn id(&self) -> PaneId {
            $id
        }

        fn cell(&self) -> &Cell {
            &self.cell
        }

        fn cell_mut(&mut self) -> &mut Cell {
            &mut self.cell
        }
    };
}

/// [`pane!`] for a pane struct that also has a `form` field of settings.
macro_rules! pane_with_form {
    ($id:expr) => {
        pane!($id);

        fn form(&self) -> Option<&crate::tui::form::Form> {
            Some(&self.form)
        }

        fn form_mut(&mut self) -> Option<&mut crate::tui::form::Form> {
            Some(&mut self.form)
        }
    };
}

pub mod classes;
pub mod fetch;
pub mod interpret;
pub mod learner;
pub mod lr_find;
pub mod preview;
pub mod setup;
pub mod split;
pub mod train;
pub mod window;

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;

use super::form::Form;
use super::jobs::{Outcome, Output};
use super::keys::{Command, Key};
use super::widgets::{ImageMaker, Tile};
use crate::event::{Event, Level, Stage};
use crate::render::theme::Theme;

/// The notebook's steps, in order; the number keys 1-9 select them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaneId {
    Setup,
    Fetch,
    Classes,
    Split,
    Preview,
    Learner,
    Train,
    Interpret,
    LrFind,
}

impl PaneId {
    pub const ALL: [PaneId; 9] = [
        PaneId::Setup,
        PaneId::Fetch,
        PaneId::Classes,
        PaneId::Split,
        PaneId::Preview,
        PaneId::Learner,
        PaneId::Train,
        PaneId::Interpret,
        PaneId::LrFind,
    ];

    /// 1-based, as the keys and the sidebar number them.
    pub fn number(self) -> usize {
        PaneId::ALL.iter().position(|id| *id == self).expect("every pane is listed") + 1
    }

    pub fn from_number(number: usize) -> Option<Self> {
        number.checked_sub(1).and_then(|index| PaneId::ALL.get(index).copied())
    }

    pub fn title(self) -> &'static str {
        match self {
            PaneId::Setup => "Setup",
            PaneId::Fetch => "Fetch",
            PaneId::Classes => "Classes",
            PaneId::Split => "Split",
            PaneId::Preview => "Preview",
            PaneId::Learner => "Learner",
            PaneId::Train => "Train",
            PaneId::Interpret => "Interpret",
            PaneId::LrFind => "LR find",
        }
    }
}

/// Where a step stands, as a notebook cell shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    NotRun,
    Running,
    Done,
    /// Stopped on request.
    Cancelled,
    Failed(String),
}

/// Progress of the stage a running step is in (downloading, scanning, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct StageProgress {
    pub stage: Stage,
    pub done: u64,
    pub total: Option<u64>,
    pub started: Instant,
    pub updated: Instant,
}

impl StageProgress {
    /// Units per second so far.
    pub fn rate(&self) -> Option<f64> {
        let seconds = self.updated.duration_since(self.started).as_secs_f64();
        (seconds > 0.0 && self.done > 0).then(|| self.done as f64 / seconds)
    }

    /// Seconds left at the rate so far.
    pub fn eta_seconds(&self) -> Option<f64> {
        Some(self.total?.saturating_sub(self.done) as f64 / self.rate()?)
    }
}

/// What every pane shows of its step: the run counter `[n]`, the status, the stage in
/// progress and the step's log lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The app-wide run number of this cell's last run, as a notebook's `In [n]`.
    pub execution: Option<usize>,
    pub status: Status,
    pub stage: Option<StageProgress>,
    pub logs: Vec<(Level, String)>,
}

/// Log lines a cell keeps (the log file has them all).
const LOGS_KEPT: usize = 20;

impl Default for Cell {
    fn default() -> Self {
        Self { execution: None, status: Status::NotRun, stage: None, logs: Vec::new() }
    }
}

impl Cell {
    pub fn start(&mut self, execution: usize) {
        *self = Self { execution: Some(execution), status: Status::Running, ..Self::default() };
    }

    pub fn apply(&mut self, event: &Event, now: Instant) {
        match event {
            Event::StageStarted { stage, total } => {
                self.stage = Some(StageProgress { stage: *stage, done: 0, total: *total, started: now, updated: now });
            }
            Event::Progress { stage, done, total } => match &mut self.stage {
                Some(progress) if progress.stage == *stage => {
                    progress.done = *done;
                    progress.total = total.or(progress.total);
                    progress.updated = now;
                }
                _ => {
                    self.stage =
                        Some(StageProgress { stage: *stage, done: *done, total: *total, started: now, updated: now })
                }
            },
            Event::StageFinished { .. } => self.stage = None,
            Event::Log { level, message } => {
                self.logs.push((*level, message.clone()));
                if self.logs.len() > LOGS_KEPT {
                    self.logs.remove(0);
                }
            }
            _ => {}
        }
    }

    pub fn finish(&mut self, outcome: &Outcome) {
        self.stage = None;
        self.status = match outcome {
            Outcome::Done => Status::Done,
            Outcome::Cancelled => Status::Cancelled,
            Outcome::Failed(message) => Status::Failed(message.clone()),
        };
    }
}

/// What a pane did with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneKey {
    Ignored,
    Handled,
    /// Run the pane's step (as Enter does).
    Run,
    /// Read the workspace's runs for the pane, in the background (its runs view opened).
    ReadRuns,
    /// Nothing to do; the footer says why.
    Refused(&'static str),
}

pub trait Pane {
    fn id(&self) -> PaneId;
    fn cell(&self) -> &Cell;
    fn cell_mut(&mut self) -> &mut Cell;

    fn form(&self) -> Option<&Form> {
        None
    }

    fn form_mut(&mut self) -> Option<&mut Form> {
        None
    }

    /// The lesson's code this step stands for, with the pane's settings filled in: the
    /// cell's "input".
    fn code(&self) -> String;

    /// The pane's own keys in the view it shows (declared once: they feed the handler, the
    /// help and the footer).
    fn keys(&self) -> &'static [Key] {
        &[]
    }

    /// Every key the pane answers in any of its views, for the help.
    fn help_keys(&self) -> &'static [Key] {
        self.keys()
    }

    /// One of [`Pane::keys`]'s commands was pressed.
    fn command(&mut self, _command: Command) -> PaneKey {
        PaneKey::Ignored
    }

    /// A library event of this pane's running step (the [`Cell`] has already taken its share).
    fn on_event(&mut self, _event: &Event) {}

    fn on_output(&mut self, _output: Output, _images: &ImageMaker) {}

    /// The pane's images, shown or not, to hand them back when encoded.
    fn tiles_mut(&mut self) -> Vec<&mut Tile> {
        Vec::new()
    }

    /// The step's output, below the settings.
    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme);
}
