//! 8 Interpret and 9 LR find: steps of the lesson that come with a later version. Their
//! slots are kept so the keys and the layout do not move when they arrive.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use super::{Cell, Pane, PaneId};
use crate::tui::theme::Theme;

pub struct ComingPane {
    id: PaneId,
    cell: Cell,
    code: &'static str,
    what: &'static str,
}

impl ComingPane {
    pub fn interpret() -> Self {
        Self {
            id: PaneId::Interpret,
            cell: Cell::default(),
            code: "interp = ClassificationInterpretation.from_learner(learn)",
            what: "The confusion matrix and the images the model got most wrong.",
        }
    }

    pub fn lr_find() -> Self {
        Self {
            id: PaneId::LrFind,
            cell: Cell::default(),
            code: "learn.lr_find()",
            what: "The learning-rate finder: loss against learning rate, to pick max_lr.",
        }
    }
}

impl Pane for ComingPane {
    fn id(&self) -> PaneId {
        self.id
    }

    fn cell(&self) -> &Cell {
        &self.cell
    }

    fn cell_mut(&mut self) -> &mut Cell {
        &mut self.cell
    }

    fn code(&self) -> String {
        self.code.into()
    }

    fn render_output(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let lines = vec![Line::raw(self.what), Line::raw(""), Line::styled("Coming in a later version.", theme.dim())];
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
    }
}
