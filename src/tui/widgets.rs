//! Pieces several panes (and some headless output) draw: the stage gauge, captioned image
//! grids and the learning-rate finder's chart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};

use indicatif::{HumanBytes, HumanCount};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect, Size};
use ratatui::text::Line;
use ratatui::widgets::{Gauge, Paragraph};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::StatefulProtocol;
use ratatui_image::{FilterType, Resize, ResizeEncodeRender, StatefulImage};
use tokio::sync::mpsc::UnboundedSender;

use super::panes::StageProgress;
use crate::render::epochs::format_duration;
use crate::render::theme::Theme;

/// A one-line gauge: `downloading 12.3 MiB / 58.9 MiB · 4.1 MiB/s · ETA 00:12`.
pub fn stage_gauge(frame: &mut Frame, area: Rect, progress: &StageProgress, theme: &Theme) {
    let amount =
        |n: u64| if progress.stage.counts_bytes() { HumanBytes(n).to_string() } else { HumanCount(n).to_string() };
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
    let ratio =
        progress.total.filter(|t| *t > 0).map_or(0.0, |total| (progress.done as f64 / total as f64).clamp(0.0, 1.0));
    frame.render_widget(Gauge::default().ratio(ratio).label(label).gauge_style(theme.gauge()).use_unicode(true), area);
}

/// Scaled up smoothly to the cells it gets (the images are small).
const RESIZE: Resize = Resize::Scale(Some(FilterType::Triangle));

/// Ids that tell tiles apart when their encoded images come back.
static NEXT_TILE: AtomicU64 = AtomicU64::new(0);

/// Makes image tiles for the terminal's graphics protocol (half-blocks by default), and says
/// where their resizing and encoding runs: inline, or on a worker thread when one is set
/// (a 64-pixel image grown to 60x16 cells takes ~20 ms to encode as sixels).
pub struct ImageMaker {
    picker: Picker,
    encoder: Option<Sender<EncodeJob>>,
}

/// An image to resize and encode for `size` cells, off the UI thread.
pub struct EncodeJob {
    id: u64,
    protocol: StatefulProtocol,
    size: Size,
}

/// An image ready to draw, for the tile with `id`.
pub struct Encoded {
    id: u64,
    protocol: StatefulProtocol,
}

impl ImageMaker {
    pub fn new(picker: Picker) -> Self {
        Self { picker, encoder: None }
    }

    /// Encodes the images of tiles made from now on on a new thread, which sends them back
    /// through `done`.
    pub fn encode_on_worker(&mut self, done: UnboundedSender<Encoded>) -> std::io::Result<()> {
        let (jobs, queue) = mpsc::channel::<EncodeJob>();
        std::thread::Builder::new().name("mednist-images".into()).spawn(move || {
            for mut job in queue {
                job.protocol.resize_encode(&RESIZE, job.size);
                if done.send(Encoded { id: job.id, protocol: job.protocol }).is_err() {
                    return;
                }
            }
        })?;
        self.encoder = Some(jobs);
        Ok(())
    }

    pub fn set_picker(&mut self, picker: Picker) {
        self.picker = picker;
    }

    /// The protocol and font size, for the log.
    pub fn describe(&self) -> String {
        format!("{:?}, font {:?}", self.picker.protocol_type(), self.picker.font_size())
    }

    /// A tile of a gray image, or of a colour one (a heatmap over its image).
    pub fn tile(&self, image: impl Into<image::DynamicImage>, caption: String) -> Tile {
        Tile {
            id: NEXT_TILE.fetch_add(1, Ordering::Relaxed),
            image: Some(self.picker.new_resize_protocol(image.into())),
            size: Size::ZERO,
            encoder: self.encoder.clone(),
            caption,
        }
    }
}

/// An image with a caption.
pub struct Tile {
    id: u64,
    /// `None` while the worker encodes it.
    image: Option<StatefulProtocol>,
    /// Cells it took when last laid out.
    size: Size,
    encoder: Option<Sender<EncodeJob>>,
    pub caption: String,
}

impl Tile {
    /// Takes its image back from the worker; gives `encoded` back when it is another tile's.
    pub fn accept(&mut self, encoded: Encoded) -> Option<Encoded> {
        if encoded.id != self.id {
            return Some(encoded);
        }
        self.image = Some(encoded.protocol);
        None
    }

    fn layout(&mut self, available: Size) -> Size {
        if let Some(image) = &self.image {
            self.size = image.size_for(RESIZE, available);
        }
        self.size
    }

    fn render(&mut self, frame: &mut Frame, area: Rect) {
        let Some(image) = &mut self.image else { return };
        if let (Some(encoder), Some(size)) = (&self.encoder, image.needs_resize(&RESIZE, area.as_size())) {
            let protocol = self.image.take().expect("checked above");
            // A closed channel means the app is quitting: the image is not needed.
            let _ = encoder.send(EncodeJob { id: self.id, protocol, size });
            return;
        }
        frame.render_stateful_widget(StatefulImage::default().resize(RESIZE), area, image);
    }
}

/// Lays `tiles` out in a grid of `columns`, each image centred above its caption; the
/// captions of a row share a line.
pub fn tile_grid(frame: &mut Frame, area: Rect, tiles: &mut [Tile], columns: usize, theme: &Theme) {
    if tiles.is_empty() || columns == 0 {
        return;
    }
    let rows = tiles.len().div_ceil(columns);
    let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
    for (row, chunk) in tiles.chunks_mut(columns).enumerate() {
        let row_area = row_areas[row];
        if row_area.height < 2 {
            continue;
        }
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(row_area);
        // One column between neighbours, one line for the captions.
        let available = |cell: &Rect| Size::new(cell.width.saturating_sub(1), row_area.height - 1);
        let sizes: Vec<Size> =
            chunk.iter_mut().zip(cells.iter()).map(|(tile, cell)| tile.layout(available(cell))).collect();
        let caption_y = row_area.y + sizes.iter().map(|size| size.height).max().unwrap_or(0);
        for ((tile, cell), size) in chunk.iter_mut().zip(cells.iter()).zip(sizes) {
            let width = available(cell).width;
            let x = cell.x + width.saturating_sub(size.width) / 2;
            tile.render(frame, Rect { x, y: cell.y, width: size.width, height: size.height });
            let caption_area = Rect { x: cell.x, y: caption_y, width, height: 1 };
            let caption = truncate(&tile.caption, width as usize);
            frame.render_widget(Paragraph::new(Line::styled(caption, theme.dim())).centered(), caption_area);
        }
    }
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
