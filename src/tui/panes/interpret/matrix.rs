//! The default view: the confusion matrix, the most confused pairs and per-class scores, with
//! the top losses as images beside or below them.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::learn::interpret::Interpretation;
use crate::render::theme::Theme;
use crate::tui::widgets::{Tile, tile_grid, truncate};

const COLUMNS: usize = 3;
/// Below this width the tables and the images are stacked.
const SIDE_BY_SIDE_WIDTH: u16 = 100;
/// The tables' width beside the images.
const TABLE_WIDTH: u16 = 60;
/// Most confused pairs listed.
const PAIRS: usize = 5;

pub fn render(
    frame: &mut Frame,
    area: Rect,
    interpretation: &Interpretation,
    normalized: bool,
    tiles: &mut [Tile],
    theme: &Theme,
) {
    let summary = format!(
        "error_rate {:.4} on {} validation images · top losses: predicted/actual loss p(actual)",
        interpretation.error_rate,
        interpretation.confusion.iter().flatten().sum::<usize>()
    );
    let [summary_area, rest] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    frame.render_widget(Line::styled(truncate(&summary, area.width as usize), theme.dim()), summary_area);
    // The tables are TABLE_WIDTH columns wide beside the images, the full width above them.
    let side_by_side = rest.width >= SIDE_BY_SIDE_WIDTH;
    let table_width = if side_by_side { TABLE_WIDTH } else { rest.width };
    let lines = table_lines(interpretation, normalized, table_width as usize, theme);
    let (tables, images) = if side_by_side {
        let [tables, _, images] =
            Layout::horizontal([Constraint::Length(TABLE_WIDTH), Constraint::Length(1), Constraint::Fill(1)])
                .areas(rest);
        (tables, images)
    } else {
        let height = (lines.len() as u16).min(rest.height);
        let [tables, images] = Layout::vertical([Constraint::Length(height), Constraint::Fill(1)]).areas(rest);
        (tables, images)
    };
    frame.render_widget(Paragraph::new(lines), tables);
    if images.height >= 4 {
        tile_grid(frame, images, tiles, COLUMNS, theme);
    }
}

fn table_lines(interpretation: &Interpretation, normalized: bool, width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let classes = &interpretation.classes;
    let name_width = classes.iter().map(|c| c.chars().count()).max().unwrap_or(0).clamp(6, 10);
    let cell_width = if normalized { 6 } else { 5 };
    let short = |name: &str, width: usize| truncate(name, width);
    let mut lines = vec![Line::styled(
        if normalized {
            "confusion matrix: fraction of each actual class (v: counts)"
        } else {
            "confusion matrix: images, actual ↓ predicted → (v: fractions)"
        },
        theme.accent(),
    )];
    let mut header = format!("{:name_width$}", "");
    for name in classes {
        header += &format!(" {:>cell_width$}", short(name, cell_width));
    }
    lines.push(Line::styled(header, theme.dim()));
    for (actual, name) in classes.iter().enumerate() {
        let mut spans = vec![Span::styled(format!("{:name_width$}", short(name, name_width)), theme.dim())];
        let fractions = interpretation.normalized_row(actual);
        for (predicted, count) in interpretation.confusion[actual].iter().enumerate() {
            let text = if normalized {
                format!(" {:>cell_width$.3}", fractions[predicted])
            } else {
                format!(" {count:>cell_width$}")
            };
            let style = match (actual == predicted, *count > 0) {
                (true, _) => theme.accent(),
                (false, true) => theme.failed(),
                (false, false) => theme.dim(),
            };
            spans.push(Span::styled(text, style));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    if interpretation.most_confused.is_empty() {
        lines.push(Line::styled("most confused: none, every validation image is right", theme.dim()));
    } else {
        lines.push(Line::styled("most confused (actual → predicted)", theme.dim()));
        for c in interpretation.most_confused.iter().take(PAIRS) {
            lines.push(Line::raw(truncate(&format!("{} → {}: {}", c.actual, c.predicted, c.count), width)));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!("{:name_width$}  precision recall    f1  images", "class"), theme.dim()));
    for s in &interpretation.scores {
        lines.push(Line::raw(format!(
            "{:name_width$}  {:>9.4} {:>6.4} {:>6.4} {:>7}",
            short(&s.class, name_width),
            s.precision,
            s.recall,
            s.f1,
            s.support
        )));
    }
    lines
}
