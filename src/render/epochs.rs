//! The training table's text, fastai's `fit_one_cycle` output: the CLI prints it, the Train
//! pane shows it.

use crate::event::EpochRow;

/// The lesson's table header, aligned with [`format_row`].
pub fn header() -> String {
    format!("{:>5}  {:>10}  {:>10}  {:>10}  {:>5}", "epoch", "train_loss", "valid_loss", "error_rate", "time")
}

pub fn format_row(row: &EpochRow) -> String {
    format!(
        "{:>5}  {:>10.6}  {:>10.6}  {:>10.6}  {:>5}",
        row.epoch,
        row.train_loss,
        row.valid_loss,
        row.error_rate,
        format_duration(row.seconds)
    )
}

/// fastai's `mm:ss`.
pub fn format_duration(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    format!("{:02}:{:02}", whole / 60, whole % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_under_the_header() {
        let row = EpochRow {
            epoch: 2,
            train_loss: 0.123456789,
            valid_loss: 0.05,
            error_rate: 0.008333,
            accuracy: 0.991667,
            seconds: 61.4,
            train_images_per_second: 30.0,
            data_wait_seconds: 0.0,
        };
        let line = format_row(&row);
        assert_eq!(line, "    2    0.123457    0.050000    0.008333  01:01");
        assert_eq!(line.len(), header().len());
    }
}
