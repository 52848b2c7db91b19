//! `mednist predict FILE|FOLDER...`: classify images with an exported model (its calibration
//! temperature applied), each frame of a multi-frame DICOM file as an image, rendered in the
//! export's window, optionally with test-time augmentation (`--tta`) and Grad-CAM heatmaps
//! (`--cam`). A file that cannot be read or decoded is reported and the rest are still
//! predicted; a DICOM object that holds no image (a DICOMDIR, a report) is reported as skipped.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::heatmap::{self, ClinicalArgs};
use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::data::cache::render as render_gray;
use crate::data::decode::decode_file;
use crate::data::scan::{Frame, image_label};
use crate::data::settings::Frames;
use crate::job::CancelToken;
use crate::learn::cam::Heatmap;
use crate::learn::device::DeviceChoice;
use crate::learn::export::ExportedModel;
use crate::learn::inference::Tta;
use crate::workspace::Workspace;

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Image files, or folders to search for images
    #[arg(required = true, value_name = "FILE|FOLDER")]
    pub inputs: Vec<PathBuf>,
    /// The exported model [default: export.mednist in the workspace]
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// How many classes to show per image, most probable first
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Where to run the model: auto, cpu, cuda, cuda:N
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Which frames of a multi-frame DICOM file to predict: all, or the middle one
    #[arg(long, default_value_t = Frames::All)]
    pub frames: Frames,
    #[command(flatten)]
    pub clinical: ClinicalArgs,
}

/// One input's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub file: PathBuf,
    /// The frame, for an image that is one frame of a multi-frame file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<Frame>,
    /// The most probable classes first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassProbability>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a file that is no image (a DICOMDIR, a report) was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Grad-CAM of the most probable class, with `--cam`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cam: Option<Heatmap>,
}

impl Prediction {
    fn label(&self) -> String {
        image_label(self.file.display(), self.frame)
    }

    fn of(file: &Path) -> Self {
        Self { file: file.to_path_buf(), frame: None, classes: Vec::new(), error: None, skipped: None, cam: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassProbability {
    pub class: String,
    pub probability: f32,
}

pub fn run(workspace: &Workspace, args: &PredictArgs, json: bool) -> Result<()> {
    let path = args.model.clone().unwrap_or_else(|| workspace.export_file());
    if args.model.is_none() && !path.exists() {
        bail!("no exported model at {}: run `mednist export` first, or pass --model PATH", path.display());
    }
    let (device, _) = args.device.resolve()?;
    let model = ExportedModel::load(&path, &device)?;
    let files = collect_files(&args.inputs);
    let progress = if json { StderrProgress::quiet() } else { StderrProgress::new() };
    let options =
        PredictOptions { top: args.top, frames: args.frames, tta: args.clinical.tta(), cam: args.clinical.cam() };
    let (predictions, images) = predict_files(&model, &files, &options, &progress)?;
    let failed = predictions.iter().filter(|p| p.error.is_some()).count();
    let written = match args.clinical.cam_folder()? {
        Some(folder) => write_cams(folder, &predictions, &images)?,
        None => Vec::new(),
    };
    if json {
        crate::cli::print_json(&predictions)?;
    } else {
        for p in &predictions {
            if let Some(reason) = &p.skipped {
                eprintln!("skipped {}: {reason}", p.file.display());
            }
            if let Some(error) = &p.error {
                eprintln!("cannot predict {}: {error}", p.file.display());
            }
        }
        if let Some(tta) = options.tta {
            println!(
                "test-time augmentation: {} augmented copies of each image and the image itself ({} x plain + {} x their mean)",
                tta.copies,
                Tta::BETA,
                1.0 - Tta::BETA
            );
        }
        print!("{}", render_table(&predictions, args.top));
        for path in &written {
            println!("wrote {}", path.display());
        }
        if options.cam && std::io::stdout().is_terminal() {
            draw_cams(&predictions, &images);
        } else if options.cam && written.is_empty() {
            eprintln!("the heatmaps are drawn only when stdout is a terminal: --cam-dir DIR writes them as PNGs");
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) could not be predicted (see above)", predictions.len());
    }
    Ok(())
}

/// The inputs' files: a folder gives every file under it, sorted; a missing path stays in the
/// list so that it is reported.
fn collect_files(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(input)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().is_file() && !is_hidden(entry.path()))
                .map(walkdir::DirEntry::into_path)
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    files
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with('.'))
}

/// An image's gray pixels as the model saw them, `None` for a file that gave no image.
pub type Pixels = Option<Vec<u8>>;

/// What [`predict_files`] computes for each image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictOptions {
    /// Classes to keep per image, most probable first.
    pub top: usize,
    /// Which frames of multi-frame files.
    pub frames: Frames,
    pub tta: Option<Tta>,
    /// A Grad-CAM heatmap of each image's most probable class.
    pub cam: bool,
}

