//! 7 Train: `fit_one_cycle` with epochs and max_lr editable. The lesson's table grows a row
//! per epoch, the chart shows the training loss per batch and the validation loss per epoch.
//! Running it again continues the same learner; Esc stops after the current batch. A training
//! another process runs in the workspace (a detached one) is shown here the same way. `r`
//! switches to the workspace's runs compared ([`runs`]) and back.

mod runs;

use indicatif::HumanCount;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Chart, Dataset, Gauge, GraphType, LegendPosition, Paragraph, Wrap};

use self::runs::RunsView;
use super::{Cell, Pane, PaneId, PaneKey, Status};
use crate::event::{BatchEnd, EpochRow, Event, TrainStart};
use crate::learn::open::OpenOptions;
use crate::learn::schedule::MaxLr;
use crate::render::charts::axis;
use crate::render::epochs::{format_duration, format_row, header};
use crate::render::theme::Theme;
use crate::tui::attach::OtherRun;
use crate::tui::form::{Field, Form, Step};
use crate::tui::jobs::{Continuation, JobRequest, Output};
use crate::tui::keys::{self, Command, Key};
use crate::tui::widgets::{ImageMaker, truncate};

const EPOCHS: usize = 0;
const MAX_LR: usize = 1;

/// Learning rates ←/→ step through (fastai's usual picks).
const MAX_LR_LADDER: [f64; 13] = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1];
/// Below this width the table and the chart are stacked.
const SIDE_BY_SIDE_WIDTH: u16 = 110;
const MIN_CHART_HEIGHT: u16 = 6;

pub struct TrainPane {
    cell: Cell,
    form: Form,
    start: Option<TrainStart>,
    rows: Vec<EpochRow>,
    /// (epoch + fraction of it done, smoothed training loss) per batch.
    batch_losses: Vec<(f64, f64)>,
    last_batch: Option<BatchEnd>,
    /// The other process's run shown, when it is one.
    attached: Option<OtherRun>,
    /// How to continue the last fit elsewhere, when it stopped before its cycle ended.
    continuation: Option<Continuation>,
    /// The workspace's runs compared are shown (`r`) in place of the fit and its settings.
    runs_shown: bool,
    runs: RunsView,
}

impl Default for TrainPane {
    fn default() -> Self {
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                Field::number("epochs", 3, 1, 1000, Step::Add(1)),
                Field::text("max_lr", "1e-3", check_max_lr, Some(step_max_lr)),
            ]),
            start: None,
            rows: Vec::new(),
            batch_losses: Vec::new(),
            last_batch: None,
            attached: None,
            continuation: None,
            runs_shown: false,
            runs: RunsView::default(),
        }
    }
}

fn check_max_lr(text: &str) -> Result<(), String> {
    text.parse::<MaxLr>().map(|_| ())
}

/// The next rate on the ladder above (or below) a single rate; ranges are left alone.
fn step_max_lr(text: &str, up: bool) -> Option<String> {
    let MaxLr::Uniform(current) = text.parse::<MaxLr>().ok()? else { return None };
    let next = if up {
        MAX_LR_LADDER.iter().find(|lr| **lr > current * 1.0001)
    } else {
        MAX_LR_LADDER.iter().rev().find(|lr| **lr < current * 0.9999)
    };
    next.map(|lr| format!("{lr:e}"))
}

impl TrainPane {
    pub fn request(&self, open: OpenOptions) -> Result<JobRequest, String> {
        let max_lr = self.form.text(MAX_LR).parse::<MaxLr>().map_err(|why| format!("max_lr: {why}"))?;
        Ok(JobRequest::Train { open, epochs: self.form.number(EPOCHS) as usize, max_lr })
    }

    /// Takes `lr` as the next fit's max_lr (the LR find pane's suggestion).
    pub fn set_max_lr(&mut self, lr: f64) -> Result<(), String> {
        self.form.set_text(MAX_LR, &format!("{lr:.1e}"))
    }

    pub fn max_lr(&self) -> &str {
        self.form.text(MAX_LR)
    }

    /// Shows `run`, trained by another process, from its first event on.
    pub fn attach(&mut self, run: OtherRun) {
        self.start = None;
        self.rows.clear();
        self.batch_losses.clear();
        self.last_batch = None;
        self.attached = Some(run);
    }

    pub fn continuation(&self) -> Option<&Continuation> {
        self.continuation.as_ref()
    }

    pub fn rows(&self) -> &[EpochRow] {
        &self.rows
    }

