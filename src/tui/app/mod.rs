//! The app's state: the panes, which one is shown, which step runs. Keys become [`Action`]s
//! for the run loop, job messages update the panes, and `render` draws it all. Nothing here
//! touches the terminal or runs a step, so tests drive it with made-up keys and events.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui_image::picker::Picker;
use tokio::sync::mpsc::UnboundedSender;

use super::form::FormKey;
use super::jobs::{JobMessage, JobRequest, Output};
use super::panes::classes::ClassesPane;
use super::panes::fetch::FetchPane;
use super::panes::interpret::InterpretPane;
use super::panes::learner::LearnerPane;
use super::panes::lr_find::LrFindPane;
use super::panes::preview::PreviewPane;
use super::panes::setup::SetupPane;
use super::panes::split::SplitPane;
use super::panes::train::TrainPane;
use super::panes::{Cell, Pane, PaneId, PaneKey, Status};
use super::theme::Theme;
use super::widgets::{Encoded, ImageMaker, stage_gauge, truncate};
use crate::event::Level;

const SIDEBAR_WIDTH: u16 = 20;
/// Log lines of a step shown above its output.
const LOG_LINES_SHOWN: usize = 2;
/// Lines an error message may take before it is cut.
const ERROR_LINES_SHOWN: usize = 6;

/// What the run loop should do after a key.
#[derive(Debug, Clone)]
pub enum Action {
    Run(JobRequest),
    /// Stop the running step (training stops after the current batch).
    Cancel,
    /// Leave now; the loop stops any running step.
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    ConfirmQuit,
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
            PaneId::Classes => Ok(JobRequest::Classes),
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
    /// A one-off message in the footer, until the next key.
    notice: Option<String>,
    /// The screen must be cleared before the next draw: images drawn by a graphics protocol
    /// live outside ratatui's buffer and would otherwise stay behind.
    needs_clear: bool,
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
            notice: None,
            needs_clear: false,
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

    /// Whether the app is done: asked to quit and nothing runs any more.
    pub fn should_exit(&self) -> bool {
        self.quitting && self.running.is_none()
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
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        match self.overlay {
            Some(Overlay::Help) => {
                if matches!(key.code, KeyCode::Char('?' | 'q') | KeyCode::Esc | KeyCode::Enter) {
                    self.overlay = None;
                }
                return None;
            }
            Some(Overlay::ConfirmQuit) => {
                match key.code {
                    KeyCode::Char('y' | 'Y') => {
                        self.overlay = None;
                        if self.running.is_none() {
                            return Some(Action::Quit);
                        }
                        self.quitting = true;
                        return Some(Action::Cancel);
                    }
                    KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => self.overlay = None,
                    _ => {}
                }
                return None;
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
        match key.code {
            KeyCode::Char('q') if self.running.is_some() => self.overlay = Some(Overlay::ConfirmQuit),
            KeyCode::Char('q') => return Some(Action::Quit),
            KeyCode::Char('?') => self.overlay = Some(Overlay::Help),
            KeyCode::Char(digit @ '1'..='9') => {
                let id = PaneId::from_number(digit as usize - '0' as usize).expect("1-9 are panes");
                if id != self.active {
                    self.active = id;
                    self.needs_clear = true;
                }
            }
            KeyCode::Esc => {
                let running = self.running?;
                self.notice = Some(format!("stopping {}…", running.title()));
                return Some(Action::Cancel);
            }
            KeyCode::Enter => return self.run_step(self.active),
            KeyCode::Char('a') if self.active == PaneId::LrFind => self.use_suggested_lr(),
            _ => {
                if pane.form_mut().map(|form| form.handle_key(key)) == Some(FormKey::Handled) {
                    return None;
                }
                if pane.handle_key(key) == PaneKey::Run {
                    return self.run_step(self.active);
                }
            }
        }
        None
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
                if matches!(output, Output::Classes(_) | Output::Preview(_) | Output::Interpret(_)) {
                    self.needs_clear = true;
                }
                self.panes.get_mut(pane).on_output(output, &self.images);
            }
            JobMessage::Finished { pane, outcome } => {
                self.panes.get_mut(pane).cell_mut().finish(&outcome);
                if self.running == Some(pane) {
                    self.running = None;
                }
            }
        }
    }

