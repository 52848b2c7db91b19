//! 1 Setup: versions, the device training will use, the workspace and its dataset.

use indicatif::{HumanBytes, HumanCount};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{Cell, Pane, PaneId};
use crate::render::theme::Theme;
use crate::tui::jobs::{Output, SetupInfo};
use crate::tui::widgets::ImageMaker;

#[derive(Default)]
pub struct SetupPane {
    cell: Cell,
    info: Option<SetupInfo>,
}

impl SetupPane {
    pub fn info(&self) -> Option<&SetupInfo> {
        self.info.as_ref()
    }
}

impl Pane for SetupPane {
    pane!(PaneId::Setup);

    fn code(&self) -> String {
        "import torch; torch.cuda.is_available()".into()
    }

    fn on_output(&mut self, output: Output, _images: &ImageMaker) {
        if let Output::Setup(info) = output {
            self.info = Some(*info);
        }
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let Some(info) = &self.info else { return };
        let system = &info.system;
        let unknown = || "unknown".to_string();
        let mut rows: Vec<(&str, String)> = vec![
            ("mednist", system.mednist_version.to_string()),
            ("burn", system.burn_version.to_string()),
            ("LibTorch", system.libtorch.version.clone().unwrap_or_else(unknown)),
        ];
        if let Some(error) = &system.libtorch.error {
            rows.push(("LibTorch error", error.clone()));
        }
        if system.cuda.devices.is_empty() {
            let threads = system.cpu_threads.map_or(String::new(), |t| format!("{t} threads of "));
            rows.push(("device", format!("CPU, {threads}{} logical CPUs (no CUDA GPU)", system.logical_cpus)));
        }
        for gpu in &system.cuda.devices {
            let memory = gpu.memory_bytes.map_or(String::new(), |bytes| format!(", {}", HumanBytes(bytes)));
            rows.push(("device", format!("cuda:{} {}{memory}", gpu.index, gpu.name)));
        }
        if let Some(note) = &system.cuda.note {
            rows.push(("note", note.clone()));
        }
        rows.push(("workspace", system.workspace.display().to_string()));
        rows.push((
            "dataset",
            match &info.dataset {
                Some(dataset) => format!(
                    "{} images in {} classes, from {}",
                    HumanCount(dataset.images()),
                    dataset.classes.len(),
                    dataset.source
                ),
                None => "none yet: fetch one in step 2".into(),
            },
        ));
        let lines: Vec<Line> = rows
            .into_iter()
            .map(|(key, value)| Line::from(vec![Span::styled(format!("{key:<14}"), theme.dim()), Span::raw(value)]))
            .collect();
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
    }
}
