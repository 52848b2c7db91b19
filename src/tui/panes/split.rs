//! 4 Split: hold out a validation set (percentage, seed and grouping editable); counts per
//! class, and per side the patients (or studies) kept whole.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Row, Table};

use super::{Cell, Pane, PaneId};
use crate::data::split::{ClassCounts, GroupBy, SplitOptions};
use crate::render::theme::Theme;
use crate::tui::form::{Field, Form, Step};
use crate::tui::jobs::{JobRequest, Output, SplitInfo};
use crate::tui::widgets::ImageMaker;

const VALID_PERCENT: usize = 0;
const SEED: usize = 1;
const STRATIFY: usize = 2;
const GROUP: usize = 3;
/// The group field's choices after the first, "as the dataset suggests".
const GROUPS: [GroupBy; 3] = [GroupBy::Patient, GroupBy::Study, GroupBy::None];

pub struct SplitPane {
    cell: Cell,
    form: Form,
    split: Option<SplitInfo>,
}

impl Default for SplitPane {
    fn default() -> Self {
        let defaults = SplitOptions::default();
        Self {
            cell: Cell::default(),
            form: Form::new(vec![
                Field::number("valid %", (defaults.valid_pct * 100.0).round() as u64, 1, 99, Step::Add(5)),
                Field::number("seed", defaults.seed, 0, u64::MAX, Step::Add(1)),
                Field::choice("stratify", &["no", "yes, per class"], usize::from(defaults.stratify)),
                Field::choice(
                    "keep whole",
                    &[
                        "auto: patients when the DICOM files name them",
                        "patients: none on both sides",
                        "studies: none on both sides",
                        "nothing: split images",
                    ],
                    0,
                ),
            ]),
            split: None,
        }
    }
}

impl SplitPane {
    pub fn options(&self) -> SplitOptions {
        SplitOptions {
            valid_pct: self.form.number(VALID_PERCENT) as f64 / 100.0,
            seed: self.form.number(SEED),
            stratify: self.form.choice(STRATIFY) == 1,
            group: self.form.choice(GROUP).checked_sub(1).map(|choice| GROUPS[choice]),
        }
    }

    pub fn request(&self) -> Result<JobRequest, String> {
        Ok(JobRequest::Split(self.options()))
    }
}

fn percent(counts: ClassCounts) -> String {
    let images = counts.train + counts.valid;
    if images == 0 { "-".into() } else { format!("{:.1}%", 100.0 * counts.valid as f64 / images as f64) }
}

impl Pane for SplitPane {
    pane_with_form!(PaneId::Split);

    fn code(&self) -> String {
        let options = self.options();
        let splitter = format!("RandomSplitter(valid_pct={}, seed={})", options.valid_pct, options.seed);
        match options.group {
            Some(group) if !group.is_none() => format!("splitter = {splitter}  # whole {} on one side", group.plural()),
            _ => format!("splitter = {splitter}"),
        }
    }

    fn on_output(&mut self, output: Output, _images: &ImageMaker) {
        if let Output::Split(info) = output {
            self.split = Some(info);
        }
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let Some(split) = &self.split else { return };
        let header = Row::new(["class", "train", "valid", "valid %"]).style(theme.accent());
        let mut rows: Vec<Row> = split
            .classes
            .iter()
            .zip(&split.counts)
            .map(|(name, counts)| {
                Row::new([name.clone(), counts.train.to_string(), counts.valid.to_string(), percent(*counts)])
            })
            .collect();
        let total = split.counts.iter().fold(ClassCounts::default(), |sum, c| ClassCounts {
            train: sum.train + c.train,
            valid: sum.valid + c.valid,
        });
        rows.push(
            Row::new(["total".to_string(), total.train.to_string(), total.valid.to_string(), percent(total)])
                .style(theme.accent()),
        );
        let widths = [Constraint::Length(16), Constraint::Length(8), Constraint::Length(8), Constraint::Length(8)];
        let table = Table::new(rows, widths).header(header).style(theme.base());
        let how = if split.options.stratify { "stratified by class" } else { "over all images" };
        let grouped = match split.group {
            GroupBy::None => String::new(),
            group => format!(
                "; whole {} on one side: {} train, {} valid",
                group.plural(),
                split.groups.train,
                split.groups.valid
            ),
        };
        let [caption_area, table_area] =
            ratatui::layout::Layout::vertical([Constraint::Length(2), Constraint::Fill(1)]).areas(area);
        frame.render_widget(
            Line::styled(
                format!(
                    "{}% held out {how}, seed {}{grouped}: in split.json",
                    (split.options.valid_pct * 100.0).round(),
                    split.options.seed
                ),
                theme.dim(),
            ),
            caption_area,
        );
        frame.render_widget(table, table_area);
    }
}
