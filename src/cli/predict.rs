//! `mednist predict FILE|FOLDER...`: classify images with an exported model. A file that
//! cannot be read or decoded is reported and the rest are still predicted.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::data::cache::decode_gray;
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
}

/// One input's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub file: PathBuf,
    /// The most probable classes first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassProbability>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    let predictions = predict_files(&model, &files, args.top, &progress)?;
    let failed = predictions.iter().filter(|p| p.error.is_some()).count();
    if json {
        crate::cli::print_json(&predictions)?;
    } else {
        for p in predictions.iter().filter(|p| p.error.is_some()) {
            eprintln!("cannot predict {}: {}", p.file.display(), p.error.as_deref().unwrap_or_default());
        }
        print!("{}", render(&predictions, args.top));
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

/// Decodes `files` (in parallel) and predicts the ones that decode, keeping their order.
pub fn predict_files(
    model: &ExportedModel,
    files: &[PathBuf],
    top: usize,
    progress: &StderrProgress,
) -> Result<Vec<Prediction>> {
    let side = model.header.image_size;
    let decoded: Vec<Result<Vec<u8>, String>> =
        files.par_iter().map(|file| decode_gray(file, side).map_err(|error| format!("{error:#}"))).collect();
    let images: Vec<Vec<u8>> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
    let scores = model.predict(images, progress, &CancelToken::new())?;
    let classes = &model.header.classes;
    let mut row = 0;
    Ok(files
        .iter()
        .zip(decoded)
        .map(|(file, decoded)| match decoded {
            Err(error) => Prediction { file: file.clone(), classes: Vec::new(), error: Some(error) },
            Ok(_) => {
                let mut ranked: Vec<(usize, f32)> = scores.probabilities_of(row).into_iter().enumerate().collect();
                row += 1;
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let classes = ranked
                    .into_iter()
                    .take(top.max(1))
                    .map(|(class, probability)| ClassProbability { class: classes[class].clone(), probability })
                    .collect();
                Prediction { file: file.clone(), classes, error: None }
            }
        })
        .collect())
}

fn render(predictions: &[Prediction], top: usize) -> String {
    let top = top.max(1);
    let mut headers = vec!["file".to_string()];
    headers.extend((1..=top).map(|rank| format!("#{rank}")));
    let mut table = Table::new(headers);
    for p in predictions.iter().filter(|p| p.error.is_none()) {
        let cells = p.classes.iter().map(|c| format!("{} {:.4}", c.class, c.probability));
        table.row(std::iter::once(p.file.display().to_string()).chain(cells));
    }
    table.render()
}
