//! 3 Classes: the class folders, their image counts as bars, and one image of each; for
//! DICOM and 16-bit images, what they are and the window that makes them 8-bit pixels (a
//! setting of the pane, recorded for every later step).

use indicatif::HumanCount;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, Paragraph};

use super::{Cell, Pane, PaneId, window};
use crate::data::report::tally;
use crate::data::scan::{ClassSummary, UnreadableFile};
use crate::data::settings::{DatasetSettings, Frames};
use crate::render::theme::Theme;
use crate::tui::form::{Field, Form};
use crate::tui::jobs::{ClassesInfo, JobRequest, Output};
use crate::tui::widgets::{ImageMaker, Tile, tile_grid, truncate};

/// Narrowest a thumbnail (with its caption) gets; more classes than fit are left out.
const THUMBNAIL_MIN_WIDTH: u16 = 9;
const LABEL_WIDTH: usize = 12;
/// Unreadable files named in the pane; the rest are counted.
const UNREADABLE_SHOWN: usize = 3;

const WINDOW: usize = 0;
const FRAMES: usize = 1;
const FRAME_CHOICES: [Frames; 2] = [Frames::All, Frames::Middle];

pub struct ClassesPane {
    cell: Cell,
    form: Form,
    classes: Vec<ClassSummary>,
    thumbnails: Vec<Tile>,
    notes: Vec<String>,
    /// One line per class on its DICOM or 16-bit pixels; empty for 8-bit images.
    pixel_lines: Vec<String>,
}

impl Default for ClassesPane {
    fn default() -> Self {
        let defaults = DatasetSettings::default();
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                window::field(&defaults.window),
                Field::choice("frames", &["all: every frame an image", "middle frame of each file"], 0),
            ]),
            classes: Vec::new(),
            thumbnails: Vec::new(),
            notes: Vec::new(),
            pixel_lines: Vec::new(),
        }
    }
}

impl ClassesPane {
    pub fn classes(&self) -> &[ClassSummary] {
        &self.classes
    }

    pub fn settings(&self) -> DatasetSettings {
        DatasetSettings {
            window: window::parse(self.form.text(WINDOW)),
            frames: FRAME_CHOICES[self.form.choice(FRAMES)],
        }
    }

    pub fn request(&self) -> Result<JobRequest, String> {
        Ok(JobRequest::Classes(self.settings()))
    }

    fn show_settings(&mut self, settings: DatasetSettings) {
        // Recorded settings always parse and are among the choices.
        let _ = self.form.set_text(WINDOW, &settings.window.to_string());
        self.form.set_choice(FRAMES, FRAME_CHOICES.iter().position(|f| *f == settings.frames).unwrap_or(0));
    }
}

/// `AbdomenCT  CT, 16 bits, MONOCHROME2, window file`: what a class's pixels are.
fn pixel_line(class: &ClassSummary) -> Option<String> {
    if class.windows.is_empty() && class.dicom.is_empty() {
        return None;
    }
    let dicom = &class.dicom;
    let bits: std::collections::BTreeMap<String, usize> =
        dicom.bits_stored.iter().map(|(bits, n)| (format!("{bits} bits"), *n)).collect();
    let multi_frame: usize = dicom.frames.iter().filter(|(frames, _)| **frames > 1).map(|(_, files)| files).sum();
    let mut parts: Vec<String> = [&dicom.modalities, &bits, &dicom.photometric_interpretations]
        .into_iter()
        .filter(|counts| !counts.is_empty())
        .map(|counts| tally(counts, 2))
        .collect();
    if multi_frame > 0 {
        parts.push(format!("{multi_frame} multi-frame file(s)"));
    }
    if !class.windows.is_empty() {
        parts.push(format!("window {}", tally(&class.windows, 2)));
    }
    Some(format!("{:<LABEL_WIDTH$} {}", truncate(&class.name, LABEL_WIDTH), parts.join(", ")))
}

fn unreadable_notes(files: &[UnreadableFile], count: usize) -> Vec<String> {
    if count == 0 {
        return Vec::new();
    }
    let mut notes = vec![format!("{count} unreadable file(s) skipped:")];
    let shown = &files[..files.len().min(UNREADABLE_SHOWN)];
    notes.extend(shown.iter().map(|file| format!("  {}: {}", file.path, file.reason)));
    if count > shown.len() {
        notes.push(format!("  ... and {} more (logs/tui.log lists them all)", count - shown.len()));
    }
    notes
}

impl Pane for ClassesPane {
    pane_with_form!(PaneId::Classes);

    fn code(&self) -> String {
        let settings = self.settings();
        if settings == DatasetSettings::default() {
            "path.ls(); get_image_files(path)".into()
        } else {
            format!("get_image_files(path)  # window {}, frames {}", settings.window, settings.frames)
        }
    }

    fn on_output(&mut self, output: Output, images: &ImageMaker) {
        let output = match output {
            Output::DatasetSettings(settings) => return self.show_settings(settings),
            output => output,
        };
        let Output::Classes(ClassesInfo { classes, thumbnails, unreadable, unreadable_count, empty_classes, settings }) =
            output
        else {
            return;
        };
        self.show_settings(settings);
        self.thumbnails = classes
            .iter()
            .zip(thumbnails)
            .filter_map(|(class, image)| Some(images.tile(image?, class.name.clone())))
            .collect();
        self.notes = unreadable_notes(&unreadable, unreadable_count);
        if !empty_classes.is_empty() {
            let names: Vec<&str> = empty_classes.iter().map(|c| c.name.as_str()).collect();
            self.notes.push(format!("left out, no readable image: {}", names.join(", ")));
        }
        self.pixel_lines = classes.iter().filter_map(pixel_line).collect();
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
        // The chart gets a line per class, then the pixel lines; the thumbnails what is left
        // (at least 4 lines).
        let chart_height = (self.classes.len() as u16).min(area.height.saturating_sub(summary.len() as u16 + 5));
        let pixels_height =
            (self.pixel_lines.len() as u16).min(area.height.saturating_sub(summary.len() as u16 + chart_height + 6));
        let [summary_area, chart_area, pixels_area, _, thumbnail_area] = Layout::vertical([
            Constraint::Length(summary.len() as u16),
            Constraint::Length(chart_height),
            Constraint::Length(pixels_height),
            Constraint::Length(1),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(summary), summary_area);
        let pixel_lines: Vec<Line> =
            self.pixel_lines.iter().map(|line| Line::styled(line.clone(), theme.dim())).collect();
        frame.render_widget(Paragraph::new(pixel_lines), pixels_area);

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
