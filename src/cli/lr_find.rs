//! `mednist lr-find`: the lesson's `learn.lr_find()`, headless. The learner is left as it was.

use anyhow::{Result, bail};
use ratatui::widgets::Widget;

use crate::cli::charts::text_of;
use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::cli::train::LearnerArgs;
use crate::job::{CancelToken, is_cancelled};
use crate::learn::lr_find::{LrFindOptions, LrFindResult};
use crate::learn::open::{Opened, open_learner};
use crate::render::charts::LrChart;
use crate::render::theme::Theme;
use crate::workspace::Workspace;

#[derive(Debug, clap::Args)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub learner: LearnerArgs,
    /// Learning rate of the first batch
    #[arg(long, default_value = "1e-7")]
    pub start_lr: f64,
    /// Learning rate the sweep ends at
    #[arg(long, default_value_t = 10.0)]
    pub end_lr: f64,
    /// Batches in the sweep
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Keep going when the loss diverges
    #[arg(long)]
    pub no_stop: bool,
}

pub fn run(workspace: &Workspace, args: &LrFindArgs, json: bool) -> Result<()> {
    if !(args.start_lr > 0.0 && args.end_lr > args.start_lr) {
        bail!("--start-lr {} and --end-lr {}: need 0 < start < end", args.start_lr, args.end_lr);
    }
    if args.iterations < 2 {
        bail!("--iterations {}: the sweep needs at least 2 batches", args.iterations);
    }
    let cancel = CancelToken::new();
    crate::cli::cancel_on_interrupt(&cancel, "stopping the sweep");
    let progress = if json { StderrProgress::quiet() } else { StderrProgress::new() };
    let Opened { mut learner, data, .. } = open_learner(workspace, &args.learner.open_options(), &progress, &cancel)?;
    let options = LrFindOptions {
        start_lr: args.start_lr,
        end_lr: args.end_lr,
        iterations: args.iterations,
        stop_on_divergence: !args.no_stop,
    };
    let result = learner.lr_find(&data, &options, &progress, &cancel).map_err(|error| {
        if is_cancelled(&error) { anyhow::anyhow!("interrupted; the learner is as it was") } else { error }
    })?;
    if json {
        return crate::cli::print_json(&result);
    }
    println!("{}", chart_text(&result, &options, CHART_SIZE));
    print!("{}", render(&result));
    Ok(())
}

/// Columns and rows of the printed chart.
const CHART_SIZE: (u16, u16) = (76, 18);

/// The pane's chart drawn as text (braille, no colours), for terminals and logs alike.
fn chart_text(result: &LrFindResult, options: &LrFindOptions, size: (u16, u16)) -> String {
    let chart = LrChart::new(&result.log_lr_curve(), result.suggestions.as_ref(), options);
    text_of(size, |area, buffer| chart.widget(&Theme::monochrome()).render(area, buffer))
}

/// The suggestions, then the curve's figures at about a dozen points.
pub fn render(result: &LrFindResult) -> String {
    let mut out = match &result.suggestions {
        Some(s) => format!(
            "suggested learning rates: valley {:.2e} (fastai's default), steep {:.2e}\n",
            s.valley.lr, s.steep.lr
        ),
        None => "the sweep was too short to suggest a learning rate: use more --iterations\n".to_string(),
    };
    let stopped = if result.diverged { ", stopped when the loss diverged" } else { "" };
    out += &format!("{} batches{stopped}\n", result.lrs.len());
    let mut curve = Table::new(["lr", "smoothed loss"]);
    let step = result.lrs.len().div_ceil(12).max(1);
    for (lr, loss) in result.lrs.iter().zip(&result.losses).step_by(step) {
        curve.row([format!("{lr:.2e}"), format!("{loss:.4}")]);
    }
    out + &curve.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::lr_find::LrRecorder;

    #[test]
    fn the_chart_prints_as_plain_text_lines() {
        let options = LrFindOptions { iterations: 50, stop_on_divergence: false, ..LrFindOptions::default() };
        let mut recorder = LrRecorder::new(options);
        for i in 0..50 {
            let x = options.lr_at(i).log10();
            recorder.record(options.lr_at(i), if x < -3.0 { 2.0 + x / 10.0 } else { 1.7 + (x + 3.0) });
        }
        let text = chart_text(&recorder.finish(), &options, (60, 14));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 14);
        assert!(lines.iter().all(|line| line.chars().count() <= 60));
        assert!(text.contains("learning rate (log)") && text.contains("1e-7"), "{text}");
        assert!(text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)), "a braille curve:\n{text}");
        assert!(!text.contains('\u{1b}'), "no escape codes in logs");
    }
}
