//! Charts as ratatui widgets: ROC curves, the reliability diagram, the LR finder's curve and
//! runs' curves compared. The panes draw them in the theme's colours; `mednist interpret`,
//! `lr-find` and `runs compare` render the same widgets into text (monochrome).

use ratatui::layout::Constraint;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition};

use super::theme::Theme;
use crate::learn::calibration::ReliabilityBin;
use crate::learn::clinical::{ClinicalMetrics, RocCurve};
use crate::learn::evaluate::Calibration;
use crate::learn::lr_find::{LrFindOptions, Suggestions};

/// The chance line, (0, 0) to (1, 1); on the reliability diagram, perfect calibration.
const DIAGONAL: [(f64, f64); 2] = [(0.0, 0.0), (1.0, 1.0)];

/// ROC curves over the same axes, one line per class; named in the legend when there are
/// several.
pub struct RocChart<'a> {
    curves: Vec<&'a RocCurve>,
    /// The legend's name of each curve; empty for a single unnamed one.
    names: Vec<String>,
}

impl<'a> RocChart<'a> {
    /// One class's curve, without a legend.
    pub fn one(curve: &'a RocCurve) -> Self {
        Self { curves: vec![curve], names: Vec::new() }
    }

    /// Every class's curve that has one, named with its AUC in the legend.
    pub fn all(metrics: &'a ClinicalMetrics) -> Self {
        let drawn = metrics.roc.iter().zip(&metrics.per_class).filter(|(curve, _)| !curve.points.is_empty());
        let (curves, names) = drawn
            .map(|(curve, class)| (curve, format!("{} AUC {}", curve.class, class.metrics.auc.value_text())))
            .unzip();
        Self { curves, names }
    }

    pub fn widget(&self, theme: &Theme) -> Chart<'_> {
        let chance = Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(theme.dim());
        let mut datasets = vec![if self.names.is_empty() { chance } else { chance.name("chance") }.data(&DIAGONAL)];
        for (index, curve) in self.curves.iter().enumerate() {
            let line = Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(if self.names.is_empty() { theme.train_loss() } else { theme.series(index) })
                .data(&curve.points);
            datasets.push(match self.names.get(index) {
                Some(name) => line.name(name.as_str()),
                None => line,
            });
        }
        let chart = unit_chart(datasets, "1-specificity", "sensitivity", theme);
        if self.names.is_empty() {
            return chart;
        }
        // The curves rise along the left and top edges: the bottom right is free for the legend.
        chart
            .legend_position(Some(LegendPosition::BottomRight))
            .hidden_legend_constraints((Constraint::Ratio(2, 3), Constraint::Ratio(2, 3)))
    }
}

/// The reliability diagram: accuracy against mean confidence per bin, the diagonal perfect
/// calibration; before and after the temperature when there is one.
pub struct ReliabilityChart {
    reported: Vec<(f64, f64)>,
    uncalibrated: Option<Vec<(f64, f64)>>,
}

impl ReliabilityChart {
    pub fn new(calibration: &Calibration) -> Self {
        Self {
            reported: points(&calibration.bins),
            uncalibrated: calibration.uncalibrated.as_ref().map(|r| points(&r.bins)),
        }
    }

    pub fn widget(&self, theme: &Theme) -> Chart<'_> {
        let mut datasets = vec![
            Dataset::default()
                .name("perfect")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.dim())
                .data(&DIAGONAL),
        ];
        if let Some(before) = &self.uncalibrated {
            let dataset = Dataset::default().name("before (•)").marker(Marker::Dot).graph_type(GraphType::Scatter);
            datasets.push(dataset.style(theme.valid_loss()).data(before));
        }
        let name = if self.uncalibrated.is_some() { "calibrated (█)" } else { "bins (█)" };
        let dataset = Dataset::default().name(name).marker(Marker::Block).graph_type(GraphType::Scatter);
        datasets.push(dataset.style(theme.train_loss()).data(&self.reported));
        unit_chart(datasets, "confidence", "accuracy", theme)
            .legend_position(Some(LegendPosition::TopLeft))
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
    }
}

/// The non-empty bins as (mean confidence, accuracy).
fn points(bins: &[ReliabilityBin]) -> Vec<(f64, f64)> {
    bins.iter().filter_map(|bin| Some((bin.confidence?, bin.accuracy?))).collect()
}

/// A chart over [0, 1] x [0, 1].
fn unit_chart<'a>(datasets: Vec<Dataset<'a>>, x: &'a str, y: &'a str, theme: &Theme) -> Chart<'a> {
    let unit = |title: &'a str| axis(title, [0.0, 1.0], ["0".to_string(), "1".to_string()], theme);
    Chart::new(datasets).style(theme.base()).x_axis(unit(x)).y_axis(unit(y)).legend_position(None)
}

/// An axis over `bounds` with its title and `labels`, in the theme's quiet colour.
pub fn axis<'a>(title: &'a str, bounds: [f64; 2], labels: impl IntoIterator<Item = String>, theme: &Theme) -> Axis<'a> {
    Axis::default()
        .title(Line::styled(title, theme.dim()))
        .bounds(bounds)
        .labels(labels.into_iter().map(Line::from))
        .style(theme.dim())
}

