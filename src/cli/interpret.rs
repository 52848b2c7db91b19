//! `mednist interpret`: the lesson's `ClassificationInterpretation` of the trained learner's
//! validation predictions, as tables (or JSON), and the top-loss images when stdout is a
//! terminal.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::data::decode::decode_file;
use crate::data::window::Window;
use crate::job::CancelToken;
use crate::learn::data::TrainData;
use crate::learn::device::DeviceChoice;
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
}

pub fn run(workspace: &Workspace, args: &InterpretArgs, json: bool) -> Result<()> {
    let cancel = CancelToken::new();
    crate::cli::cancel_on_interrupt(&cancel, "stopping");
    let progress = if json { StderrProgress::quiet() } else { StderrProgress::new() };
    let learner = open_saved(workspace, args.device, &progress)?;
    // The learner's own window: the pixels it was trained on.
    let data = TrainData::load(workspace, learner.image_size, &learner.window, &progress, &cancel)?;
    learner.check_data(&data)?;
    let predictions = learner.predict(&data, &data.valid, &progress, &cancel).context("interpreting")?;
    let interpretation = Interpretation::new(&learner.classes, &predictions, &data.items, args.top);
    if json {
        return crate::cli::print_json(&interpretation);
    }
    print!("{}", render(&interpretation));
    if !args.no_images && std::io::stdout().is_terminal() {
        draw_top_losses(&interpretation.top_losses, &data.dataset, &learner.window);
    }
    Ok(())
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
            t.image(),
        ]);
    }
    out += &format!("top losses\n{}", top.render());
    out
}

/// The images with their captions, as the lesson's `plot_top_losses`: kitty or iTerm2
/// graphics where the terminal has them, half-blocks otherwise. DICOM and 16-bit images are
/// drawn in `window`, as the learner saw them.
fn draw_top_losses(top_losses: &[TopLoss], dataset: &Path, window: &Window) {
    let config = viuer::Config { absolute_offset: false, width: Some(24), ..viuer::Config::default() };
    for (rank, t) in top_losses.iter().enumerate() {
        println!(
            "\n{}. predicted {} / actual {} / loss {:.2} / p(actual) {:.2}  {}",
            rank + 1,
            t.predicted,
            t.actual,
            t.loss,
            t.probability_actual,
            t.image()
        );
        let path = dataset.join(&t.path);
        match decode_file(&path) {
            Ok(decoded) => {
                let frame = t.frame.map_or(0, |frame| frame.index);
                let picture = image::DynamicImage::ImageLuma8(decoded.gray8(frame, window));
                if let Err(error) = viuer::print(&picture, &config) {
                    eprintln!("cannot draw {}: {error}", path.display());
                }
            }
            Err(error) => eprintln!("cannot draw {}: {error}", path.display()),
        }
    }
}
