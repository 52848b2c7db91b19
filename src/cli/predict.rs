//! `mednist predict FILE|FOLDER...`: classify images with an exported model, each frame of a
//! multi-frame DICOM file as an image, rendered in the export's window. A file that cannot be
//! read or decoded is reported and the rest are still predicted; a DICOM object that holds no
//! image (a DICOMDIR, a report) is reported as skipped.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::data::cache::render;
use crate::data::decode::decode_file;
use crate::data::scan::{Frame, image_label};
use crate::data::settings::Frames;
use crate::job::CancelToken;
use crate::learn::device::DeviceChoice;
use crate::learn::export::ExportedModel;
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
}

impl Prediction {
    fn label(&self) -> String {
        image_label(self.file.display(), self.frame)
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
    let predictions = predict_files(&model, &files, args.top, args.frames, &progress)?;
    let failed = predictions.iter().filter(|p| p.error.is_some()).count();
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
        print!("{}", render_table(&predictions, args.top));
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

/// What became of one input file before the model: its images, or why there are none.
enum Decoded {
    Images(Vec<(Option<Frame>, Vec<u8>)>),
    Skipped(String),
    Failed(String),
}

/// Decodes `files` (in parallel) in the export's window and predicts their images (the
/// `frames` of multi-frame files), keeping their order.
pub fn predict_files(
    model: &ExportedModel,
    files: &[PathBuf],
    top: usize,
    frames: Frames,
    progress: &StderrProgress,
) -> Result<Vec<Prediction>> {
    let (side, window) = (model.header.image_size, model.header.window);
    let decoded: Vec<Decoded> = files
        .par_iter()
        .map(|file| match decode_file(file) {
            Ok(decoded) => {
                let count = decoded.frames();
                let frame_of = |index| (count > 1).then_some(Frame { index, count });
                let images = frames.pick(count).map(|index| (frame_of(index), render(&decoded, index, side, &window)));
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
    let scores = model.predict(images, progress, &CancelToken::new())?;
    let classes = &model.header.classes;
    let outcome = |file: &PathBuf| Prediction {
        file: file.clone(),
        frame: None,
        classes: Vec::new(),
        error: None,
        skipped: None,
    };
    let mut row = 0;
    let mut predictions = Vec::new();
    for (file, decoded) in files.iter().zip(decoded) {
        match decoded {
            Decoded::Failed(error) => predictions.push(Prediction { error: Some(error), ..outcome(file) }),
            Decoded::Skipped(reason) => predictions.push(Prediction { skipped: Some(reason), ..outcome(file) }),
            Decoded::Images(images) => {
                for (frame, _) in images {
                    let mut ranked: Vec<(usize, f32)> = scores.probabilities_of(row).into_iter().enumerate().collect();
                    row += 1;
                    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                    let classes = ranked
                        .into_iter()
                        .take(top.max(1))
                        .map(|(class, probability)| ClassProbability { class: classes[class].clone(), probability })
                        .collect();
                    predictions.push(Prediction { frame, classes, ..outcome(file) });
                }
            }
        }
    }
    Ok(predictions)
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