    pub fn render(&mut self, frame: &mut Frame) {
        let area = frame.area();
        frame.render_widget(Block::new().style(self.theme.base()), area);
        let [title, body, footer] =
            Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)]).areas(area);
        let [sidebar, main] = Layout::horizontal([Constraint::Length(SIDEBAR_WIDTH), Constraint::Fill(1)]).areas(body);
        self.render_title(frame, title);
        self.render_sidebar(frame, sidebar);
        self.render_pane(frame, main);
        self.render_footer(frame, footer);
        match self.overlay {
            Some(Overlay::Help) => self.render_help(frame, area),
            Some(Overlay::ConfirmQuit) => self.render_confirm_quit(frame, area),
            None if self.quitting => {
                let running = self.running.map_or("the step", PaneId::title);
                let text = vec![Line::raw(format!("Stopping {running} after its current batch…"))];
                self.render_popup(frame, area, " Quitting ", text);
            }
            None => {}
        }
    }

    fn render_title(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.theme;
        frame.render_widget(Line::styled(" mednist · the MedNIST lesson", theme.accent()), area);
        if let Some(running) = self.running {
            let text = format!("● {} running, Esc stops it ", running.title());
            frame.render_widget(Line::styled(text, theme.running()).right_aligned(), area);
        }
    }

    fn render_sidebar(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.theme;
        let mut lines = vec![Line::styled(" Steps", theme.dim()), Line::raw("")];
        for id in PaneId::ALL {
            let cell = self.panes.get(id).cell();
            let (mark, mark_style) = match &cell.status {
                Status::NotRun => ("[ ]".to_string(), theme.dim()),
                Status::Running => ("[*]".to_string(), theme.running()),
                Status::Done => (format!("{}✓", execution_label(cell)), theme.done()),
                Status::Cancelled => (format!("{}■", execution_label(cell)), theme.warning()),
                Status::Failed(_) => (format!("{}✗", execution_label(cell)), theme.failed()),
            };
            let name_width = (SIDEBAR_WIDTH as usize).saturating_sub(4 + mark.chars().count() + 1);
            let name = format!(" {} {:<name_width$}", id.number(), id.title());
            let style = if id == self.active { theme.selected() } else { theme.base() };
            lines.push(Line::from(vec![Span::styled(name, style), Span::styled(format!("{mark} "), mark_style)]));
        }
        frame.render_widget(Paragraph::new(lines), area);
    }

    fn render_pane(&mut self, frame: &mut Frame, area: Rect) {
        let theme = self.theme.clone();
        let id = self.active;
        let block = Block::bordered()
            .border_style(theme.border())
            .title(Line::styled(format!(" {} {} ", id.number(), id.title()), theme.accent()));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let pane = self.panes.get_mut(id);
        let cell = pane.cell().clone();

        let form_lines = pane.form().map(|form| form.lines(&theme)).unwrap_or_default();
        let error = match &cell.status {
            Status::Failed(message) => Some(message.clone()),
            _ => None,
        };
        let error_height = error.as_deref().map_or(0, |e| wrapped_height(e, inner.width, ERROR_LINES_SHOWN));
        let logs: Vec<Line> = cell.logs[cell.logs.len().saturating_sub(LOG_LINES_SHOWN)..]
            .iter()
            .map(|(level, message)| match level {
                Level::Info => Line::styled(truncate(message, inner.width as usize), theme.dim()),
                Level::Warn => {
                    Line::styled(truncate(&format!("warning: {message}"), inner.width as usize), theme.warning())
                }
            })
            .collect();
        let stage = cell.stage.as_ref().filter(|_| cell.status == Status::Running);
        let [header, form, _, error_area, gauge_area, logs_area, output] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(form_lines.len() as u16),
            Constraint::Length(1),
            Constraint::Length(error_height),
            Constraint::Length(u16::from(stage.is_some())),
            Constraint::Length(logs.len() as u16),
            Constraint::Fill(1),
        ])
        .areas(inner);

        let (status, status_style) = match &cell.status {
            Status::NotRun => ("not run", theme.dim()),
            Status::Running => ("running…", theme.running()),
            Status::Done => ("done", theme.done()),
            Status::Cancelled => ("stopped", theme.warning()),
            Status::Failed(_) => ("failed", theme.failed()),
        };
        let label = match cell.status {
            Status::Running => "[*]".to_string(),
            _ => execution_label(&cell),
        };
        // "In [n]: " before the code, one space and the status after it.
        let code_width = (header.width as usize).saturating_sub(label.len() + 5 + 1 + status.len());
        frame.render_widget(
            Line::from(vec![
                Span::styled(format!("In {label}: "), theme.dim()),
                Span::styled(truncate(&pane.code(), code_width), theme.base()),
            ]),
            header,
        );
        frame.render_widget(Line::styled(status, status_style).right_aligned(), header);
        frame.render_widget(Paragraph::new(form_lines), form);
        if let Some(error) = error {
            frame.render_widget(Paragraph::new(error).style(theme.failed()).wrap(Wrap { trim: false }), error_area);
        }
        if let Some(stage) = stage {
            stage_gauge(frame, gauge_area, stage, &theme);
        }
        frame.render_widget(Paragraph::new(logs), logs_area);
        pane.render_output(frame, output, &theme);
    }

    fn render_footer(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.theme;
        if let Some(notice) = &self.notice {
            frame.render_widget(
                Line::styled(
                    format!(" {}", truncate(notice, (area.width as usize).saturating_sub(1))),
                    theme.warning(),
                ),
                area,
            );
            return;
        }
        let pane = self.panes.get(self.active);
        let form = pane.form();
        let hints = if form.is_some_and(|f| f.is_editing()) {
            "type the value · Enter accept · Esc cancel".to_string()
        } else {
            let mut hints = vec!["Enter run"];
            if self.active == PaneId::Preview {
                hints.push("n new sample");
            }
            if form.is_some_and(|f| !f.is_empty()) {
                hints.extend(["↑↓←→ settings", "e type"]);
            }
            hints.extend(["1-9 step", "? keys", "q quit"]);
            hints.join(" · ")
        };
        frame.render_widget(
            Line::styled(format!(" {}", truncate(&hints, (area.width as usize).saturating_sub(1))), theme.dim()),
            area,
        );
    }

    fn render_help(&self, frame: &mut Frame, area: Rect) {
        let keys = [
            ("1-9", "go to a step"),
            ("Enter", "run the step, or run it again"),
            ("Esc", "stop the running step; training stops after"),
            ("", "  its current batch and keeps its checkpoint"),
            ("↑ ↓  Tab", "choose a setting"),
            ("← →", "change it"),
            ("e", "type a value (Enter accepts, Esc cancels)"),
            ("n", "Preview: draw a new sample"),
            ("u", "Learner: freeze or unfreeze the body"),
            ("v", "Interpret: counts or fractions"),
            ("a", "LR find: use the suggested rate in Train"),
            ("?", "show or hide these keys"),
            ("q", "quit (asks first while a step runs)"),
            ("Ctrl-C", "quit at once"),
        ];
        let lines = keys
            .iter()
            .map(|(key, what)| {
                Line::from(vec![Span::styled(format!(" {key:<10}"), self.theme.accent()), Span::raw(*what)])
            })
            .collect();
        self.render_popup(frame, area, " Keys ", lines);
    }

    fn render_confirm_quit(&self, frame: &mut Frame, area: Rect) {
        let running = self.running.map_or("A step", PaneId::title);
        let lines = vec![
            Line::raw(format!("{running} is running. Quit anyway?")),
            Line::raw("It stops after the current batch; the last"),
            Line::raw("checkpoint is kept."),
            Line::raw(""),
            Line::from(vec![
                Span::styled(" y ", self.theme.selected()),
                Span::raw(" stop and quit    "),
                Span::styled(" n ", self.theme.selected()),
                Span::raw(" keep going"),
            ]),
        ];
        self.render_popup(frame, area, " Quit? ", lines);
    }

    fn render_popup(&self, frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>) {
        let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
        let height = lines.len() as u16 + 2;
        let popup =
            area.centered(Constraint::Length(width.min(area.width)), Constraint::Length(height.min(area.height)));
        frame.render_widget(Clear, popup);
        let block = Block::bordered()
            .title(Line::styled(title, self.theme.accent()))
            .border_style(self.theme.accent())
            .style(self.theme.base());
        frame.render_widget(Paragraph::new(lines).block(block), popup);
    }
}

/// `[n]` for a cell run n-th, `[ ]` for one never run.
fn execution_label(cell: &Cell) -> String {
    cell.execution.map_or("[ ]".to_string(), |n| format!("[{n}]"))
}

/// Lines `text` takes wrapped at `width`, at most `cap`.
fn wrapped_height(text: &str, width: u16, cap: usize) -> u16 {
    let width = width.max(1) as usize;
    let lines: usize = text.lines().map(|line| line.chars().count().div_ceil(width).max(1)).sum();
    lines.min(cap) as u16
}
