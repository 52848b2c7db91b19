//! 8 Interpret: the lesson's `ClassificationInterpretation` of the open learner and what a
//! clinic asks beyond it, as views `m` cycles through: the confusion matrix (counts, or
//! fractions of each actual class with `v`) with the most confused pairs, per-class scores and
//! the top losses as images (`c`: their Grad-CAM heatmaps); the per-class sensitivity,
//! specificity, PPV, NPV and AUC with bootstrap intervals; the ROC curves; the reliability
//! diagram; and `learn.predict` on an image file of the settings (Enter in that view).

mod clinical;
mod matrix;
mod predict;

use std::path::PathBuf;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

use self::predict::{Predicted, check_image_file};
use super::{Cell, Pane, PaneId, PaneKey};
use crate::learn::evaluate::Evaluation;
use crate::learn::open::OpenOptions;
use crate::learn::overlay::overlay;
use crate::render::theme::Theme;
use crate::tui::form::{Field, Form, Step};
use crate::tui::jobs::{InterpretInfo, JobRequest, Output};
use crate::tui::keys::{self, Command, Key};
use crate::tui::widgets::{ImageMaker, Tile};

const TOP: usize = 0;
const FILE: usize = 1;

/// What the pane shows of its results; `m` moves to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// The confusion matrix, the most confused pairs, per-class scores and the top losses.
    Matrix,
    /// Per-class sensitivity, specificity, PPV, NPV and AUC with their intervals.
    Clinical,
    Roc,
    Calibration,
    /// One image file classified.
    Predict,
}

impl View {
    const ALL: [View; 5] = [View::Matrix, View::Clinical, View::Roc, View::Calibration, View::Predict];

    fn next(self) -> Self {
        let at = View::ALL.iter().position(|view| *view == self).expect("every view is listed");
        View::ALL[(at + 1) % View::ALL.len()]
    }

    fn name(self) -> &'static str {
        match self {
            View::Matrix => "matrix & top losses",
            View::Clinical => "clinical table",
            View::Roc => "ROC curves",
            View::Calibration => "calibration",
            View::Predict => "predict a file",
        }
    }
}

pub struct InterpretPane {
    cell: Cell,
    form: Form,
    evaluation: Option<Evaluation>,
    /// The top losses' images.
    tiles: Vec<Tile>,
    /// The same images with their Grad-CAM heatmaps over them; empty when there are none.
    cam_tiles: Vec<Tile>,
    predicted: Option<Predicted>,
    view: View,
    /// Show the matrix as fractions of each actual class instead of counts.
    normalized: bool,
    /// Show the Grad-CAM heatmaps instead of the plain images.
    cams_shown: bool,
}

impl Default for InterpretPane {
    fn default() -> Self {
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                Field::number("top losses", 9, 1, 36, Step::Add(3)),
                Field::text("image file", "", check_image_file, None),
            ]),
            evaluation: None,
            tiles: Vec::new(),
            cam_tiles: Vec::new(),
            predicted: None,
            view: View::Matrix,
            normalized: false,
            cams_shown: false,
        }
    }
}

impl InterpretPane {
    /// The Predict view predicts its file; the others interpret the validation set.
    pub fn request(&self, open: OpenOptions) -> Result<JobRequest, String> {
        if self.view == View::Predict {
            let file = self.form.text(FILE);
            check_image_file(file).map_err(|why| format!("image file: {why}"))?;
            return Ok(JobRequest::Predict { open, file: PathBuf::from(file) });
        }
        Ok(JobRequest::Interpret { open, top: self.form.number(TOP) as usize })
    }

    /// The line naming the views, the shown one highlighted.
    fn views_line(&self, theme: &Theme) -> Line<'static> {
        let mut spans = Vec::new();
        for view in View::ALL {
            let style = if view == self.view { theme.selected() } else { theme.dim() };
            spans.push(Span::styled(format!(" {} ", view.name()), style));
        }
        spans.push(Span::styled("  m: next view", theme.dim()));
        Line::from(spans)
    }
}

