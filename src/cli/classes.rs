//! `mednist classes`: what the dataset holds, class by class, and what was skipped; with
//! `--window`/`--frames`, records how the dataset's files become images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::data::report::tally;
use crate::data::scan::{self, ClassSummary, DatasetScan, EmptyClass, UnreadableFile};
use crate::data::settings::{DatasetSettings, Frames};
use crate::data::window::Window;
use crate::job::CancelToken;
use crate::workspace::Workspace;

/// How many unreadable files the table lists before summing up the rest.
const UNREADABLE_SHOWN: usize = 20;
/// How many sizes a class's cell lists before summing up the rest.
const SIZES_SHOWN: usize = 3;

#[derive(clap::Args, Debug)]
pub struct ClassesArgs {
    #[command(flatten)]
    pub dataset: DatasetArg,
    /// Record the window for DICOM and 16-bit images, used by every later step: file (the file's own; file:N its N-th), minmax, percentile:LO,HI, LEVEL,WIDTH (such as 40,400) or a preset (brain, lungs, ...)
    #[arg(long, value_name = "WINDOW", allow_hyphen_values = true)]
    pub window: Option<Window>,
    /// Record which frames of multi-frame DICOM files are images: all, or the middle one of each file
    #[arg(long)]
    pub frames: Option<Frames>,
}

/// `--data DIR`, shared by the commands that read a dataset.
#[derive(clap::Args, Debug)]
pub struct DatasetArg {
    /// Dataset folder, one sub-folder of images per class [default: the workspace's dataset]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DatasetArg {
    /// Scans the chosen dataset with `settings`, with a progress bar unless `json`.
    pub fn scan(&self, workspace: &Workspace, settings: &DatasetSettings, json: bool) -> Result<DatasetScan> {
        let root = match &self.data {
            Some(dir) => dir.clone(),
            None => workspace.require_dataset()?,
        };
        let progress = if json { StderrProgress::quiet() } else { StderrProgress::new() };
        scan::scan(&root, settings, &progress, &CancelToken::new())
    }
}

/// The `--json` document.
#[derive(Serialize)]
struct Report<'a> {
    data: &'a Path,
    settings: &'a DatasetSettings,
    images: usize,
    classes: &'a [ClassSummary],
    unreadable: &'a [UnreadableFile],
    empty_classes: &'a [EmptyClass],
    root_files: &'a [String],
}

pub fn run(workspace: &Workspace, args: &ClassesArgs, json: bool) -> Result<()> {
    let recorded = DatasetSettings::load(workspace)?;
    let settings = DatasetSettings {
        window: args.window.unwrap_or(recorded.window),
        frames: args.frames.unwrap_or(recorded.frames),
    };
    let scan = args.dataset.scan(workspace, &settings, json)?;
    if settings != recorded {
        settings.save(workspace)?;
        eprintln!(
            "recorded window {}, frames {} in {}: the next steps read the images so",
            settings.window,
            settings.frames,
            workspace.dataset_settings_file().display()
        );
    }
    if json {
        return super::print_json(&Report {
            data: &scan.root,
            settings: &settings,
            images: scan.items.len(),
            classes: &scan.classes,
            unreadable: &scan.unreadable,
            empty_classes: &scan.empty_classes,
            root_files: &scan.root_files,
        });
    }
    print!("{}", render(&scan));
    Ok(())
}

fn render(scan: &DatasetScan) -> String {
    let mut table = Table::new(["class", "images", "formats", "sizes", "modes"]);
    for class in &scan.classes {
        table.row([
            class.name.clone(),
            class.images.to_string(),
            tally(&class.formats, usize::MAX),
            tally(&class.sizes, SIZES_SHOWN),
            tally(&class.modes, usize::MAX),
        ]);
    }
    table.row(["total".to_string(), scan.items.len().to_string()]);
    let mut out = format!("{}: {} classes\n\n{}", scan.root.display(), scan.classes.len(), table.render());
    if scan.classes.iter().any(|c| !c.windows.is_empty() || !c.dicom.is_empty()) {
        out.push_str(&render_pixels(scan));
    }

    if !scan.unreadable.is_empty() {
        out.push_str(&format!("\n{} unreadable files (skipped):\n", scan.unreadable.len()));
        let mut table = Table::new(["file", "reason"]);
        for file in scan.unreadable.iter().take(UNREADABLE_SHOWN) {
            table.row([&file.path, &file.reason]);
        }
        out.push_str(&table.render());
        if scan.unreadable.len() > UNREADABLE_SHOWN {
            let rest = scan.unreadable.len() - UNREADABLE_SHOWN;
            out.push_str(&format!("... and {rest} more (--json lists them all)\n"));
        }
    }
    if !scan.empty_classes.is_empty() {
        let left_out: Vec<String> = scan
            .empty_classes
            .iter()
            .map(|c| match c.files {
                0 => format!("{} (empty)", c.name),
                n => format!("{} ({n} unreadable files)", c.name),
            })
            .collect();
        out.push_str(&format!("\nLeft out, no readable image: {}\n", left_out.join(", ")));
    }
    if !scan.root_files.is_empty() {
        out.push_str(&format!("\nIgnored, not in a class folder: {}\n", scan.root_files.join(", ")));
    }
    out
}

/// How the images with more than 8 bits of gray were windowed, and what the DICOM files are.
fn render_pixels(scan: &DatasetScan) -> String {
    let mut table = Table::new([
        "class",
        "window",
        "modalities",
        "transfer syntaxes",
        "bits stored",
        "photometric",
        "frames (files)",
    ]);
    let or_dash = |text: String| if text.is_empty() { "-".to_string() } else { text };
    let keyed = |counts: &BTreeMap<u16, usize>| counts.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    for class in &scan.classes {
        let dicom = &class.dicom;
        let frames: BTreeMap<String, usize> = dicom.frames.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        table.row([
            class.name.clone(),
            or_dash(tally(&class.windows, usize::MAX)),
            or_dash(tally(&dicom.modalities, usize::MAX)),
            or_dash(tally(&dicom.transfer_syntaxes, usize::MAX)),
            or_dash(tally(&keyed(&dicom.bits_stored), usize::MAX)),
            or_dash(tally(&dicom.photometric_interpretations, usize::MAX)),
            or_dash(tally(&frames, SIZES_SHOWN)),
        ]);
    }
    format!(
        "\nWindow {}, frames {} (`classes --window`/`--frames` change them):\n{}",
        scan.settings.window,
        scan.settings.frames,
        table.render()
    )
}
