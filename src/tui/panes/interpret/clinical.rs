//! The clinical views: per-class figures with their bootstrap intervals, the ROC curves and
//! the reliability diagram, from the same library figures `mednist interpret` prints.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::learn::clinical::{ClinicalMetrics, Estimate, Metrics};
use crate::learn::evaluate::Calibration;
use crate::render::charts::{ReliabilityChart, RocChart};
use crate::render::theme::Theme;
use crate::tui::widgets::truncate;

/// A figure's column: its value, and its interval on the line below.
const FIGURE_WIDTH: usize = 15;
/// The per-bin table beside the reliability diagram.
const BINS_WIDTH: u16 = 46;

/// Sensitivity, specificity, PPV, NPV and AUC of each class against the rest, then their
/// macro and support-weighted averages; each value over its 95% interval.
pub fn render_table(frame: &mut Frame, area: Rect, metrics: &ClinicalMetrics, theme: &Theme) {
    let name_width = metrics.per_class.iter().map(|c| c.class.chars().count()).max().unwrap_or(0).clamp(12, 16);
    let title = format!(
        "one class against the rest · {:.0}% intervals from {} bootstrap resamples of the validation images (seed {})",
        metrics.level * 100.0,
        metrics.bootstrap.resamples,
        metrics.bootstrap.seed
    );
    let mut header = format!("{:name_width$} {:>6}  ", "class", "images");
    for name in ["sensitivity", "specificity", "PPV", "NPV", "AUC"] {
        header += &format!("{name:<FIGURE_WIDTH$}");
    }
    let mut lines =
        vec![Line::styled(truncate(&title, area.width as usize), theme.accent()), Line::styled(header, theme.dim())];
    let mut entry = |label: &str, images: Option<usize>, figures: &Metrics| {
        let shown: [&Estimate; 5] =
            [&figures.sensitivity, &figures.specificity, &figures.ppv, &figures.npv, &figures.auc];
        let images = images.map_or_else(String::new, |n| n.to_string());
        let mut values = vec![Span::raw(format!("{:name_width$} {images:>6}  ", truncate(label, name_width)))];
        let mut intervals = format!("{:name_width$} {:>6}  ", "", "");
        for estimate in shown {
            values.push(Span::raw(format!("{:<FIGURE_WIDTH$}", estimate.value_text())));
            intervals += &format!("{:<FIGURE_WIDTH$}", estimate.interval_text());
        }
        lines.push(Line::from(values));
        lines.push(Line::styled(intervals, theme.dim()));
    };
    for class in &metrics.per_class {
        entry(&class.class, Some(class.support), &class.metrics);
    }
    entry("macro avg", None, &metrics.macro_average);
    entry("weighted avg", None, &metrics.weighted_average);
    frame.render_widget(Paragraph::new(lines), area);
}

/// Every class's ROC curve on one chart, the chance diagonal, the AUCs in the legend.
pub fn render_roc(frame: &mut Frame, area: Rect, metrics: &ClinicalMetrics, theme: &Theme) {
    let [title, chart] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let missing: Vec<&str> =
        metrics.roc.iter().filter(|curve| curve.points.is_empty()).map(|curve| curve.class.as_str()).collect();
    let mut text = "ROC curves: each class against the rest (the clinical table has the AUCs' intervals)".to_string();
    if !missing.is_empty() {
        text += &format!(" · no curve for {}: it needs images of its own and of others", missing.join(", "));
    }
    frame.render_widget(Line::styled(truncate(&text, area.width as usize), theme.accent()), title);
    frame.render_widget(RocChart::all(metrics).widget(theme), chart);
}

/// The reliability diagram, the ECE in its title, beside the bins that have images.
pub fn render_calibration(frame: &mut Frame, area: Rect, calibration: &Calibration, theme: &Theme) {
    let bins = calibration.bins.len();
    let mut title = format!("reliability diagram · ECE {:.4} over {bins} bins of the top probability", calibration.ece);
    match (calibration.temperature, &calibration.uncalibrated) {
        (Some(temperature), Some(before)) => {
            title += &format!(" · temperature {temperature:.3} (ECE {:.4} before it)", before.ece)
        }
        _ => title += " · not calibrated",
    }
    let [title_area, rest] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    frame.render_widget(Line::styled(truncate(&title, area.width as usize), theme.accent()), title_area);
    let table_width = if rest.width >= BINS_WIDTH * 2 { BINS_WIDTH } else { 0 };
    let [chart, _, table] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(1), Constraint::Length(table_width)]).areas(rest);
    frame.render_widget(ReliabilityChart::new(calibration).widget(theme), chart);
    let mut lines = vec![Line::styled("top p in        images  confidence accuracy", theme.dim())];
    for bin in calibration.bins.iter().filter(|bin| bin.count > 0) {
        let (confidence, accuracy) = (bin.confidence.unwrap_or_default(), bin.accuracy.unwrap_or_default());
        let gap_style = if (accuracy - confidence).abs() > 0.1 { theme.warning() } else { theme.base() };
        lines.push(Line::from(vec![
            Span::raw(format!("({:.2}, {:.2}] {:>7}  {confidence:>10.4} ", bin.lower, bin.upper, bin.count)),
            Span::styled(format!("{accuracy:>8.4}"), gap_style),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), table);
}
