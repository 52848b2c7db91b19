//! The app's state: the panes, which one is shown, which step runs. Keys become [`Action`]s
//! for the run loop, job messages update the panes, and `render` draws it all. Nothing here
//! touches the terminal or runs a step, so tests drive it with made-up keys and events.

mod render;

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};
use ratatui_image::picker::Picker;
use tokio::sync::mpsc::UnboundedSender;

use super::attach::OtherRun;
use super::form::Form;
use super::jobs::{Continuation, JobMessage, JobRequest, Output};
use super::keys::{self, Command, Key};
use super::panes::classes::ClassesPane;
use super::panes::fetch::FetchPane;
use super::panes::interpret::InterpretPane;
use super::panes::learner::LearnerPane;
use super::panes::lr_find::LrFindPane;
use super::panes::preview::PreviewPane;
use super::panes::setup::SetupPane;
use super::panes::split::SplitPane;
use super::panes::train::TrainPane;
use super::panes::{Pane, PaneId, PaneKey};
use super::widgets::{Encoded, ImageMaker};
use crate::render::theme::Theme;

const SIDEBAR_WIDTH: u16 = 20;
/// Log lines of a step shown above its output.
const LOG_LINES_SHOWN: usize = 2;
/// Lines an error message may take before it is cut.
const ERROR_LINES_SHOWN: usize = 6;

/// What the run loop should do after a key.
#[derive(Debug, Clone)]
// One Action per key press, moved once: boxing the request would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    Run(JobRequest),
    /// Stop the running step (training stops after the current batch).
    Cancel,
    /// Leave now; the loop stops any running step.
    Quit,
    /// See whether another process trains in the workspace, to show it ([`App::attach`]).
    LookForOtherRun,
    /// Ask the training of process `pid` to stop after its current batch (SIGINT, as Ctrl-C).
    StopOtherRun(u32),
    /// Read the workspace's runs for the Train pane's runs view, off this thread; they come
    /// back as its [`Output::Runs`].
    ReadRuns,
}

/// What to do once the app has closed.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterExit {
    Nothing,
    /// Continue the stopped fit in a detached `mednist train`.
    ContinueInBackground(Continuation),
    /// The background was asked for, but the fit ended (finished or failed) instead of stopping.
    NothingToContinue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    ConfirmQuit,
    /// The active step's lesson note, where the pane has no room for it.
    Lesson,
}

/// Every pane, by step.
#[derive(Default)]
pub struct Panes {
    pub setup: SetupPane,
    pub fetch: FetchPane,
    pub classes: ClassesPane,
    pub split: SplitPane,
    pub preview: PreviewPane,
    pub learner: LearnerPane,
    pub train: TrainPane,
    pub interpret: InterpretPane,
    pub lr_find: LrFindPane,
}

impl Panes {
    pub fn get(&self, id: PaneId) -> &dyn Pane {
        match id {
            PaneId::Setup => &self.setup,
            PaneId::Fetch => &self.fetch,
            PaneId::Classes => &self.classes,
            PaneId::Split => &self.split,
            PaneId::Preview => &self.preview,
            PaneId::Learner => &self.learner,
            PaneId::Train => &self.train,
            PaneId::Interpret => &self.interpret,
            PaneId::LrFind => &self.lr_find,
        }
    }

    pub fn get_mut(&mut self, id: PaneId) -> &mut dyn Pane {
        match id {
            PaneId::Setup => &mut self.setup,
            PaneId::Fetch => &mut self.fetch,
            PaneId::Classes => &mut self.classes,
            PaneId::Split => &mut self.split,
            PaneId::Preview => &mut self.preview,
            PaneId::Learner => &mut self.learner,
            PaneId::Train => &mut self.train,
            PaneId::Interpret => &mut self.interpret,
            PaneId::LrFind => &mut self.lr_find,
        }
    }

