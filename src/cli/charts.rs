//! Charts printed as text: a ratatui widget rendered into an off-screen buffer and read back
//! cell by cell (braille, no colours), for terminals and logs alike. The charts are the
//! panes' widgets ([`crate::render::charts`]), drawn in monochrome.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Widget};

use crate::learn::clinical::ClinicalMetrics;
use crate::learn::evaluate::Calibration;
use crate::render::charts::{ReliabilityChart, RocChart, RunCurves};
use crate::render::theme::Theme;

/// What `draw` paints on a `width` x `height` buffer, as lines of text without trailing blanks.
pub fn text_of((width, height): (u16, u16), draw: impl FnOnce(Rect, &mut Buffer)) -> String {
    let area = Rect::new(0, 0, width, height);
    let mut buffer = Buffer::empty(area);
    draw(area, &mut buffer);
    (0..height)
        .map(|y| (0..width).map(|x| buffer[(x, y)].symbol()).collect::<String>().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs' curves of `metric` over the same axes, told apart by their markers.
pub fn curves_text(metric: &str, series: &[(String, Vec<(f64, f64)>)], size: (u16, u16)) -> String {
    let chart = RunCurves::new(metric, series);
    text_of(size, |area, buffer| chart.widget(&Theme::monochrome()).render(area, buffer))
}

/// Every class's ROC curve, two charts a row, each under a line with its AUC.
pub fn roc_text(metrics: &ClinicalMetrics, width: u16) -> String {
    const CHART_HEIGHT: u16 = 11;
    let rows = metrics.roc.len().div_ceil(2) as u16;
    text_of((width, rows * (CHART_HEIGHT + 1)), |area, buffer| {
        let row_areas = Layout::vertical(vec![Constraint::Length(CHART_HEIGHT + 1); rows as usize]).split(area);
        for (index, curve) in metrics.roc.iter().enumerate() {
            let columns =
                Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).split(row_areas[index / 2]);
            let [title, chart] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(columns[index % 2]);
            let auc = metrics.per_class[index].metrics.auc;
            Paragraph::new(format!("{}  AUC {auc}", curve.class)).render(title, buffer);
            if curve.points.is_empty() {
                Paragraph::new("no curve: the class needs images of its own and of others").render(chart, buffer);
            } else {
                RocChart::one(curve).widget(&Theme::monochrome()).render(chart, buffer);
            }
        }
    })
}

pub fn reliability_text(calibration: &Calibration, size: (u16, u16)) -> String {
    text_of(size, |area, buffer| ReliabilityChart::new(calibration).widget(&Theme::monochrome()).render(area, buffer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::calibration::Reliability;
    use crate::learn::clinical::Bootstrap;
    use crate::learn::inference::Predictions;

    fn predictions() -> Predictions {
        let rows = [([0.9f32, 0.1], 0), ([0.6, 0.4], 1), ([0.2, 0.8], 1), ([0.3, 0.7], 0)];
        Predictions {
            classes: 2,
            log_probs: rows.iter().flat_map(|(p, _)| p.map(f32::ln)).collect(),
            labels: rows.iter().map(|(_, label)| *label).collect(),
            items: (0..rows.len()).collect(),
        }
    }

    #[test]
    fn compared_curves_are_told_apart_by_their_markers() {
        let series = vec![
            ("a".to_string(), vec![(0.0, 1.0), (1.0, 0.5), (2.0, 0.25)]),
            ("b".to_string(), vec![(0.0, 0.8), (1.0, 0.9)]),
        ];
        let text = curves_text("valid_loss", &series, (60, 14));
        assert!(text.contains("⣿ a") && text.contains("• b") && text.contains("valid_loss"), "{text}");
        assert!(text.contains("0.000") && text.contains("1.000"), "{text}");
        assert_eq!(text.lines().count(), 14);
    }

    #[test]
    fn roc_charts_print_as_text_with_their_auc() {
        let classes = ["left".to_string(), "right".to_string()];
        let metrics = ClinicalMetrics::new(&classes, &predictions(), Bootstrap { resamples: 50, seed: 1 });
        let text = roc_text(&metrics, 76);
        assert!(text.contains("left  AUC 0.750") && text.contains("right  AUC 0.750"), "{text}");
        assert!(text.contains("sensitivity") && text.contains("1-specificity"), "{text}");
        assert!(text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)), "braille curves:\n{text}");
        assert!(text.lines().all(|line| line.chars().count() <= 76));
        assert!(!text.contains('\u{1b}'), "no escape codes in logs");
    }

    #[test]
    fn the_reliability_diagram_shows_both_sides_of_a_temperature() {
        let reliability = Reliability::new(&predictions());
        let calibration = Calibration {
            temperature: Some(1.5),
            fitted_now: true,
            ece: reliability.ece,
            bins: reliability.bins.clone(),
            uncalibrated: Some(reliability),
        };
        let text = reliability_text(&calibration, (60, 16));
        assert!(text.contains("before") && text.contains("calibrated") && text.contains("█"), "{text}");
        assert_eq!(text.lines().count(), 16);
    }
}