    pub fn batch_losses(&self) -> &[(f64, f64)] {
        &self.batch_losses
    }

    /// The x-axis end: the end of the cycle in progress, or of what has been trained.
    fn planned_epochs(&self) -> f64 {
        let cycle_end = self.start.as_ref().map_or(0, |s| s.first_epoch - s.cycle_epochs_done + s.cycle_epochs);
        cycle_end.max(self.rows.len()).max(1) as f64
    }

    fn summary(&self) -> Option<String> {
        let Some(start) = self.start.as_ref() else {
            // Only the saved learner's history so far, as a notebook keeps a cell's output.
            return (!self.rows.is_empty())
                .then(|| format!("the saved learner's {} epoch(s); Enter continues training", self.rows.len()));
        };
        let mut lrs: Vec<String> = start.max_lrs.iter().map(|lr| format!("{lr:.0e}")).collect();
        lrs.dedup();
        Some(format!(
            "{} on {}: {} train / {} valid images, {} batches per epoch, max_lr {}",
            start.arch,
            start.device,
            HumanCount(start.train_images as u64),
            HumanCount(start.valid_images as u64),
            start.batches_per_epoch,
            lrs.join(" to ")
        ))
    }

    fn render_batch_gauge(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let Some(batch) = &self.last_batch else { return };
        let per_batch = batch.seconds / batch.batch.max(1) as f64;
        let eta = per_batch * batch.batches.saturating_sub(batch.batch) as f64;
        let label = format!(
            "epoch {} · batch {}/{} · loss {:.4} · ETA {}",
            batch.epoch,
            batch.batch,
            batch.batches,
            batch.smooth_loss,
            format_duration(eta)
        );
        let ratio = (batch.batch as f64 / batch.batches.max(1) as f64).clamp(0.0, 1.0);
        frame.render_widget(
            Gauge::default().ratio(ratio).label(label).gauge_style(theme.gauge()).use_unicode(true),
            area,
        );
    }

    fn render_table(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let shown = (area.height as usize).saturating_sub(1);
        let mut lines = vec![Line::styled(header(), theme.accent())];
        lines.extend(self.rows[self.rows.len().saturating_sub(shown)..].iter().map(|row| Line::raw(format_row(row))));
        frame.render_widget(Paragraph::new(lines), area);
    }

    fn render_chart(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let valid: Vec<(f64, f64)> = self.rows.iter().map(|row| ((row.epoch + 1) as f64, row.valid_loss)).collect();
        let top = self.batch_losses.iter().chain(&valid).map(|(_, loss)| *loss).fold(0.0f64, f64::max).max(1e-3) * 1.1;
        let end = self.planned_epochs();
        let datasets = vec![
            Dataset::default()
                .name("train")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.train_loss())
                .data(&self.batch_losses),
            Dataset::default()
                .name("valid")
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(theme.valid_loss())
                .data(&valid),
        ];
        let chart = Chart::new(datasets)
            .style(theme.base())
            .legend_position(Some(LegendPosition::TopRight))
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
            .x_axis(axis("epoch", [0.0, end], ["0".to_string(), format!("{end}")], theme))
            .y_axis(axis(
                "loss",
                [0.0, top],
                ["0".to_string(), format!("{:.2}", top / 2.0), format!("{top:.2}")],
                theme,
            ));
        frame.render_widget(chart, area);
    }
}

impl Pane for TrainPane {
    pane!(PaneId::Train);

    /// The settings, in the live view only: in the runs view ↑ ↓ pick runs.
    fn form(&self) -> Option<&Form> {
        (!self.runs_shown).then_some(&self.form)
    }

    fn form_mut(&mut self) -> Option<&mut Form> {
        (!self.runs_shown).then_some(&mut self.form)
    }