    /// What running step `id` means with the panes' current settings.
    fn request(&mut self, id: PaneId) -> Result<JobRequest, String> {
        match id {
            PaneId::Setup => Ok(JobRequest::Setup),
            PaneId::Fetch => self.fetch.request(),
            PaneId::Classes => self.classes.request(),
            PaneId::Split => self.split.request(),
            PaneId::Preview => self.preview.request(),
            PaneId::Learner => self.learner.request(),
            PaneId::Train => self.train.request(self.learner.options()),
            PaneId::Interpret => self.interpret.request(self.learner.options()),
            PaneId::LrFind => self.lr_find.request(self.learner.options()),
        }
    }
}

pub struct App {
    theme: Theme,
    images: ImageMaker,
    pub panes: Panes,
    active: PaneId,
    running: Option<PaneId>,
    /// Runs so far, app-wide: the next run is `In [executions + 1]`.
    executions: usize,
    overlay: Option<Overlay>,
    /// Waiting for the running step to stop before leaving.
    quitting: bool,
    /// Leaving by continuing the training in the background (the quit prompt's `d`).
    detach_on_exit: bool,
    /// The training another process runs, shown in the Train pane.
    attached: Option<OtherRun>,
    /// Esc has asked the attached training to stop.
    stop_asked: bool,
    /// A one-off message in the footer, until the next key.
    notice: Option<String>,
    /// The screen must be cleared before the next draw: images drawn by a graphics protocol
    /// live outside ratatui's buffer and would otherwise stay behind.
    needs_clear: bool,
    /// Lesson notes are shown below the cells that have room for them (`l` hides them).
    lesson_shown: bool,
    /// Whether the last frame had room for the active step's note.
    note_fits: bool,
}

impl App {
    pub fn new(theme: Theme, picker: Picker) -> Self {
        Self {
            theme,
            images: ImageMaker::new(picker),
            panes: Panes::default(),
            active: PaneId::Setup,
            running: None,
            executions: 0,
            overlay: None,
            quitting: false,
            detach_on_exit: false,
            attached: None,
            stop_asked: false,
            notice: None,
            needs_clear: false,
            lesson_shown: true,
            note_fits: false,
        }
    }

    /// Uses the terminal's graphics protocol (detected after the first frame) from now on.
    pub fn set_picker(&mut self, picker: Picker) {
        self.images.set_picker(picker);
    }

    /// How images are drawn, for the log.
    pub fn image_protocol(&self) -> String {
        self.images.describe()
    }

    /// Resizes and encodes images on a worker thread from now on; they come back through
    /// `done`, to be passed to [`App::image_encoded`].
    pub fn encode_images_on_worker(&mut self, done: UnboundedSender<Encoded>) -> std::io::Result<()> {
        self.images.encode_on_worker(done)
    }

    /// An image the worker encoded: its tile draws it from the next frame on.
    pub fn image_encoded(&mut self, encoded: Encoded) {
        let mut encoded = Some(encoded);
        for id in PaneId::ALL {
            for tile in self.panes.get_mut(id).tiles_mut() {
                encoded = encoded.and_then(|e| tile.accept(e));
            }
        }
    }

    pub fn active(&self) -> PaneId {
        self.active
    }

    pub fn running(&self) -> Option<PaneId> {
        self.running
    }

    pub fn overlay(&self) -> Option<Overlay> {
        self.overlay
    }

    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    pub fn attached(&self) -> Option<&OtherRun> {
        self.attached.as_ref()
    }

    /// A message in the footer, until the next key.
    pub fn say(&mut self, notice: String) {
        self.notice = Some(notice);
    }

