//! `mednist export [PATH]`: the lesson's `learn.export()`, or (`--format onnx`) a standard
//! ONNX model for inference servers.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::cli::progress::StderrProgress;
use crate::learn::checkpoint::Which;
use crate::learn::device::DeviceChoice;
use crate::learn::onnx;
use crate::learn::open::open_saved;
use crate::workspace::Workspace;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where to write the model [default: export.mednist, or export.onnx, in the workspace]
    pub path: Option<PathBuf>,
    /// mednist: one file for `mednist predict`; onnx: a standard ONNX model (opset 17) for onnxruntime, Triton and the like
    #[arg(long, value_enum, default_value_t = ExportFormat::Mednist)]
    pub format: ExportFormat,
    /// Which checkpoint: last, best (by the monitored figure) or the table's epoch number, when kept
    #[arg(long, default_value = "last", value_name = "best|last|N")]
    pub epoch: Which,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Mednist,
    Onnx,
}

pub fn run(workspace: &Workspace, args: &ExportArgs, json: bool) -> Result<()> {
    let learner = open_saved(workspace, args.epoch, DeviceChoice::Cpu, &StderrProgress::new())?;
    let default = match args.format {
        ExportFormat::Mednist => workspace.export_file(),
        ExportFormat::Onnx => workspace.export_file().with_extension("onnx"),
    };
    let path = args.path.clone().unwrap_or(default);
    let onnx = match args.format {
        ExportFormat::Mednist => {
            learner.export(&path)?;
            None
        }
        ExportFormat::Onnx => Some(learner.export_onnx(&path)?),
    };
    let bytes = std::fs::metadata(&path)?.len();
    if json {
        let mut report = json!({
            "path": path,
            "bytes": bytes,
            "arch": learner.arch,
            "classes": learner.classes,
            "temperature": learner.temperature(),
        });
        if let Some(summary) = &onnx {
            report["onnx"] = json!({ "opset": onnx::OPSET, "nodes": summary.nodes, "weights": summary.weights });
        }
        return crate::cli::print_json(&report);
    }
    let calibrated = learner.temperature().map_or(String::new(), |t| format!(", calibrated: temperature {t:.4}"));
    let exported = format!(
        "exported the {} ({} classes, {} epoch(s) trained{calibrated}) to {} ({:.1} MB)",
        learner.arch,
        learner.classes.len(),
        learner.epochs_done(),
        path.display(),
        bytes as f64 / 1e6
    );
    match onnx {
        None => println!("{exported}: `mednist predict FILE...` uses it"),
        Some(summary) => println!(
            "{exported}: ONNX opset {}, {} nodes; input `{}` float32 [N, 3, {size}, {size}] normalised as its metadata \
             says (mean, std, size), output `{}` [N, {}]",
            onnx::OPSET,
            summary.nodes,
            onnx::INPUT,
            onnx::OUTPUT,
            learner.classes.len(),
            size = learner.image_size,
        ),
    }
    Ok(())
}
