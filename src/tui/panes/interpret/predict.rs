//! The Predict view: the lesson's `learn.predict` on an image file (JPEG, PNG or DICOM) of the
//! settings (Enter), its classes as bars beside the image, `c` for the Grad-CAM of the top
//! class.

use std::path::Path;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::data::scan::image_label;
use crate::learn::overlay::overlay;
use crate::render::theme::Theme;
use crate::tui::jobs::PredictInfo;
use crate::tui::widgets::{ImageMaker, Tile, tile_grid, truncate};

/// The image's columns beside the bars.
const IMAGE_WIDTH: u16 = 40;
/// Classes listed, the most probable first.
const CLASSES_SHOWN: usize = 6;

/// The image file setting's check: a file must be there (its content is the kernel's to judge).
pub fn check_image_file(text: &str) -> Result<(), String> {
    let path = Path::new(text);
    if text.is_empty() {
        return Err("type the path of a JPEG, PNG or DICOM file".into());
    }
    if path.is_dir() {
        return Err(format!("{text} is a folder: give one image file"));
    }
    if !path.exists() {
        return Err(format!("no file at {text}"));
    }
    Ok(())
}

/// A file's prediction as shown.
pub struct Predicted {
    /// The file, and its frame in a multi-frame file.
    label: String,
    classes: Vec<(String, f32)>,
    image: Tile,
    cam: Option<Tile>,
}

impl Predicted {
    pub fn new(info: PredictInfo, images: &ImageMaker) -> Self {
        let PredictInfo { file, frame, classes, image, heatmap } = info;
        let caption = classes.first().map_or_else(String::new, |(class, p)| format!("{class} {p:.4}"));
        let cam =
            heatmap.map(|heatmap| images.tile(overlay(image.as_raw(), &heatmap, 1), format!("Grad-CAM for {caption}")));
        Self { label: image_label(file.display(), frame), classes, image: images.tile(image, caption), cam }
    }

    pub fn has_cam(&self) -> bool {
        self.cam.is_some()
    }

    pub fn tiles_mut(&mut self) -> impl Iterator<Item = &mut Tile> {
        std::iter::once(&mut self.image).chain(&mut self.cam)
    }
}

pub fn render(frame: &mut Frame, area: Rect, predicted: Option<&mut Predicted>, cam_shown: bool, theme: &Theme) {
    let Some(predicted) = predicted else {
        let hint = "select the image file setting (↓), type its path (e, then Enter), then Enter predicts it";
        frame.render_widget(Paragraph::new(Line::styled(hint, theme.dim())), area);
        return;
    };
    let [title, _, rest] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let text = format!("learn.predict: {}", predicted.label);
    frame.render_widget(Line::styled(truncate(&text, area.width as usize), theme.accent()), title);
    let [image, _, bars] =
        Layout::horizontal([Constraint::Length(IMAGE_WIDTH), Constraint::Length(2), Constraint::Fill(1)]).areas(rest);
    let tile = match &mut predicted.cam {
        Some(cam) if cam_shown => cam,
        _ => &mut predicted.image,
    };
    tile_grid(frame, image, std::slice::from_mut(tile), 1, theme);
    frame.render_widget(Paragraph::new(bar_lines(&predicted.classes, bars.width as usize, theme)), bars);
}

/// One line per class: its name, a bar as long as its probability, the probability.
fn bar_lines(classes: &[(String, f32)], width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let name_width = classes.iter().map(|(class, _)| class.chars().count()).max().unwrap_or(0).min(16);
    let bar_width = width.saturating_sub(name_width + 10);
    let mut lines = vec![Line::styled("the most probable classes", theme.dim())];
    for (rank, (class, probability)) in classes.iter().take(CLASSES_SHOWN).enumerate() {
        let cells = (f64::from(*probability) * bar_width as f64).round() as usize;
        let name_style = if rank == 0 { theme.accent() } else { theme.base() };
        lines.push(Line::from(vec![
            Span::styled(format!("{:name_width$} ", truncate(class, name_width)), name_style),
            Span::styled(format!("{:<bar_width$}", "█".repeat(cells)), theme.bar()),
            Span::raw(format!(" {probability:.4}")),
        ]));
    }
    lines
}
