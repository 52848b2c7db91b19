//! The Train pane's runs view (`r`): the workspace's runs listed as `mednist runs` lists them,
//! and the valid_loss and error_rate curves of the runs compared overlaid, one colour and
//! marker per run, with their epochs side by side where there is room. ↑ ↓ pick a run and
//! Space puts it in or out of the comparison. At first the current run and the latest other
//! one are compared: the training just done against the one before it.

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::render::charts::RunCurves;
use crate::render::runs::{COMPARED, LISTING_HEADERS, SideBySide, curves, listing_cells};
use crate::render::theme::Theme;
use crate::runs::RunSummary;
use crate::tui::jobs::RunsListing;

/// Columns of the list: the compared mark, then [`LISTING_HEADERS`]'s, with their widths.
const MARK_WIDTH: u16 = 3;
const LISTING_WIDTHS: [u16; 7] = [19, 8, 8, 6, 4, 10, 10];
/// The list's columns left out first when it is narrow, by index in [`LISTING_HEADERS`]:
/// best epoch, arch, epochs, status.
const DROPPED_FIRST: [usize; 4] = [4, 2, 3, 1];
/// The smallest a chart is drawn; charts this tall are stacked rather than put side by side.
const MIN_CHART_WIDTH: u16 = 40;
const MIN_CHART_HEIGHT: u16 = 6;
const TALL_CHART_HEIGHT: u16 = 10;
/// Width of a value column of the epochs table, and of its epoch column.
const VALUE_WIDTH: u16 = 12;
const EPOCH_WIDTH: u16 = 5;

#[derive(Debug, Default)]
pub struct RunsView {
    /// The runs as last read, or why they could not be; `None` before the first read.
    listing: Option<Result<RunsListing, String>>,
    /// A read is under way.
    reading: bool,
    /// The runs compared, by name.
    compared: BTreeSet<String>,
    /// The run ↑ ↓ are on, by its place in the listing.
    selected: usize,
}

impl RunsView {
    /// The runs are being read again (the view was opened).
    pub fn reading(&mut self) {
        self.reading = true;
    }

    /// The runs as read: the run picked stays picked, and the runs compared stay compared while
    /// they exist; when none is left, the current run and the latest other one are.
    pub fn show(&mut self, listing: Result<RunsListing, String>) {
        self.reading = false;
        if let Ok(listing) = &listing {
            let picked = self.selected_run().map(|run| run.record.name.clone());
            self.selected = picked
                .and_then(|name| listing.runs.iter().position(|run| run.record.name == name))
                .unwrap_or(0)
                .min(listing.runs.len().saturating_sub(1));
            self.compared.retain(|name| listing.runs.iter().any(|run| run.record.name == *name));
            if self.compared.is_empty() {
                self.compared = default_compared(listing);
            }
        }
        self.listing = Some(listing);
    }

    fn runs(&self) -> &[RunSummary] {
        match &self.listing {
            Some(Ok(listing)) => &listing.runs,
            _ => &[],
        }
    }

    fn selected_run(&self) -> Option<&RunSummary> {
        self.runs().get(self.selected)
    }

    /// Moves the pick `step` runs down (up when negative), staying on the list.
    pub fn pick(&mut self, step: isize) {
        let last = self.runs().len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(step).min(last);
    }

    /// Puts the picked run in the comparison, or out of it.
    pub fn toggle_compared(&mut self) -> Result<(), &'static str> {
        let name = self.selected_run().ok_or("no run to compare yet: each fit (Enter) is recorded as a run")?;
        let name = name.record.name.clone();
        if !self.compared.remove(&name) {
            self.compared.insert(name);
        }
        Ok(())
    }

    /// The runs compared, in the listing's order (oldest first).
    pub fn compared(&self) -> Vec<&RunSummary> {
        self.runs().iter().filter(|run| self.compared.contains(&run.record.name)).collect()
    }

    pub fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let listing = match &self.listing {
            None => return frame.render_widget(Line::styled("reading the runs…", theme.dim()), area),
            Some(Err(why)) => {
                let text = format!("cannot read the runs: {why}");
                return frame
                    .render_widget(Paragraph::new(text).style(theme.failed()).wrap(Wrap { trim: false }), area);
            }
            Some(Ok(listing)) => listing,
        };
        let compared = self.compared();
        let caption = match (self.reading, listing.runs.len()) {
            (true, _) => "reading the runs again…".to_string(),
            (false, 0) => "no runs in this workspace yet: each fit (Enter) is recorded as a run".to_string(),
            (false, count) => format!("{count} run(s), {} compared · * the current run", compared.len()),
        };
        let list_height = (listing.runs.len() as u16 + 1).min((area.height * 2 / 5).max(4));
        let [caption_area, list, _, rest] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(if listing.runs.is_empty() { 0 } else { list_height }),
            Constraint::Length(1),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Line::styled(caption, theme.dim()), caption_area);
        self.render_list(frame, list, listing, theme);
        if compared.is_empty() {
            if !listing.runs.is_empty() {
                frame.render_widget(Line::styled("Space on a run compares its curves", theme.dim()), rest);
            }
            return;
        }
        let table = SideBySide::new(&compared);
        let table_width = EPOCH_WIDTH + (VALUE_WIDTH + 1) * (table.headers.len() as u16 - 1);
        // The epochs table only where it leaves both charts their room.
        let beside_table = Rect { width: rest.width.saturating_sub(table_width + 1), ..rest };
        let charts = if chart_layout(beside_table).is_some_and(|(_, roomy)| roomy) {
            let [charts, _, table_area] =
                Layout::horizontal([Constraint::Fill(1), Constraint::Length(1), Constraint::Length(table_width)])
                    .areas(rest);
            render_side_by_side(frame, table_area, &table, theme);
            charts
        } else {
            rest
        };
        render_curves(frame, charts, &compared, theme);
    }

    fn render_list(&self, frame: &mut Frame, area: Rect, listing: &RunsListing, theme: &Theme) {
        let shown = listed_columns(area.width);
        let header = Row::new(
            std::iter::once(Cell::from("")).chain(shown.iter().map(|&column| Cell::from(LISTING_HEADERS[column]))),
        )
        .style(theme.accent());
        let compared_names: Vec<&str> = self.compared().iter().map(|run| run.record.name.as_str()).collect();
        let rows = listing.runs.iter().map(|run| {
            let cells = listing_cells(run, listing.current.as_deref());
            // A compared run wears its curves' marker and colour: the list is the legend too.
            let (mark, style) = match compared_names.iter().position(|name| *name == run.record.name) {
                Some(index) => (format!("[{}]", RunCurves::symbol(index)), theme.series(index)),
                None => ("[ ]".to_string(), theme.base()),
            };
            let cells = shown.iter().map(|&column| Cell::from(cells[column].clone()));
            Row::new(std::iter::once(Cell::from(Span::styled(mark, style))).chain(cells))
        });
        let widths = std::iter::once(MARK_WIDTH).chain(shown.iter().map(|&column| LISTING_WIDTHS[column]));
        let table = Table::new(rows, widths.map(Constraint::Length))
            .header(header)
            .style(theme.base())
            .row_highlight_style(theme.selected());
        let mut state = TableState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(table, area, &mut state);
    }
}