    fn keys(&self) -> &'static [Key] {
        if self.runs_shown { keys::TRAIN_RUNS } else { keys::TRAIN }
    }

    fn help_keys(&self) -> &'static [Key] {
        keys::TRAIN_RUNS
    }

    fn command(&mut self, command: Command) -> PaneKey {
        match (command, self.runs_shown) {
            (Command::ToggleRunsView, false) => {
                self.runs_shown = true;
                self.runs.reading();
                return PaneKey::ReadRuns;
            }
            (Command::ToggleRunsView, true) => self.runs_shown = false,
            (Command::PreviousRun, true) => self.runs.pick(-1),
            (Command::NextRun, true) => self.runs.pick(1),
            (Command::ToggleRunCompared, true) => {
                if let Err(why) = self.runs.toggle_compared() {
                    return PaneKey::Refused(why);
                }
            }
            _ => return PaneKey::Ignored,
        }
        PaneKey::Handled
    }

    fn code(&self) -> String {
        if self.runs_shown {
            // The same comparison from a shell, as a notebook's `!` runs one.
            let names: Vec<&str> = self.runs.compared().iter().map(|run| run.record.name.as_str()).collect();
            return if names.is_empty() {
                "!mednist runs".to_string()
            } else {
                format!("!mednist runs compare {}", names.join(" "))
            };
        }
        let max_lr = match self.form.text(MAX_LR).parse::<MaxLr>() {
            Ok(MaxLr::Slice { lo: Some(lo), hi }) => format!("slice({lo:e}, {hi:e})"),
            Ok(MaxLr::Slice { lo: None, hi }) => format!("slice({hi:e})"),
            _ => self.form.text(MAX_LR).to_string(),
        };
        format!("learn.fit_one_cycle({}, {max_lr})", self.form.number(EPOCHS))
    }

    fn on_event(&mut self, event: &Event) {
        match event {
            Event::TrainStarted(start) => {
                self.start = Some(start.clone());
                self.last_batch = None;
                self.continuation = None;
            }
            Event::Batch(batch) => {
                let x = batch.epoch as f64 + batch.batch as f64 / batch.batches.max(1) as f64;
                self.batch_losses.push((x, batch.smooth_loss));
                self.last_batch = Some(batch.clone());
            }
            Event::Epoch(row) => self.rows.push(row.clone()),
            Event::TrainFinished { .. } | Event::TrainCancelled { .. } => self.last_batch = None,
            _ => {}
        }
    }

    fn on_output(&mut self, output: Output, _images: &ImageMaker) {
        match output {
            // The saved learner's history (read as the app opens) is not the attached run's.
            Output::TrainHistory(_) if self.attached.is_some() && self.cell.status == Status::Running => {}
            // The app's own fit: no longer showing another process's.
            Output::TrainHistory(rows) => {
                self.attached = None;
                // Batches after the last finished epoch (an interrupted one) are trained again.
                let finished = rows.len() as f64;
                self.batch_losses.retain(|(x, _)| *x <= finished);
                self.rows = rows;
            }
            Output::Continuable(continuation) => self.continuation = Some(continuation),
            Output::Runs(listing) => self.runs.show(listing),
            _ => {}
        }
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        if self.runs_shown {
            return self.runs.render(frame, area, theme);
        }
        let area = match &self.attached {
            Some(run) => {
                let [caption, rest] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
                let state = match self.cell.status {
                    Status::Running => "Esc stops it after its current batch",
                    Status::Cancelled => "stopped",
                    Status::Done => "finished",
                    Status::Failed(_) => "failed",
                    Status::NotRun => "",
                };
                let text = format!("attached to {} · {state}", run.describe());
                frame.render_widget(Line::styled(truncate(&text, caption.width as usize), theme.accent()), caption);
                rest
            }
            None => area,
        };
        let Some(summary) = self.summary() else { return };
        let training = self.cell.status == Status::Running && self.cell.stage.is_none() && self.last_batch.is_some();
        let summary_height = if summary.chars().count() > area.width as usize { 2 } else { 1 };
        let [summary_area, gauge_area, _, rest] = Layout::vertical([
            Constraint::Length(summary_height),
            Constraint::Length(u16::from(training)),
            Constraint::Length(1),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(summary).style(theme.dim()).wrap(Wrap { trim: true }), summary_area);
        if training {
            self.render_batch_gauge(frame, gauge_area, theme);
        }
        if rest.width >= SIDE_BY_SIDE_WIDTH {
            let [table, chart] =
                Layout::horizontal([Constraint::Length(header().len() as u16 + 2), Constraint::Fill(1)]).areas(rest);
            self.render_table(frame, table, theme);
            self.render_chart(frame, chart, theme);
            return;
        }
        let wanted = self.rows.len() as u16 + 1;
        let table_height = wanted.min(rest.height.saturating_sub(MIN_CHART_HEIGHT + 1)).max(rest.height.min(2));
        let [table, _, chart] =
            Layout::vertical([Constraint::Length(table_height), Constraint::Length(1), Constraint::Fill(1)])
                .areas(rest);
        self.render_table(frame, table, theme);
        if chart.height >= MIN_CHART_HEIGHT {
            self.render_chart(frame, chart, theme);
        }
    }
}
