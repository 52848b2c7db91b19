//! 3 Classes: the class folders, their image counts as bars, and one image of each.

use indicatif::HumanCount;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, Paragraph};

use super::{Cell, Pane, PaneId};
use crate::data::scan::ClassSummary;
use crate::tui::jobs::{ClassesInfo, Output};
use crate::tui::theme::Theme;
use crate::tui::widgets::{ImageMaker, Tile, tile_grid, truncate};

/// Narrowest a thumbnail (with its caption) gets; more classes than fit are left out.
const THUMBNAIL_MIN_WIDTH: u16 = 9;
const LABEL_WIDTH: usize = 12;

#[derive(Default)]
pub struct ClassesPane {
    cell: Cell,
    classes: Vec<ClassSummary>,
    thumbnails: Vec<Tile>,
    notes: Vec<String>,
}

impl ClassesPane {
    pub fn classes(&self) -> &[ClassSummary] {
        &self.classes
    }
}

impl Pane for ClassesPane {
    pane!(PaneId::Classes);

    fn code(&self) -> String {
        "path.ls(); get_image_files(path)".into()
    }

    fn on_output(&mut self, output: Output, images: &ImageMaker) {
        let Output::Classes(ClassesInfo { classes, thumbnails, unreadable, empty_classes }) = output else { return };
        self.thumbnails = classes
            .iter()
            .zip(thumbnails)
            .filter_map(|(class, image)| Some(images.tile(image?, class.name.clone())))
            .collect();
        self.notes.clear();
        if unreadable > 0 {
            self.notes.push(format!("{unreadable} unreadable file(s) skipped: `mednist classes` names them"));
        }
        if !empty_classes.is_empty() {
            let names: Vec<&str> = empty_classes.iter().map(|c| c.name.as_str()).collect();
            self.notes.push(format!("left out, no readable image: {}", names.join(", ")));
        }
        self.classes = classes;
    }

    fn tiles_mut(&mut self) -> Vec<&mut Tile> {
        self.thumbnails.iter_mut().collect()
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        if self.classes.is_empty() {
            return;
        }
        let total: usize = self.classes.iter().map(|c| c.images).sum();
        let mut summary =
            vec![Line::raw(format!("{} classes, {} images", self.classes.len(), HumanCount(total as u64)))];
        summary.extend(self.notes.iter().map(|note| Line::styled(note.clone(), theme.warning())));
        // The chart gets a line per class, the thumbnails what is left (at least 4 lines).
        let chart_height = (self.classes.len() as u16).min(area.height.saturating_sub(summary.len() as u16 + 5));
        let [summary_area, chart_area, _, thumbnail_area] = Layout::vertical([
            Constraint::Length(summary.len() as u16),
            Constraint::Length(chart_height),
            Constraint::Length(1),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(summary), summary_area);

        let bars: Vec<Bar> = self
            .classes
            .iter()
            .take(chart_height as usize)
            .map(|class| {
                Bar::with_label(format!("{:<LABEL_WIDTH$}", truncate(&class.name, LABEL_WIDTH)), class.images as u64)
                    .text_value(HumanCount(class.images as u64).to_string())
            })
            .collect();
        let chart = BarChart::horizontal(bars)
            .bar_width(1)
            .bar_gap(0)
            .bar_style(theme.bar())
            .value_style(theme.selected())
            .label_style(theme.base());
        frame.render_widget(chart, chart_area);

        let columns = ((thumbnail_area.width / THUMBNAIL_MIN_WIDTH) as usize).clamp(1, self.thumbnails.len().max(1));
        let shown = columns.min(self.thumbnails.len());
        tile_grid(frame, thumbnail_area, &mut self.thumbnails[..shown], columns, theme);
    }
}
