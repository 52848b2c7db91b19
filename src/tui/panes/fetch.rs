//! 2 Fetch: the embedded lesson sample, the full MedNIST, or a URL or path typed in.

use indicatif::{HumanBytes, HumanCount};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use super::{Cell, Pane, PaneId};
use crate::data::fetch::{DatasetInfo, FetchRequest, Source};
use crate::render::theme::Theme;
use crate::tui::form::{Field, Form};
use crate::tui::jobs::{JobRequest, Output};
use crate::tui::widgets::ImageMaker;

const SOURCE: usize = 0;
const LOCATION: usize = 1;
const LESSON: usize = 0;
const MEDNIST: usize = 1;

pub struct FetchPane {
    cell: Cell,
    form: Form,
    fetched: Option<DatasetInfo>,
}

impl Default for FetchPane {
    fn default() -> Self {
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                Field::choice(
                    "source",
                    &["lesson sample (built in)", "full MedNIST (download)", "URL or path"],
                    LESSON,
                ),
                Field::text("URL or path", "", check_location, None),
            ]),
            fetched: None,
        }
    }
}

fn check_location(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("type an http(s) URL, an archive or a folder of class folders".into());
    }
    Source::parse(text).map(|_| ()).map_err(|e| e.to_string())
}

impl FetchPane {
    pub fn request(&self) -> Result<JobRequest, String> {
        let request = match self.form.choice(SOURCE) {
            LESSON => FetchRequest::lesson(),
            MEDNIST => FetchRequest::mednist(),
            _ => {
                let location = self.form.text(LOCATION);
                check_location(location).map_err(|why| format!("URL or path: {why}"))?;
                FetchRequest::new(Source::parse(location).map_err(|e| e.to_string())?, None)
            }
        };
        Ok(JobRequest::Fetch(request))
    }
}

impl Pane for FetchPane {
    pane_with_form!(PaneId::Fetch);

    fn code(&self) -> String {
        match self.form.choice(SOURCE) {
            LESSON => "path = untar_data(LESSON_SAMPLE)".into(),
            MEDNIST => "path = untar_data(URLs.MEDNIST)".into(),
            _ => format!("path = untar_data({:?})", self.form.text(LOCATION)),
        }
    }

    fn on_output(&mut self, output: Output, _images: &ImageMaker) {
        if let Output::Fetched(info) = output {
            self.fetched = Some(info);
        }
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let Some(info) = &self.fetched else { return };
        let mut lines = vec![
            Line::styled(format!("Fetched {}", info.source), theme.done()),
            Line::raw(format!(
                "{} images in {} classes, {}",
                HumanCount(info.images()),
                info.classes.len(),
                HumanBytes(info.bytes)
            )),
        ];
        if let Some(checksum) = &info.checksum {
            lines.push(Line::styled(format!("verified {checksum}"), theme.dim()));
        }
        let classes: Vec<String> = info.classes.iter().map(|c| format!("{} ({})", c.name, c.files)).collect();
        lines.push(Line::raw(""));
        lines.push(Line::raw(classes.join(", ")));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
    }
}