/// What became of one input file before the model: its images, or why there are none.
enum Decoded {
    Images(Vec<(Option<Frame>, Vec<u8>)>),
    Skipped(String),
    Failed(String),
}

/// Decodes `files` (in parallel) in the export's window and predicts their images (the chosen
/// frames of multi-frame files), keeping their order; also returns each outcome's pixels
/// (`None` for a file that gave no image).
pub fn predict_files(
    model: &ExportedModel,
    files: &[PathBuf],
    options: &PredictOptions,
    progress: &StderrProgress,
) -> Result<(Vec<Prediction>, Vec<Pixels>)> {
    let (side, window) = (model.header.image_size, model.header.window);
    let decoded: Vec<Decoded> = files
        .par_iter()
        .map(|file| match decode_file(file) {
            Ok(decoded) => {
                let count = decoded.frames();
                let frame_of = |index| (count > 1).then_some(Frame { index, count });
                let images = options
                    .frames
                    .pick(count)
                    .map(|index| (frame_of(index), render_gray(&decoded, index, side, &window)));
                Decoded::Images(images.collect())
            }
            Err(reason) if reason.is_not_an_image_object() => Decoded::Skipped(reason.to_string()),
            Err(reason) => Decoded::Failed(format!("cannot use {}: {reason}", file.display())),
        })
        .collect();
    let images: Vec<Vec<u8>> = decoded
        .iter()
        .flat_map(|d| match d {
            Decoded::Images(images) => images.iter().map(|(_, pixels)| pixels.clone()).collect(),
            _ => Vec::new(),
        })
        .collect();
    let cancel = CancelToken::new();
    let scores = match options.tta {
        Some(tta) => model.predict_tta(images.clone(), tta, progress, &cancel)?.augmented,
        None => model.predict(images.clone(), progress, &cancel)?,
    };
    let best: Vec<usize> = (0..scores.len()).map(|row| scores.predicted(row)).collect();
    let mut cams =
        if options.cam { model.grad_cam(images.clone(), &best)?.into_iter().map(Some).collect() } else { Vec::new() };
    cams.resize(scores.len(), None);
    let (mut cams, mut images) = (cams.into_iter(), images.into_iter());
    let classes = &model.header.classes;
    let (mut row, mut predictions, mut pixels) = (0, Vec::new(), Vec::new());
    for (file, decoded) in files.iter().zip(decoded) {
        match decoded {
            Decoded::Failed(error) => {
                predictions.push(Prediction { error: Some(error), ..Prediction::of(file) });
                pixels.push(None);
            }
            Decoded::Skipped(reason) => {
                predictions.push(Prediction { skipped: Some(reason), ..Prediction::of(file) });
                pixels.push(None);
            }
            Decoded::Images(frames) => {
                for (frame, _) in frames {
                    let classes = scores
                        .ranked(row)
                        .into_iter()
                        .take(options.top.max(1))
                        .map(|(class, probability)| ClassProbability { class: classes[class].clone(), probability })
                        .collect();
                    row += 1;
                    let cam = cams.next().flatten();
                    predictions.push(Prediction { frame, classes, cam, ..Prediction::of(file) });
                    pixels.push(images.next());
                }
            }
        }
    }
    Ok((predictions, pixels))
}

/// Each predicted image with its heatmap as a PNG in `folder`.
fn write_cams(folder: &Path, predictions: &[Prediction], images: &[Pixels]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (index, (prediction, gray)) in predictions.iter().zip(images).enumerate() {
        if let (Some(heatmap), Some(gray), Some(best)) = (&prediction.cam, gray, prediction.classes.first()) {
            written.push(heatmap::write_png(folder, index + 1, &prediction.file, &best.class, gray, heatmap)?);
        }
    }
    Ok(written)
}

fn draw_cams(predictions: &[Prediction], images: &[Pixels]) {
    for (prediction, gray) in predictions.iter().zip(images) {
        if let (Some(heatmap), Some(gray), Some(best)) = (&prediction.cam, gray, prediction.classes.first()) {
            println!(
                "\n{}: {} {:.4} (right: Grad-CAM for {})",
                prediction.label(),
                best.class,
                best.probability,
                best.class
            );
            heatmap::print(&heatmap::side_by_side(gray, heatmap), 50, &prediction.file);
        }
    }
}

fn render_table(predictions: &[Prediction], top: usize) -> String {
    let top = top.max(1);
    let mut headers = vec!["file".to_string()];
    headers.extend((1..=top).map(|rank| format!("#{rank}")));
    let mut table = Table::new(headers);
    for p in predictions.iter().filter(|p| !p.classes.is_empty()) {
        let cells = p.classes.iter().map(|c| format!("{} {:.4}", c.class, c.probability));
        table.row(std::iter::once(p.label()).chain(cells));
    }
    table.render()
}
