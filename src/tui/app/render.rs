//! Drawing the app: title, steps, the active pane with its lesson note, the footer and the
//! overlays. The footer and the help are built from the key lists in [`keys`].

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Padding, Paragraph, Wrap};

use super::{App, ERROR_LINES_SHOWN, LOG_LINES_SHOWN, Overlay, SIDEBAR_WIDTH};
use crate::event::Level;
use crate::tui::form::Form;
use crate::tui::keys::{self, Key};
use crate::tui::lesson;
use crate::tui::panes::{Cell, PaneId, Status};
use crate::tui::widgets::{stage_gauge, truncate};

/// Panes at least this large (inside their border) show the lesson note below the cell; in
/// smaller ones `l` opens it over the screen (130x40 has room, 80x24 not).
const NOTE_MIN_PANE_HEIGHT: u16 = 30;
const NOTE_MIN_PANE_WIDTH: u16 = 60;
/// Widest the lesson overlay gets.
const NOTE_WIDTH: u16 = 100;

impl App {
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
            Some(Overlay::Lesson) => self.render_lesson_overlay(frame, area),
            None if self.quitting => {
                let running = self.running.map_or("the step", PaneId::title);
                let mut text = vec![Line::raw(format!("Stopping {running} after its current batch…"))];
                if self.detach_on_exit {
                    text.push(Line::raw("then it continues in the background."));
                }
                self.render_popup(frame, area, " Quitting ", text);
            }
            None => {}
        }
    }

    fn render_title(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.theme;
        frame.render_widget(Line::styled(" mednist · the MedNIST lesson", theme.accent()), area);
        let running = match (self.running, &self.attached) {
            (Some(running), _) => Some(format!("● {} running, Esc stops it ", running.title())),
            (None, Some(run)) => Some(format!("● run {} training, Esc stops it ", run.name)),
            (None, None) => None,
        };
        if let Some(text) = running {
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
        let pane = self.panes.get(id);
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
        let output = self.render_note(frame, inner, output, cell.execution.is_some());
        self.panes.get_mut(id).render_output(frame, output, &theme);
    }

    /// The active step's lesson note at the bottom of `output`, when the pane (`inner`) is
    /// large enough and notes are shown; returns what is left for the step's output. Before
    /// the step has run the note may take all the room, after it at most 2/5 of it.
    fn render_note(&mut self, frame: &mut Frame, inner: Rect, output: Rect, has_run: bool) -> Rect {
        self.note_fits = inner.height >= NOTE_MIN_PANE_HEIGHT && inner.width >= NOTE_MIN_PANE_WIDTH;
        if !(self.note_fits && self.lesson_shown) {
            return output;
        }
        let text = lesson::note(self.active);
        let needed = wrapped_height(&text, output.width.saturating_sub(4), usize::MAX) + 2;
        let room = if has_run { output.height * 2 / 5 } else { output.height };
        let [rest, _, note] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(1), Constraint::Length(needed.min(room))])
                .areas(output);
        let block = Block::bordered()
            .title(Line::styled(" the lesson · l hides ", self.theme.dim()))
            .border_style(self.theme.border())
            .padding(Padding::horizontal(1));
        frame.render_widget(Paragraph::new(text).style(self.theme.dim()).wrap(Wrap { trim: false }).block(block), note);
        rest
    }

    fn render_footer(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.theme;
        let width = (area.width as usize).saturating_sub(1);
        if let Some(notice) = &self.notice {
            frame.render_widget(Line::styled(format!(" {}", truncate(notice, width)), theme.warning()), area);
            return;
        }
        let pane = self.panes.get(self.active);
        let hints = match pane.form() {
            Some(form) if form.is_editing() => format!("type the value · {}", keys::footer(keys::EDITING, width)),
            form => {
                let listed: Vec<Key> = [pane.keys(), &form.map(Form::keys).unwrap_or_default(), keys::APP].concat();
                keys::footer(&listed, width)
            }
        };
        frame.render_widget(Line::styled(format!(" {}", truncate(&hints, width)), theme.dim()), area);
    }

    /// Every key: the app's, the settings', then each step's own (in any of its views); each
    /// step's line names its step.
    fn render_help(&self, frame: &mut Frame, area: Rect) {
        let line = |label: &str, what: String| {
            Line::from(vec![Span::styled(format!(" {label:<13}"), self.theme.accent()), Span::raw(what)])
        };
        let general = [keys::APP, keys::FORM, keys::EDITING].map(keys::help_rows).concat();
        let mut lines: Vec<Line> = general.into_iter().map(|(label, help)| line(&label, help.to_string())).collect();
        for id in PaneId::ALL {
            let rows = keys::help_rows(self.panes.get(id).help_keys());
            lines.extend(rows.into_iter().map(|(label, help)| line(&label, format!("{}: {help}", id.title()))));
        }
        self.render_popup(frame, area, " Keys ", lines);
    }

    fn render_confirm_quit(&self, frame: &mut Frame, area: Rect) {
        if self.running == Some(PaneId::Train) {
            let mut lines = vec![Line::raw("Train is training. Quit how?"), Line::raw("")];
            for key in keys::QUIT_TRAINING {
                lines.push(Line::from(vec![
                    Span::styled(format!(" {:<3} ", key.label), self.theme.selected()),
                    Span::raw(format!(" {}", key.help)),
                ]));
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw("In the background the epoch in progress starts again."));
            return self.render_popup(frame, area, " Quit? ", lines);
        }
        let running = self.running.map_or("A step", PaneId::title);
        let mut answers = Vec::new();
        for key in keys::CONFIRM_QUIT {
            answers.push(Span::styled(format!(" {} ", key.label), self.theme.selected()));
            answers.push(Span::raw(format!(" {}    ", key.help)));
        }
        let lines = vec![
            Line::raw(format!("{running} is running. Quit anyway?")),
            Line::raw("It stops at its next safe point (a download"),
            Line::raw("resumes later)."),
            Line::raw(""),
            Line::from(answers),
        ];
        self.render_popup(frame, area, " Quit? ", lines);
    }

    /// The active step's note where its pane has no room for it.
    fn render_lesson_overlay(&self, frame: &mut Frame, area: Rect) {
        let width = area.width.saturating_sub(6).min(NOTE_WIDTH);
        let text = lesson::note(self.active);
        let height = wrapped_height(&text, width, usize::MAX) + 2;
        let popup = area.centered(Constraint::Length(width + 4), Constraint::Length(height.min(area.height)));
        frame.render_widget(Clear, popup);
        let block = Block::bordered()
            .title(Line::styled(format!(" {} · the lesson (l closes) ", self.active.title()), self.theme.accent()))
            .border_style(self.theme.accent())
            .style(self.theme.base())
            .padding(Padding::horizontal(1));
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }).block(block), popup);
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

/// Lines `text` takes wrapped at word boundaries at `width` (as `Wrap` does), at most `cap`.
fn wrapped_height(text: &str, width: u16, cap: usize) -> u16 {
    let width = width.max(1) as usize;
    let wrapped = |line: &str| {
        let (mut lines, mut used) = (1, 0);
        for word in line.split_whitespace().map(|word| word.chars().count()) {
            if used > 0 && used + 1 + word > width {
                lines += 1;
                used = 0;
            }
            // A word longer than the line is cut into pieces of the width.
            used = if used == 0 { word } else { used + 1 + word };
            while used > width {
                lines += 1;
                used -= width;
            }
        }
        lines
    };
    let lines: usize = text.lines().map(wrapped).sum();
    lines.min(cap) as u16
}
