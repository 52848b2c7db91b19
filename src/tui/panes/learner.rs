//! 6 Learner: the architecture (editable), its parameter count, frozen or not, and the data
//! it is fed. Running it opens the learner the Train step continues.

use indicatif::HumanCount;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{Cell, Pane, PaneId};
use crate::learn::learner::LearnerSettings;
use crate::learn::open::OpenOptions;
use crate::model::Arch;
use crate::tui::form::{Field, Form, Step};
use crate::tui::jobs::{JobRequest, LearnerInfo, Output};
use crate::tui::theme::Theme;
use crate::tui::widgets::ImageMaker;

const ARCH: usize = 0;
const START: usize = 1;
const BATCH_SIZE: usize = 2;
const IMAGE_SIZE: usize = 3;

pub struct LearnerPane {
    cell: Cell,
    form: Form,
    info: Option<LearnerInfo>,
}

impl Default for LearnerPane {
    fn default() -> Self {
        let defaults = OpenOptions::default();
        let arch = Arch::ALL.iter().position(|a| *a == Arch::default()).expect("the default is listed");
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                Field::choice("architecture", &Arch::ALL.map(Arch::name), arch),
                Field::choice("start from", &["the saved learner, if any", "a new learner"], 0),
                Field::number("batch size", defaults.settings.batch_size as u64, 1, 4096, Step::Double),
                Field::number("image size", defaults.image_size as u64, 16, 512, Step::Double),
            ]),
            info: None,
        }
    }
}

impl LearnerPane {
    /// The learner these settings open (also used by the Train step when none is open).
    pub fn options(&self) -> OpenOptions {
        OpenOptions {
            arch: Some(Arch::ALL[self.form.choice(ARCH)]),
            fresh: self.form.choice(START) == 1,
            image_size: self.form.number(IMAGE_SIZE) as usize,
            settings: LearnerSettings {
                batch_size: self.form.number(BATCH_SIZE) as usize,
                ..LearnerSettings::default()
            },
            ..OpenOptions::default()
        }
    }

    pub fn request(&self) -> Result<JobRequest, String> {
        Ok(JobRequest::Learner(self.options()))
    }

    pub fn info(&self) -> Option<&LearnerInfo> {
        self.info.as_ref()
    }
}

impl Pane for LearnerPane {
    fn id(&self) -> PaneId {
        PaneId::Learner
    }

    fn cell(&self) -> &Cell {
        &self.cell
    }

    fn cell_mut(&mut self) -> &mut Cell {
        &mut self.cell
    }

    fn form(&self) -> Option<&Form> {
        Some(&self.form)
    }

    fn form_mut(&mut self) -> Option<&mut Form> {
        Some(&mut self.form)
    }

    fn code(&self) -> String {
        let options = self.options();
        let arch = options.arch.unwrap_or_default();
        let load = if options.fresh { "" } else { "; learn.load('current')" };
        format!("learn = vision_learner(dls, {arch}, metrics=error_rate){load}")
    }

    fn on_output(&mut self, output: Output, _images: &ImageMaker) {
        if let Output::Learner(info) = output {
            self.info = Some(info);
        }
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let Some(info) = &self.info else { return };
        let row = |key: &str, value: String| {
            Line::from(vec![Span::styled(format!("{key:<14}"), theme.dim()), Span::raw(value)])
        };
        let lines = vec![
            row("model", format!("{} with fastai's head", info.arch)),
            row("parameters", HumanCount(info.parameters as u64).to_string()),
            row(
                "frozen",
                if info.frozen {
                    "yes: only the head and BatchNorm train".into()
                } else {
                    "no: every layer trains".into()
                },
            ),
            row(
                "trained",
                match (info.epochs_done, info.resumed) {
                    (0, _) => "not yet: random weights".to_string(),
                    (epochs, false) => format!("{epochs} epoch(s)"),
                    (epochs, true) => format!("{epochs} epoch(s), continuing the saved checkpoint"),
                },
            ),
            row("device", info.device.clone()),
            row(
                "data",
                format!(
                    "{} train / {} valid images at {}px, batches of {}",
                    HumanCount(info.train_images as u64),
                    HumanCount(info.valid_images as u64),
                    info.image_size,
                    info.batch_size
                ),
            ),
        ];
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
    }
}