impl Pane for InterpretPane {
    pane_with_form!(PaneId::Interpret);

    fn code(&self) -> String {
        match self.view {
            View::Predict => format!("learn.predict(PILImage.create({:?}))", self.form.text(FILE)),
            _ => {
                let top = self.form.number(TOP);
                format!(
                    "interp = ClassificationInterpretation.from_learner(learn); interp.plot_confusion_matrix(); interp.plot_top_losses({top})"
                )
            }
        }
    }

    fn keys(&self) -> &'static [Key] {
        keys::INTERPRET
    }

    fn command(&mut self, command: Command) -> PaneKey {
        match command {
            Command::NextView => self.view = self.view.next(),
            Command::ToggleFractions => self.normalized = !self.normalized,
            Command::ToggleCam => {
                let shown_here = match self.view {
                    View::Predict => self.predicted.as_ref().is_some_and(Predicted::has_cam),
                    _ => !self.cam_tiles.is_empty(),
                };
                if !shown_here && !self.cams_shown {
                    return PaneKey::Refused(match self.view {
                        View::Predict => "no Grad-CAM here yet: predict a file first (Enter)",
                        _ => "no Grad-CAM heatmaps yet: run the step (Enter) with a learner of 64px or more",
                    });
                }
                self.cams_shown = !self.cams_shown;
            }
            _ => return PaneKey::Ignored,
        }
        PaneKey::Handled
    }

    fn on_output(&mut self, output: Output, images: &ImageMaker) {
        match output {
            Output::Interpret(info) => {
                let InterpretInfo { evaluation, images: pictures } = *info;
                let top_losses = &evaluation.interpretation.top_losses;
                // The heatmaps are one per top loss in the same order, or none at all.
                let cams = &evaluation.top_loss_cams;
                self.tiles.clear();
                self.cam_tiles.clear();
                for (rank, (t, picture)) in top_losses.iter().zip(pictures).enumerate() {
                    let Some(picture) = picture else { continue };
                    let caption = format!("{}/{} {:.2} {:.2}", t.predicted, t.actual, t.loss, t.probability_actual);
                    if let Some(heatmap) = cams.get(rank) {
                        self.cam_tiles.push(images.tile(overlay(picture.as_raw(), heatmap, 1), caption.clone()));
                    }
                    self.tiles.push(images.tile(picture, caption));
                }
                self.evaluation = Some(evaluation);
            }
            Output::Predicted(info) => self.predicted = Some(Predicted::new(*info, images)),
            _ => {}
        }
    }

    fn tiles_mut(&mut self) -> Vec<&mut Tile> {
        let predicted = self.predicted.iter_mut().flat_map(Predicted::tiles_mut);
        self.tiles.iter_mut().chain(&mut self.cam_tiles).chain(predicted).collect()
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        if self.evaluation.is_none() && self.predicted.is_none() && self.view != View::Predict {
            return;
        }
        let [views, rest] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        frame.render_widget(self.views_line(theme), views);
        match (self.view, &self.evaluation) {
            (View::Predict, _) => predict::render(frame, rest, self.predicted.as_mut(), self.cams_shown, theme),
            (_, None) => {
                let hint = "run the step (Enter) to interpret the validation set";
                frame.render_widget(Line::styled(hint, theme.dim()), rest);
            }
            (View::Matrix, Some(evaluation)) => {
                let cams = self.cams_shown && !self.cam_tiles.is_empty();
                let tiles = if cams { &mut self.cam_tiles } else { &mut self.tiles };
                matrix::render(frame, rest, &evaluation.interpretation, self.normalized, tiles, theme);
            }
            (View::Clinical, Some(evaluation)) => clinical::render_table(frame, rest, &evaluation.metrics, theme),
            (View::Roc, Some(evaluation)) => clinical::render_roc(frame, rest, &evaluation.metrics, theme),
            (View::Calibration, Some(evaluation)) => {
                clinical::render_calibration(frame, rest, &evaluation.calibration, theme)
            }
        }
    }
}
