//! 5 Preview: the lesson's `show_batch` (nine augmented training images with their labels),
//! or one image under several random augmentations. `n` draws a new sample. The window (for
//! DICOM and 16-bit images) can be changed here as in Classes: it is one dataset setting.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;

use super::{Cell, Pane, PaneId, PaneKey, window};
use crate::data::window::Window;
use crate::render::theme::Theme;
use crate::tui::form::{Field, Form};
use crate::tui::jobs::{JobRequest, Output, PreviewInfo, PreviewView};
use crate::tui::keys::{self, Command, Key};
use crate::tui::widgets::{ImageMaker, Tile, tile_grid};

const VIEW: usize = 0;
const WINDOW: usize = 1;
const COLUMNS: usize = 3;

pub struct PreviewPane {
    cell: Cell,
    form: Form,
    /// Seed of the next sample: each run draws a new one.
    next_seed: u64,
    shown: Option<(PreviewView, u64, Window)>,
    tiles: Vec<Tile>,
}

impl Default for PreviewPane {
    fn default() -> Self {
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                Field::choice("view", &["a batch: 9 augmented training images", "one image, 9 ways augmented"], 0),
                window::field(&Window::default()),
            ]),
            next_seed: 0,
            shown: None,
            tiles: Vec::new(),
        }
    }
}

impl PreviewPane {
    fn view(&self) -> PreviewView {
        if self.form.choice(VIEW) == 0 { PreviewView::Batch } else { PreviewView::Augmentations }
    }

    pub fn request(&mut self) -> Result<JobRequest, String> {
        let seed = self.next_seed;
        self.next_seed += 1;
        Ok(JobRequest::Preview { view: self.view(), seed, window: self.window() })
    }

    fn window(&self) -> Window {
        window::parse(self.form.text(WINDOW))
    }

    pub fn captions(&self) -> Vec<&str> {
        self.tiles.iter().map(|tile| tile.caption.as_str()).collect()
    }
}

impl Pane for PreviewPane {
    pane_with_form!(PaneId::Preview);

    fn code(&self) -> String {
        match self.view() {
            PreviewView::Batch => "dls.show_batch(max_n=9)".into(),
            PreviewView::Augmentations => "dls.show_batch(max_n=9, unique=True)".into(),
        }
    }

    fn keys(&self) -> &'static [Key] {
        keys::PREVIEW
    }

    fn command(&mut self, command: Command) -> PaneKey {
        match command {
            Command::NewSample => PaneKey::Run,
            _ => PaneKey::Ignored,
        }
    }

    fn on_output(&mut self, output: Output, images: &ImageMaker) {
        match output {
            Output::DatasetSettings(settings) => {
                // Recorded windows always parse.
                let _ = self.form.set_text(WINDOW, &settings.window.to_string());
            }
            Output::Preview(PreviewInfo { view, seed, window, tiles }) => {
                self.tiles = tiles.into_iter().map(|(image, caption)| images.tile(image, caption)).collect();
                self.shown = Some((view, seed, window));
            }
            _ => {}
        }
    }

    fn tiles_mut(&mut self) -> Vec<&mut Tile> {
        self.tiles.iter_mut().collect()
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let Some((view, seed, window)) = self.shown else { return };
        let what = match view {
            PreviewView::Batch => "training images as the model sees them",
            PreviewView::Augmentations => "one image under random augmentations",
        };
        let [caption_area, grid_area] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        let windowed = if window == Window::default() { String::new() } else { format!(", window {window}") };
        frame.render_widget(Line::styled(format!("sample {seed}: {what}{windowed}"), theme.dim()), caption_area);
        tile_grid(frame, grid_area, &mut self.tiles, COLUMNS, theme);
    }
}