/// The learning-rate finder's curve as a chart: smoothed loss against log10(lr), fastai's
/// suggestions marked. The LR find pane and `mednist lr-find` draw the same one.
pub struct LrChart {
    points: Vec<(f64, f64)>,
    marks: Vec<(f64, f64)>,
    x_bounds: [f64; 2],
    y_bounds: [f64; 2],
}

impl LrChart {
    /// `curve` holds (log10 lr, smoothed loss) points of a sweep made with `options`.
    pub fn new(curve: &[(f64, f64)], suggestions: Option<&Suggestions>, options: &LrFindOptions) -> Self {
        let finite: Vec<f64> = curve.iter().map(|(_, loss)| *loss).filter(|loss| loss.is_finite()).collect();
        let bottom = finite.iter().copied().fold(f64::INFINITY, f64::min);
        // The curve shoots up at the end; cap the axis so the valley stays readable.
        let first = finite.first().copied().unwrap_or(1.0);
        let top = finite.iter().copied().fold(0.0f64, f64::max).min(first * 2.0).max(bottom + 1e-3);
        let bottom = if bottom.is_finite() { bottom } else { 0.0 };
        let points = curve.iter().copied().filter(|(_, loss)| loss.is_finite() && *loss <= top).collect();
        let marks = suggestions
            .map(|s| [s.valley, s.steep].iter().map(|m| (m.lr.log10(), m.loss.min(top))).collect())
            .unwrap_or_default();
        Self { points, marks, x_bounds: [options.start_lr.log10(), options.end_lr.log10()], y_bounds: [bottom, top] }
    }

    pub fn widget(&self, theme: &Theme) -> Chart<'_> {
        let datasets = vec![
            Dataset::default()
                .name("smoothed loss")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.train_loss())
                .data(&self.points),
            Dataset::default()
                .name("suggestions")
                .marker(Marker::Block)
                .graph_type(GraphType::Scatter)
                .style(theme.valid_loss())
                .data(&self.marks),
        ];
        let [low, high] = self.x_bounds;
        let [bottom, top] = self.y_bounds;
        let x_labels: Vec<String> =
            (low.ceil() as i32..=high.floor() as i32).step_by(2).map(|exponent| format!("1e{exponent}")).collect();
        Chart::new(datasets)
            .style(theme.base())
            .legend_position(Some(LegendPosition::Top))
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
            .x_axis(axis("learning rate (log)", self.x_bounds, x_labels, theme))
            .y_axis(axis("loss", self.y_bounds, [format!("{bottom:.2}"), format!("{top:.2}")], theme))
    }
}

/// Several runs' curves of one metric by epoch over the same axes, each run with its own
/// marker and colour, named in the legend after its marker (text has no colours). The Train
/// pane's runs view and `mednist runs compare` draw the same one.
pub struct RunCurves {
    metric: String,
    /// "⣿ name": the legend's entry of each run.
    names: Vec<String>,
    series: Vec<Vec<(f64, f64)>>,
    x_bounds: [f64; 2],
    y_bounds: [f64; 2],
}

impl RunCurves {
    /// The markers runs take in turn; the symbol each draws, for the legend.
    pub const MARKERS: [(Marker, &str); 4] =
        [(Marker::Braille, "⣿"), (Marker::Dot, "•"), (Marker::Block, "█"), (Marker::HalfBlock, "▀")];

    /// `series` holds each run's name and its (epoch, value) points of `metric`.
    pub fn new(metric: &str, series: &[(String, Vec<(f64, f64)>)]) -> Self {
        let points = || series.iter().flat_map(|(_, points)| points.iter()).filter(|(_, y)| y.is_finite());
        let (first, last) =
            points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
        let x_bounds = if first < last {
            [first, last]
        } else if first.is_finite() {
            [first - 0.5, first + 0.5]
        } else {
            [0.0, 1.0]
        };
        // Losses and error rates are never negative: from 0, curves compare by height.
        let highest = points().map(|(_, y)| *y).fold(0.0, f64::max);
        let y_bounds = [0.0, if highest > 0.0 { highest } else { 1.0 }];
        let names =
            series.iter().enumerate().map(|(index, (name, _))| format!("{} {name}", Self::symbol(index))).collect();
        let series = series.iter().map(|(_, points)| points.clone()).collect();
        Self { metric: metric.to_string(), names, series, x_bounds, y_bounds }
    }

    /// The symbol run `index` is drawn with.
    pub fn symbol(index: usize) -> &'static str {
        Self::MARKERS[index % Self::MARKERS.len()].1
    }

    pub fn widget(&self, theme: &Theme) -> Chart<'_> {
        let datasets = self
            .series
            .iter()
            .zip(&self.names)
            .enumerate()
            .map(|(index, (points, name))| {
                Dataset::default()
                    .name(name.as_str())
                    .marker(Self::MARKERS[index % Self::MARKERS.len()].0)
                    .graph_type(GraphType::Line)
                    .style(theme.series(index))
                    .data(points)
            })
            .collect();
        let [first, last] = self.x_bounds;
        let [bottom, top] = self.y_bounds;
        Chart::new(datasets)
            .style(theme.base())
            .x_axis(axis("epoch", self.x_bounds, [format!("{first}"), format!("{last}")], theme))
            .y_axis(axis(&self.metric, self.y_bounds, [format!("{bottom:.3}"), format!("{top:.3}")], theme))
            .legend_position(Some(LegendPosition::TopRight))
            .hidden_legend_constraints((Constraint::Ratio(1, 1), Constraint::Ratio(1, 1)))
    }
}
