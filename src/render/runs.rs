//! What both front ends show of the workspace's runs: a run's line in the list, and runs
//! compared, their per-epoch values side by side and their curves (drawn by
//! [`crate::render::charts::RunCurves`]). `mednist runs` prints them as text, the Train
//! pane's runs view as ratatui widgets.

use std::collections::BTreeSet;

use crate::event::EpochRow;
use crate::runs::RunSummary;

/// How to read a metric from an epoch's row.
pub type Metric = fn(&EpochRow) -> f64;

/// The metrics runs are compared by, per epoch: their name and how to read one from a row.
pub const COMPARED: [(&str, Metric); 2] = [("valid_loss", |row| row.valid_loss), ("error_rate", |row| row.error_rate)];

/// The headers of [`listing_cells`].
pub const LISTING_HEADERS: [&str; 7] = ["run", "status", "arch", "epochs", "best", "valid_loss", "error_rate"];

/// A run's line in the list: its name (`*` when it is the `current` one), status,
/// architecture, epochs, and its best epoch (the lowest valid_loss) with that epoch's
/// valid_loss and error_rate.
pub fn listing_cells(summary: &RunSummary, current: Option<&str>) -> [String; 7] {
    let record = &summary.record;
    let best = summary.best.as_ref();
    let marked = if current == Some(record.name.as_str()) { "*" } else { "" };
    [
        format!("{}{marked}", record.name),
        record.status.to_string(),
        record.arch.clone().unwrap_or_else(|| "-".into()),
        summary.rows.len().to_string(),
        best.map_or("-".into(), |row| row.epoch.to_string()),
        best.map_or("-".into(), |row| format!("{:.6}", row.valid_loss)),
        best.map_or("-".into(), |row| format!("{:.6}", row.error_rate)),
    ]
}

/// Each run's `metric` by epoch, named after the run.
pub fn curves(summaries: &[&RunSummary], metric: Metric) -> Vec<(String, Vec<(f64, f64)>)> {
    let points = |summary: &RunSummary| summary.rows.iter().map(|row| (row.epoch as f64, metric(row))).collect();
    summaries.iter().map(|summary| (summary.record.name.clone(), points(summary))).collect()
}

/// Runs' epochs side by side: one row per epoch any of them has, and per run its valid_loss
/// and error_rate (`-` where it has no such epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct SideBySide {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl SideBySide {
    pub fn new(summaries: &[&RunSummary]) -> Self {
        let mut headers = vec!["epoch".to_string()];
        for summary in summaries {
            headers.extend(COMPARED.iter().map(|(metric, _)| format!("{} {metric}", summary.record.name)));
        }
        let epochs: BTreeSet<usize> = summaries.iter().flat_map(|s| s.rows.iter().map(|row| row.epoch)).collect();
        let rows = epochs
            .into_iter()
            .map(|epoch| {
                let mut cells = vec![epoch.to_string()];
                for summary in summaries {
                    // A resumed epoch is logged again: its last row stands.
                    let row = summary.rows.iter().rfind(|row| row.epoch == epoch);
                    cells.extend(
                        COMPARED.iter().map(|(_, metric)| row.map_or("-".into(), |row| format!("{:.6}", metric(row)))),
                    );
                }
                cells
            })
            .collect();
        Self { headers, rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{RunRecord, RunStatus};

    fn row(epoch: usize, valid_loss: f64) -> EpochRow {
        EpochRow {
            epoch,
            train_loss: 1.0,
            valid_loss,
            error_rate: valid_loss / 10.0,
            accuracy: 1.0 - valid_loss / 10.0,
            seconds: 1.0,
            train_images_per_second: 1.0,
            data_wait_seconds: 0.0,
        }
    }

    fn summary(name: &str, rows: Vec<EpochRow>) -> RunSummary {
        let mut record = RunRecord::starting(name, serde_json::Value::Null);
        record.end(RunStatus::Finished, None);
        RunSummary { best: rows.iter().min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss)).cloned(), rows, record }
    }

    #[test]
    fn epochs_line_up_across_runs_and_missing_ones_show_a_dash() {
        let a = summary("a", vec![row(0, 0.5), row(1, 0.25), row(1, 0.2)]);
        let b = summary("b", vec![row(0, 0.4)]);
        let table = SideBySide::new(&[&a, &b]);
        assert_eq!(table.headers, ["epoch", "a valid_loss", "a error_rate", "b valid_loss", "b error_rate"]);
        assert_eq!(table.rows[0], ["0", "0.500000", "0.050000", "0.400000", "0.040000"]);
        assert_eq!(table.rows[1], ["1", "0.200000", "0.020000", "-", "-"], "the resumed epoch's last row");
    }

    #[test]
    fn a_run_s_line_marks_the_current_one_and_names_its_best_epoch() {
        let a = summary("a", vec![row(0, 0.5), row(1, 0.25)]);
        let cells = listing_cells(&a, Some("a"));
        assert_eq!(cells, ["a*", "finished", "-", "2", "1", "0.250000", "0.025000"]);
        assert_eq!(listing_cells(&summary("b", Vec::new()), Some("a"))[..5], ["b", "finished", "-", "0", "-"]);
    }
}