    /// Shows `run`, which another process trains, in the Train pane; its events then come as
    /// the pane's and a `Finished` ends it. Called before anything runs, on
    /// [`Action::LookForOtherRun`], or in place of a Train step just asked for (which then
    /// does not start: the run holds the workspace).
    pub fn attach(&mut self, run: OtherRun) {
        if self.running == Some(PaneId::Train) {
            self.running = None;
            self.notice = Some(format!("{} is training in this workspace: showing it", run.describe()));
        } else {
            self.executions += 1;
        }
        self.panes.train.cell_mut().start(self.executions);
        self.panes.train.attach(run.clone());
        self.attached = Some(run);
        self.stop_asked = false;
        self.needs_clear = true;
    }

    /// What the user asked to happen once the app has closed.
    pub fn after_exit(&self) -> AfterExit {
        if !self.detach_on_exit {
            return AfterExit::Nothing;
        }
        match self.panes.train.continuation() {
            Some(continuation) => AfterExit::ContinueInBackground(continuation.clone()),
            None => AfterExit::NothingToContinue,
        }
    }

    /// Whether the app is done: asked to quit and nothing runs any more.
    pub fn should_exit(&self) -> bool {
        self.quitting && self.running.is_none()
    }

    /// Leaving without being asked (the terminal went away, SIGTERM): no more keys, and the
    /// app is done once the running step has stopped (its cancel was requested).
    pub fn shut_down(&mut self) {
        self.overlay = None;
        self.quitting = true;
    }

    pub fn take_needs_clear(&mut self) -> bool {
        std::mem::take(&mut self.needs_clear)
    }

    /// The terminal changed size.
    pub fn resized(&mut self) {
        self.needs_clear = true;
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        self.notice = None;
        let command = |lists: &[&[Key]]| keys::find(&key, lists).map(|found| found.command);
        if command(&[keys::APP]) == Some(Command::QuitNow) {
            return Some(Action::Quit);
        }
        match self.overlay {
            Some(overlay @ (Overlay::Help | Overlay::Lesson)) => {
                let closing = if overlay == Overlay::Help { Command::Help } else { Command::Lesson };
                if matches!(command(&[keys::APP]), Some(c) if c == closing || matches!(c, Command::Quit | Command::Stop | Command::Run))
                {
                    self.overlay = None;
                }
                return None;
            }
            Some(Overlay::ConfirmQuit) => {
                let choice = command(&[self.quit_keys()]);
                if matches!(choice, Some(Command::Yes | Command::Detach | Command::No)) {
                    self.overlay = None;
                }
                if !matches!(choice, Some(Command::Yes | Command::Detach)) {
                    return None;
                }
                if self.running.is_none() {
                    return Some(Action::Quit);
                }
                self.quitting = true;
                self.detach_on_exit = choice == Some(Command::Detach);
                return Some(Action::Cancel);
            }
            None => {}
        }
        if self.quitting {
            return None;
        }
        let pane = self.panes.get_mut(self.active);
        if let Some(form) = pane.form_mut()
            && form.is_editing()
        {
            form.handle_key(key);
            return None;
        }
        let form_keys = pane.form().map(Form::keys).unwrap_or_default();
        match command(&[pane.keys(), &form_keys, keys::APP])? {
            Command::GoTo => {
                let KeyCode::Char(digit) = key.code else { return None };
                let id = PaneId::from_number(digit as usize - '0' as usize).expect("1-9 are panes");
                if id != self.active {
                    self.active = id;
                    self.needs_clear = true;
                }
                if id == PaneId::Train && self.attached.is_none() && self.running != Some(PaneId::Train) {
                    return Some(Action::LookForOtherRun);
                }
            }
            Command::Run => return self.run_step(self.active),
            Command::Stop => {
                if let Some(running) = self.running {
                    self.notice = Some(format!("stopping {}…", running.title()));
                    return Some(Action::Cancel);
                }
                let run = self.attached.as_ref()?;
                if self.stop_asked {
                    self.notice =
                        Some(format!("{} was asked to stop: it ends after its current batch", run.describe()));
                    return None;
                }
                self.stop_asked = true;
                self.notice = Some(format!("asking {} to stop after its current batch…", run.describe()));
                return Some(Action::StopOtherRun(run.pid));
            }
            Command::Lesson if self.note_fits => {
                self.lesson_shown = !self.lesson_shown;
                self.needs_clear = true;
            }
            Command::Lesson => self.overlay = Some(Overlay::Lesson),
            Command::Help => self.overlay = Some(Overlay::Help),
            Command::Quit if self.running.is_some() => self.overlay = Some(Overlay::ConfirmQuit),
            Command::Quit | Command::QuitNow => return Some(Action::Quit),
            Command::NextField | Command::PreviousField | Command::Decrease | Command::Increase | Command::Edit => {
                if let Some(form) = pane.form_mut() {
                    form.handle_key(key);
                }
            }
            Command::UseSuggestedLr => self.use_suggested_lr(),
            pane_command => match pane.command(pane_command) {
                PaneKey::Run => return self.run_step(self.active),
                PaneKey::ReadRuns => {
                    self.needs_clear = true;
                    return Some(Action::ReadRuns);
                }
                // What the pane shows changed: images drawn by a graphics protocol must go.
                PaneKey::Handled => self.needs_clear = true,
                PaneKey::Refused(why) => self.notice = Some(why.into()),
                PaneKey::Ignored => {}
            },
        }
        None
    }

