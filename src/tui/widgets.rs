//! Pieces several panes draw: the stage gauge and captioned image grids.

use indicatif::{HumanBytes, HumanCount};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect, Size};
use ratatui::text::Line;
use ratatui::widgets::{Gauge, Paragraph};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::StatefulProtocol;
use ratatui_image::{FilterType, Resize, StatefulImage};

use super::panes::StageProgress;
use super::theme::Theme;
use crate::cli::train::format_duration;

/// A one-line gauge: `downloading 12.3 MiB / 58.9 MiB · 4.1 MiB/s · ETA 00:12`.
pub fn stage_gauge(frame: &mut Frame, area: Rect, progress: &StageProgress, theme: &Theme) {
    let amount = |n: u64| if progress.stage.counts_bytes() { HumanBytes(n).to_string() } else { HumanCount(n).to_string() };
    let mut label = format!("{} {}", progress.stage.label(), amount(progress.done));
    if let Some(total) = progress.total {
        label.push_str(&format!(" / {}", amount(total)));
    }
    if let Some(rate) = progress.rate() {
        label.push_str(&format!(" · {}/s", amount(rate as u64)));
    }
    if let Some(eta) = progress.eta_seconds() {
        label.push_str(&format!(" · ETA {}", format_duration(eta)));
    }
    let ratio = progress.total.filter(|t| *t > 0).map_or(0.0, |total| (progress.done as f64 / total as f64).clamp(0.0, 1.0));
    frame.render_widget(Gauge::default().ratio(ratio).label(label).gauge_style(theme.gauge()).use_unicode(true), area);
}

/// An image with a caption, drawn in the terminal's graphics protocol or as half-blocks.
pub struct Tile {
    pub image: StatefulProtocol,
    pub caption: String,
}

impl Tile {
    pub fn new(picker: &Picker, image: image::GrayImage, caption: String) -> Self {
        Self { image: picker.new_resize_protocol(image::DynamicImage::ImageLuma8(image)), caption }
    }
}

/// Scaled up smoothly to the cells it gets (the images are small).
const RESIZE: Resize = Resize::Scale(Some(FilterType::Triangle));

/// Lays `tiles` out in a grid of `columns`, each image above its caption, centred in its cell.
pub fn tile_grid(frame: &mut Frame, area: Rect, tiles: &mut [Tile], columns: usize, theme: &Theme) {
    if tiles.is_empty() || columns == 0 {
        return;
    }
    let rows = tiles.len().div_ceil(columns);
    let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
    for (row, chunk) in tiles.chunks_mut(columns).enumerate() {
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(row_areas[row]);
        for (tile, cell) in chunk.iter_mut().zip(cells.iter()) {
            render_tile(frame, *cell, tile, theme);
        }
    }
}

fn render_tile(frame: &mut Frame, area: Rect, tile: &mut Tile, theme: &Theme) {
    if area.height < 2 || area.width < 2 {
        return;
    }
    let [image_area, caption_area] = Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area);
    // One column of space between neighbours.
    let available = Size::new(image_area.width.saturating_sub(1), image_area.height);
    let size = tile.image.size_for(RESIZE, available);
    let centred = Rect {
        x: image_area.x + (image_area.width.saturating_sub(size.width)) / 2,
        y: image_area.y,
        width: size.width,
        height: size.height,
    };
    frame.render_stateful_widget(StatefulImage::default().resize(RESIZE), centred, &mut tile.image);
    let caption = truncate(&tile.caption, caption_area.width.saturating_sub(1) as usize);
    frame.render_widget(Paragraph::new(Line::styled(caption, theme.dim())).centered(), caption_area);
}

/// `text` cut to `width` characters, with an ellipsis when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