/// The current run and the latest other one (the latest two when none is current).
fn default_compared(listing: &RunsListing) -> BTreeSet<String> {
    let current = listing.current.clone().into_iter();
    let others = listing.runs.iter().rev().map(|run| run.record.name.clone());
    let latest_other = others.filter(|name| Some(name) != listing.current.as_ref());
    let wanted = if listing.current.is_some() { 1 } else { 2 };
    current.chain(latest_other.take(wanted)).collect()
}

/// The list's columns that fit in `width`, by index in [`LISTING_HEADERS`].
fn listed_columns(width: u16) -> Vec<usize> {
    let mut shown: Vec<usize> = (0..LISTING_HEADERS.len()).collect();
    let needed = |shown: &[usize]| MARK_WIDTH + shown.iter().map(|&column| LISTING_WIDTHS[column] + 1).sum::<u16>();
    for column in DROPPED_FIRST {
        if needed(&shown) <= width {
            break;
        }
        shown.retain(|&kept| kept != column);
    }
    shown
}

/// How the two charts share `area` (a direction, and whether each gets room enough), or
/// `None` where only one fits: stacked where both are tall, else side by side where both are
/// wide, else stacked where both can be drawn at all.
fn chart_layout(area: Rect) -> Option<(Direction, bool)> {
    if area.width >= MIN_CHART_WIDTH && area.height >= 2 * TALL_CHART_HEIGHT {
        Some((Direction::Vertical, true))
    } else if area.width >= 2 * MIN_CHART_WIDTH && area.height >= MIN_CHART_HEIGHT {
        Some((Direction::Horizontal, area.height >= TALL_CHART_HEIGHT))
    } else if area.height >= 2 * MIN_CHART_HEIGHT {
        Some((Direction::Vertical, false))
    } else {
        None
    }
}

/// valid_loss and error_rate as [`chart_layout`] places them; valid_loss alone where both
/// do not fit.
fn render_curves(frame: &mut Frame, area: Rect, compared: &[&RunSummary], theme: &Theme) {
    let areas: Vec<Rect> = match chart_layout(area) {
        Some((direction, _)) => Layout::new(direction, [Constraint::Ratio(1, 2); 2]).split(area).to_vec(),
        None => vec![area],
    };
    for (area, (metric, value)) in areas.into_iter().zip(COMPARED) {
        frame.render_widget(RunCurves::new(metric, &curves(compared, value)).widget(theme), area);
    }
}

/// The compared runs' epochs side by side, each run's columns headed by its marker (the
/// list and the legend name it); the latest epochs when not all fit.
fn render_side_by_side(frame: &mut Frame, area: Rect, table: &SideBySide, theme: &Theme) {
    let header = table.headers.iter().enumerate().map(|(column, header)| match column {
        0 => Span::raw(header.clone()),
        _ => {
            let run = (column - 1) / COMPARED.len();
            let metric = COMPARED[(column - 1) % COMPARED.len()].0;
            Span::styled(format!("{} {metric}", RunCurves::symbol(run)), theme.series(run))
        }
    });
    let shown = (area.height as usize).saturating_sub(1);
    let rows = table.rows[table.rows.len().saturating_sub(shown)..].iter().map(|row| Row::new(row.clone()));
    let widths = std::iter::once(EPOCH_WIDTH).chain(std::iter::repeat_n(VALUE_WIDTH, table.headers.len() - 1));
    let widget = Table::new(rows, widths.map(Constraint::Length))
        .header(Row::new(header.map(Cell::from)).style(theme.accent()))
        .style(theme.base());
    frame.render_widget(widget, area);
}