    /// The quit prompt's answers: while the app trains, stop or continue in the background.
    fn quit_keys(&self) -> &'static [Key] {
        if self.running == Some(PaneId::Train) { keys::QUIT_TRAINING } else { keys::CONFIRM_QUIT }
    }

    /// The LR find pane's suggestion becomes the Train pane's max_lr.
    fn use_suggested_lr(&mut self) {
        let Some(lr) = self.panes.lr_find.suggested_lr() else {
            self.notice = Some("no suggestion yet: run the sweep (Enter) first".into());
            return;
        };
        self.notice = Some(match self.panes.train.set_max_lr(lr) {
            Ok(()) => format!("max_lr {} set in 7 Train", self.panes.train.max_lr()),
            Err(why) => why,
        });
    }

    /// Starts step `id` with its pane's settings, unless another step is running or the
    /// settings do not make a request (the footer then says why).
    pub fn run_step(&mut self, id: PaneId) -> Option<Action> {
        if let Some(running) = self.running {
            self.notice = Some(format!("{} is running: wait for it, or press Esc to stop it", running.title()));
            return None;
        }
        if let (PaneId::Train, Some(run)) = (id, &self.attached) {
            self.notice = Some(format!(
                "{} is training in this workspace: wait for it, or press Esc to stop it after its current batch",
                run.describe()
            ));
            return None;
        }
        let request = match self.panes.request(id) {
            Ok(request) => request,
            Err(why) => {
                self.notice = Some(why);
                return None;
            }
        };
        self.executions += 1;
        self.panes.get_mut(id).cell_mut().start(self.executions);
        self.running = Some(id);
        self.needs_clear = true;
        Some(Action::Run(request))
    }

    /// Takes in a message from the job thread; `now` times progress rates.
    pub fn apply(&mut self, message: JobMessage, now: Instant) {
        match message {
            JobMessage::Event { pane, event } => {
                let pane = self.panes.get_mut(pane);
                pane.cell_mut().apply(&event, now);
                pane.on_event(&event);
            }
            JobMessage::Output { pane, output } => {
                if matches!(
                    output,
                    Output::Classes(_) | Output::Preview(_) | Output::Interpret(_) | Output::Predicted(_)
                ) {
                    self.needs_clear = true;
                }
                self.panes.get_mut(pane).on_output(output, &self.images);
            }
            JobMessage::Finished { pane, outcome } => {
                self.panes.get_mut(pane).cell_mut().finish(&outcome);
                if self.running == Some(pane) {
                    self.running = None;
                } else if pane == PaneId::Train {
                    // The attached run's follower: the run has ended.
                    self.attached = None;
                }
            }
        }
    }
}
