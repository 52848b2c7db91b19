//! 6 Learner: the architecture and pretrained weights (editable), the parameter count, frozen
//! or not (`u` toggles), and the data it is fed. Running it opens the learner the Train step
//! continues.

use indicatif::HumanCount;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{Cell, Pane, PaneId, PaneKey};
use crate::learn::learner::LearnerSettings;
use crate::learn::open::OpenOptions;
use crate::learn::pretrained::Pretrained;
use crate::model::Arch;
use crate::render::theme::Theme;
use crate::tui::form::{Field, Form, Step};
use crate::tui::jobs::{JobRequest, LearnerInfo, Output, SavedLearner};
use crate::tui::keys::{self, Command, Key};
use crate::tui::widgets::ImageMaker;

const ARCH: usize = 0;
const START: usize = 1;
const BATCH_SIZE: usize = 2;
const IMAGE_SIZE: usize = 3;
const PRETRAINED: usize = 4;

/// The pretrained field's value for none.
const NO_WEIGHTS: &str = "none";

pub struct LearnerPane {
    cell: Cell,
    form: Form,
    info: Option<LearnerInfo>,
    /// The workspace's saved learner, before one is opened.
    saved: Option<SavedLearner>,
    /// `u` was pressed: the next run freezes or unfreezes the open learner.
    toggle_frozen: bool,
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
                Field::text("pretrained", NO_WEIGHTS, check_pretrained, Some(step_pretrained)),
            ]),
            info: None,
            saved: None,
            toggle_frozen: false,
        }
    }
}

fn pretrained(text: &str) -> Option<Result<Pretrained, String>> {
    (text != NO_WEIGHTS).then(|| text.parse::<Pretrained>())
}

fn check_pretrained(text: &str) -> Result<(), String> {
    pretrained(text).transpose().map(drop).map_err(|why| format!("{why}, or {NO_WEIGHTS}"))
}

/// ←/→ switch between no weights and torchvision's ImageNet ones; a path or URL is typed.
fn step_pretrained(text: &str, _forward: bool) -> Option<String> {
    Some(if text == NO_WEIGHTS { "imagenet" } else { NO_WEIGHTS }.to_string())
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
            // The field only holds checked values.
            pretrained: pretrained(self.form.text(PRETRAINED)).and_then(Result::ok),
            ..OpenOptions::default()
        }
    }

    pub fn request(&mut self) -> Result<JobRequest, String> {
        if !std::mem::take(&mut self.toggle_frozen) {
            return Ok(JobRequest::Learner(self.options()));
        }
        let info = self.info.as_ref().ok_or("open the learner first (Enter), then u freezes or unfreezes it")?;
        Ok(JobRequest::SetFrozen { open: self.options(), frozen: !info.frozen })
    }

    pub fn info(&self) -> Option<&LearnerInfo> {
        self.info.as_ref()
    }
}

impl Pane for LearnerPane {
    pane_with_form!(PaneId::Learner);

    fn code(&self) -> String {
        let options = self.options();
        let arch = options.arch.unwrap_or_default();
        let pretrained = if options.pretrained.is_some() { "True" } else { "False" };
        let load = if options.fresh { "" } else { "; learn.load('current')" };
        let unfreeze = match &self.info {
            Some(info) if !info.frozen => "; learn.unfreeze()",
            _ => "",
        };
        format!("learn = vision_learner(dls, {arch}, pretrained={pretrained}, metrics=error_rate){load}{unfreeze}")
    }

    fn keys(&self) -> &'static [Key] {
        keys::LEARNER
    }

    fn command(&mut self, command: Command) -> PaneKey {
        match command {
            Command::ToggleFrozen => {
                self.toggle_frozen = true;
                PaneKey::Run
            }
            _ => PaneKey::Ignored,
        }
    }

    fn on_output(&mut self, output: Output, _images: &ImageMaker) {
        match output {
            Output::Learner(info) => self.info = Some(info),
            Output::Saved(saved) => {
                // Continuing the saved learner is the default: the form takes its shape, so
                // the steps that open it (Train, Interpret, LR find) find what they expect.
                let arch = Arch::ALL.iter().position(|arch| *arch == saved.arch).expect("every arch is listed");
                self.form.set_choice(ARCH, arch);
                // A size the form does not take is left to the open step to report.
                let _ = self.form.set_number(IMAGE_SIZE, saved.image_size as u64);
                self.saved = Some(saved);
            }
            _ => {}
        }
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let Some(info) = &self.info else {
            if let Some(saved) = &self.saved {
                let frozen = if saved.frozen { ", body frozen" } else { "" };
                let line = format!(
                    "saved: a {} at {}px trained {} epoch(s){frozen}; Enter opens it, Train continues it",
                    saved.arch, saved.image_size, saved.epochs_done
                );
                frame.render_widget(Paragraph::new(line).style(theme.dim()).wrap(Wrap { trim: true }), area);
            }
            return;
        };
        let row = |key: &str, value: String| {
            Line::from(vec![Span::styled(format!("{key:<14}"), theme.dim()), Span::raw(value)])
        };
        let lines = vec![
            row("model", format!("{} with fastai's head", info.arch)),
            row("parameters", HumanCount(info.parameters as u64).to_string()),
            row(
                "frozen",
                if info.frozen {
                    "yes: only the head and BatchNorm train (u unfreezes)".into()
                } else {
                    "no: every layer trains (u freezes the body)".into()
                },
            ),
            row(
                "trained",
                match (info.epochs_done, info.resumed) {
                    (0, _) => "no epochs yet".to_string(),
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
