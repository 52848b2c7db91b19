//! `mednist interpret`: the lesson's `ClassificationInterpretation` of the trained learner's
//! validation predictions, and what a clinic asks beyond it: per-class sensitivity,
//! specificity, PPV, NPV, F1 and AUC with bootstrap intervals, ROC curves, calibration
//! (and `--calibrate`), test-time augmentation (`--tta`) and Grad-CAM of the top losses
//! (`--cam`), as tables and text charts (or JSON), with the top-loss images when stdout is a
//! terminal.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Result, bail};

use crate::cli::charts::{reliability_text, roc_text};
use crate::cli::heatmap::{self, ClinicalArgs};
use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::data::cache::decode_gray;
use crate::data::decode::decode_file;
use crate::job::{CancelToken, is_cancelled};
use crate::learn::cam::Heatmap;
use crate::learn::checkpoint::Which;
use crate::learn::clinical::{Bootstrap, ClinicalMetrics, Estimate, METRIC_NAMES, Metrics};
use crate::learn::data::TrainData;
use crate::learn::device::DeviceChoice;
use crate::learn::evaluate::{Calibration, EvaluateOptions, Evaluation, TtaReport, evaluate};
use crate::learn::interpret::{Interpretation, TopLoss};
use crate::learn::open::open_saved;
use crate::workspace::Workspace;

#[derive(Debug, clap::Args)]
pub struct InterpretArgs {
    /// How many of the worst validation images to list
    #[arg(long, default_value_t = 9)]
    pub top: usize,
    /// Do not draw the top-loss images (they are drawn only when stdout is a terminal)
    #[arg(long)]
    pub no_images: bool,
    /// Where to run the model: auto, cpu, cuda, cuda:N
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Fit temperature scaling on the validation set and keep it with the learner: predict and export use it
    #[arg(long, conflicts_with = "epoch")]
    pub calibrate: bool,
    /// Which checkpoint: last, best (by the monitored figure) or the table's epoch number, when kept
    #[arg(long, default_value = "last", value_name = "best|last|N")]
    pub epoch: Which,
    /// Bootstrap resamples of the validation images behind each 95% interval
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    #[command(flatten)]
    pub clinical: ClinicalArgs,
}

/// Columns of the printed charts.
const CHART_WIDTH: u16 = 76;

pub fn run(workspace: &Workspace, args: &InterpretArgs, json: bool) -> Result<()> {
    if args.resamples < 2 {
        bail!("--resamples {}: an interval needs at least 2 bootstrap resamples (1000 is the default)", args.resamples);
    }
    let cancel = CancelToken::new();
    crate::cli::cancel_on_interrupt(&cancel, "stopping");
    let progress = if json { StderrProgress::quiet() } else { StderrProgress::new() };
    let mut learner = open_saved(workspace, args.epoch, args.device, &progress)?;
    // The learner's own window: the pixels it was trained on.
    let data = TrainData::load(workspace, learner.image_size, &learner.window, &progress, &cancel)?;
    let options = EvaluateOptions {
        top: args.top,
        bootstrap: Bootstrap { resamples: args.resamples, seed: args.clinical.seed },
        calibrate: args.calibrate,
        tta: args.clinical.tta(),
        cam: args.clinical.cam(),
    };
    let evaluation = match evaluate(&mut learner, &data, &options, &progress, &cancel) {
        Err(error) if is_cancelled(&error) => bail!("interrupted"),
        other => other?,
    };
    let written = match args.clinical.cam_folder()? {
        Some(folder) => write_cams(folder, &evaluation, &data)?,
        None => Vec::new(),
    };
    if json {
        return crate::cli::print_json(&evaluation);
    }
    print!("{}", render(&evaluation.interpretation));
    print!("{}", render_clinical(&evaluation));
    for path in &written {
        println!("wrote {}", path.display());
    }
    if !args.no_images && std::io::stdout().is_terminal() {
        draw_top_losses(&evaluation, &data);
    }
    Ok(())
}

/// The PNG of each top loss with its heatmap, in `folder`.
fn write_cams(folder: &Path, evaluation: &Evaluation, data: &TrainData) -> Result<Vec<std::path::PathBuf>> {
    let tops = evaluation.interpretation.top_losses.iter().zip(&evaluation.top_loss_cams);
    tops.enumerate()
        .map(|(rank, (top, heatmap))| {
            let gray = decode_gray(&data.dataset.join(&top.file), frame_of(top), heatmap.side, &data.window)?;
            heatmap::write_png(folder, rank + 1, Path::new(&top.image()), &top.predicted, &gray, heatmap)
        })
        .collect()
}

