//! 9 LR find: the lesson's `learn.lr_find()` on the open learner. The smoothed loss is drawn
//! against the learning rate (log scale) as the sweep goes; fastai's suggestions are marked
//! when it ends. The learner is left as it was.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;

use super::{Cell, Pane, PaneId};
use crate::event::Event;
use crate::learn::lr_find::{LrFindOptions, LrFindResult};
use crate::learn::open::OpenOptions;
use crate::render::charts::LrChart;
use crate::render::theme::Theme;
use crate::tui::form::{Field, Form, Step};
use crate::tui::jobs::{JobRequest, Output};
use crate::tui::keys::{self, Key};
use crate::tui::widgets::{ImageMaker, truncate};

const ITERATIONS: usize = 0;
const STOP: usize = 1;

pub struct LrFindPane {
    cell: Cell,
    form: Form,
    /// (log10 lr, smoothed loss) so far.
    curve: Vec<(f64, f64)>,
    result: Option<LrFindResult>,
}

impl Default for LrFindPane {
    fn default() -> Self {
        let defaults = LrFindOptions::default();
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                Field::number("batches", defaults.iterations as u64, 10, 1000, Step::Add(10)),
                Field::choice("when the loss diverges", &["stop", "go on"], 0),
            ]),
            curve: Vec::new(),
            result: None,
        }
    }
}

impl LrFindPane {
    fn options(&self) -> LrFindOptions {
        LrFindOptions {
            iterations: self.form.number(ITERATIONS) as usize,
            stop_on_divergence: self.form.choice(STOP) == 0,
            ..LrFindOptions::default()
        }
    }

    pub fn request(&self, open: OpenOptions) -> Result<JobRequest, String> {
        Ok(JobRequest::LrFind { open, options: self.options() })
    }

    pub fn curve(&self) -> &[(f64, f64)] {
        &self.curve
    }

    pub fn result(&self) -> Option<&LrFindResult> {
        self.result.as_ref()
    }

    /// fastai's default pick (`valley`) from the last finished sweep.
    pub fn suggested_lr(&self) -> Option<f64> {
        Some(self.result.as_ref()?.suggestions?.valley.lr)
    }

    fn summary(&self) -> String {
        match &self.result {
            Some(LrFindResult { suggestions: Some(s), .. }) => format!(
                "suggested max_lr: valley {:.1e} (fastai's default) · steep {:.1e} · a: use valley in 7 Train",
                s.valley.lr, s.steep.lr
            ),
            Some(_) => "the sweep was too short to suggest a rate: run it with more batches".to_string(),
            None => format!("sweeping the learning rate: {} batches so far", self.curve.len()),
        }
    }
}

impl Pane for LrFindPane {
    pane_with_form!(PaneId::LrFind);

    fn keys(&self) -> &'static [Key] {
        keys::LR_FIND
    }

    fn code(&self) -> String {
        let options = self.options();
        format!(
            "learn.lr_find(start_lr=1e-7, end_lr=10, num_it={}, stop_div={})",
            options.iterations,
            if options.stop_on_divergence { "True" } else { "False" }
        )
    }

    fn on_event(&mut self, event: &Event) {
        if let Event::LrFindStep(step) = event {
            if step.iteration == 1 {
                self.curve.clear();
                self.result = None;
            }
            self.curve.push((step.lr.log10(), step.smooth_loss));
        }
    }

    fn on_output(&mut self, output: Output, _images: &ImageMaker) {
        if let Output::LrFind(result) = output {
            self.curve = result.log_lr_curve();
            self.result = Some(result);
        }
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        if self.curve.is_empty() {
            return;
        }
        let [summary, _, chart] =
            Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        frame.render_widget(Line::styled(truncate(&self.summary(), area.width as usize), theme.dim()), summary);
        if chart.height >= 6 {
            let suggestions = self.result.as_ref().and_then(|result| result.suggestions.as_ref());
            let data = LrChart::new(&self.curve, suggestions, &self.options());
            frame.render_widget(data.widget(theme), chart);
        }
    }
}