/// Every table of the interpretation, as plain text.
pub fn render(interpretation: &Interpretation) -> String {
    let classes = &interpretation.classes;
    let matrix = |cell: &dyn Fn(usize, usize) -> String| {
        let mut table = Table::new(std::iter::once("actual \\ predicted".to_string()).chain(classes.iter().cloned()));
        for (actual, name) in classes.iter().enumerate() {
            table.row(std::iter::once(name.clone()).chain((0..classes.len()).map(|p| cell(actual, p))));
        }
        table.render()
    };
    let mut out = format!(
        "{} validation images, error_rate {:.4}\n\nconfusion matrix (counts)\n{}\nconfusion matrix (fraction of each actual class)\n{}\n",
        interpretation.confusion.iter().flatten().sum::<usize>(),
        interpretation.error_rate,
        matrix(&|actual, predicted| interpretation.confusion[actual][predicted].to_string()),
        matrix(&|actual, predicted| format!("{:.3}", interpretation.normalized_row(actual)[predicted])),
    );
    let mut scores = Table::new(["class", "precision", "recall", "f1", "support"]);
    for s in &interpretation.scores {
        scores.row([
            s.class.clone(),
            format!("{:.4}", s.precision),
            format!("{:.4}", s.recall),
            format!("{:.4}", s.f1),
            s.support.to_string(),
        ]);
    }
    out += &format!("per class\n{}\n", scores.render());
    if interpretation.most_confused.is_empty() {
        out += "most confused: none, every validation image is right\n\n";
    } else {
        let mut confused = Table::new(["actual", "predicted", "images"]);
        for c in &interpretation.most_confused {
            confused.row([c.actual.clone(), c.predicted.clone(), c.count.to_string()]);
        }
        out += &format!("most confused\n{}\n", confused.render());
    }
    let mut top = Table::new(["#", "predicted", "actual", "loss", "p(actual)", "image"]);
    for (rank, t) in interpretation.top_losses.iter().enumerate() {
        top.row([
            (rank + 1).to_string(),
            t.predicted.clone(),
            t.actual.clone(),
            format!("{:.4}", t.loss),
            format!("{:.4}", t.probability_actual),
            t.path.clone(),
        ]);
    }
    out += &format!("top losses\n{}", top.render());
    out
}

/// The clinical figures, the charts, calibration and test-time augmentation, as plain text.
pub fn render_clinical(evaluation: &Evaluation) -> String {
    let metrics = &evaluation.metrics;
    let mut out = format!(
        "\none class against the rest, with 95% intervals ({} bootstrap resamples of the validation images, seed {})\n",
        metrics.bootstrap.resamples, metrics.bootstrap.seed
    );
    for names in [&METRIC_NAMES[..3], &METRIC_NAMES[3..]] {
        out += &metrics_table(metrics, names).render();
    }
    out += &format!("\nROC curves (one class against the rest)\n{}\n", roc_text(metrics, CHART_WIDTH));
    out += &render_calibration(&evaluation.calibration);
    if let Some(tta) = &evaluation.tta {
        out += &render_tta(tta, evaluation);
    }
    out
}

/// Per class then the averages, one column per figure named in `names`.
fn metrics_table(metrics: &ClinicalMetrics, names: &[&str]) -> Table {
    let mut table = Table::new(std::iter::once("class".to_string()).chain(names.iter().map(|n| n.to_string())));
    let mut row = |label: String, figures: &Metrics| {
        let all = figures.all();
        let cells = names.iter().map(|name| all[METRIC_NAMES.iter().position(|n| n == name).unwrap()].to_string());
        table.row(std::iter::once(label).chain(cells));
    };
    for class in &metrics.per_class {
        row(class.class.clone(), &class.metrics);
    }
    row("macro average".into(), &metrics.macro_average);
    row("weighted average".into(), &metrics.weighted_average);
    table
}

fn render_calibration(calibration: &Calibration) -> String {
    let bins = calibration.bins.len();
    let mut out = match (calibration.temperature, &calibration.uncalibrated) {
        (Some(temperature), Some(before)) => {
            let when =
                if calibration.fitted_now { "fitted now on the validation set and saved" } else { "fitted earlier" };
            format!(
                "\ncalibration ({bins} bins): temperature {temperature:.4} ({when}): ECE {:.4} before, {:.4} after\n",
                before.ece, calibration.ece
            )
        }
        _ => format!(
            "\ncalibration ({bins} bins): ECE {:.4} (not calibrated: --calibrate fits a temperature)\n",
            calibration.ece
        ),
    };
    out += &format!("reliability diagram\n{}\n", reliability_text(calibration, (CHART_WIDTH, 16)));
    let mut table = Table::new(["confidence", "images", "mean confidence", "accuracy", "gap"]);
    for bin in calibration.bins.iter().filter(|bin| bin.count > 0) {
        let (confidence, accuracy) = (bin.confidence.unwrap_or_default(), bin.accuracy.unwrap_or_default());
        table.row([
            format!("({:.3}, {:.3}]", bin.lower, bin.upper),
            bin.count.to_string(),
            format!("{confidence:.4}"),
            format!("{accuracy:.4}"),
            format!("{:+.4}", accuracy - confidence),
        ]);
    }
    out + &table.render()
}

fn render_tta(tta: &TtaReport, evaluation: &Evaluation) -> String {
    let mut out = format!(
        "\ntest-time augmentation: {} augmented copies of each image and the image itself ({} x plain + {} x mean of the copies, as fastai's tta)\n",
        tta.copies,
        tta.beta,
        1.0 - tta.beta
    );
    let mut table = Table::new(["", "without", "with tta"]);
    table.row([
        "error_rate".into(),
        format!("{:.4}", evaluation.interpretation.error_rate),
        format!("{:.4}", tta.error_rate),
    ]);
    table.row(["ECE".into(), format!("{:.4}", evaluation.calibration.ece), format!("{:.4}", tta.ece)]);
    let plain = &evaluation.metrics;
    let value = |estimate: &Estimate| estimate.value.map_or("-".into(), |v| format!("{v:.4}"));
    for (index, name) in METRIC_NAMES.iter().enumerate() {
        let (without, with) = (plain.macro_average.all()[index], tta.metrics.macro_average.all()[index]);
        table.row([format!("macro {name}"), value(without), value(with)]);
    }
    out += &table.render();
    out += "with tta, per class\n";
    for names in [&METRIC_NAMES[..3], &METRIC_NAMES[3..]] {
        out += &metrics_table(&tta.metrics, names).render();
    }
    out
}

/// The images with their captions, as the lesson's `plot_top_losses` (beside their heatmaps
/// with `--cam`): kitty or iTerm2 graphics where the terminal has them, half-blocks otherwise.
fn draw_top_losses(evaluation: &Evaluation, data: &TrainData) {
    let top_losses = &evaluation.interpretation.top_losses;
    let cams = evaluation.top_loss_cams.iter().map(Some).chain(std::iter::repeat(None));
    for (rank, (t, cam)) in top_losses.iter().zip(cams).enumerate() {
        println!(
            "\n{}. predicted {} / actual {} / loss {:.2} / p(actual) {:.2}  {}{}",
            rank + 1,
            t.predicted,
            t.actual,
            t.loss,
            t.probability_actual,
            t.image(),
            if cam.is_some() { format!("  (right: Grad-CAM for {})", t.predicted) } else { String::new() }
        );
        draw_one(t, cam, data);
    }
}

/// The frame of a top loss's file it is (0 for single images).
fn frame_of(top: &TopLoss) -> u32 {
    top.frame.map_or(0, |frame| frame.index)
}

/// One top loss, DICOM and 16-bit images in the learner's window as it saw them.
fn draw_one(top: &TopLoss, cam: Option<&Heatmap>, data: &TrainData) {
    let path = data.dataset.join(&top.file);
    let picture = match cam {
        Some(heatmap) => decode_gray(&path, frame_of(top), heatmap.side, &data.window)
            .map(|gray| heatmap::side_by_side(&gray, heatmap)),
        None => decode_file(&path)
            .map(|decoded| image::DynamicImage::ImageLuma8(decoded.gray8(frame_of(top), &data.window)))
            .map_err(anyhow::Error::from),
    };
    match picture {
        Ok(picture) => heatmap::print(&picture, if cam.is_some() { 50 } else { 24 }, Path::new(&top.path)),
        Err(error) => eprintln!("cannot draw {}: {error:#}", top.path),
    }
}
