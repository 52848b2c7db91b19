//! `mednist split`: hold out a reproducible validation set and record it for training.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::cli::classes::DatasetArg;
use crate::cli::table::Table;
use crate::data::settings::DatasetSettings;
use crate::data::split::{self, ClassCounts, GroupBy, SplitOptions};
use crate::workspace::Workspace;

#[derive(clap::Args, Debug)]
pub struct SplitArgs {
    #[command(flatten)]
    pub dataset: DatasetArg,

    /// Fraction of the images held out for validation, between 0 and 1
    #[arg(long, value_name = "FRACTION", default_value_t = SplitOptions::default().valid_pct)]
    pub valid_pct: f64,

    /// Seed of the shuffle: the same seed gives the same split on every machine
    #[arg(long, default_value_t = SplitOptions::default().seed)]
    pub seed: u64,

    /// Split each class separately, so every class keeps the same train/valid proportion
    #[arg(long)]
    pub stratify: bool,

    /// Keep each patient's (or study's) images on one side: patient, study or none [default: patient when the DICOM files name patients, else none]
    #[arg(long, value_name = "patient|study|none")]
    pub group: Option<GroupBy>,
}

/// The `--json` document.
#[derive(Serialize)]
struct Report<'a> {
    file: &'a Path,
    seed: u64,
    valid_pct: f64,
    stratify: bool,
    group: GroupBy,
    classes: Vec<ClassReport<'a>>,
    train: usize,
    valid: usize,
    /// Groups (patients, studies; images without grouping) on each side.
    groups: ClassCounts,
}

#[derive(Serialize)]
struct ClassReport<'a> {
    name: &'a str,
    #[serde(flatten)]
    counts: ClassCounts,
}

pub fn run(workspace: &Workspace, args: &SplitArgs, json: bool) -> Result<()> {
    let scan = args.dataset.scan(workspace, &DatasetSettings::load(workspace)?, json)?;
    if !scan.unreadable.is_empty() || !scan.empty_classes.is_empty() {
        eprintln!(
            "note: {} unreadable file(s) and {} class folder(s) without a readable image are left out (see `mednist classes`)",
            scan.unreadable.len(),
            scan.empty_classes.len()
        );
    }
    let options =
        SplitOptions { valid_pct: args.valid_pct, seed: args.seed, stratify: args.stratify, group: args.group };
    let split = split::split(&scan, &options)?;
    split.save(workspace)?;

    let file = workspace.split_file();
    let counts = split.class_counts();
    if json {
        return super::print_json(&Report {
            file: &file,
            seed: split.seed,
            valid_pct: split.valid_pct,
            stratify: split.stratify,
            group: split.group,
            classes: split.classes.iter().zip(counts).map(|(name, counts)| ClassReport { name, counts }).collect(),
            train: split.train.len(),
            valid: split.valid.len(),
            groups: split.group_counts(),
        });
    }
    let mut table = Table::new(["class", "train", "valid", "valid %"]);
    let percent =
        |counts: ClassCounts| format!("{:.1}%", 100.0 * counts.valid as f64 / (counts.train + counts.valid) as f64);
    for (name, counts) in split.classes.iter().zip(&counts) {
        table.row([name.clone(), counts.train.to_string(), counts.valid.to_string(), percent(*counts)]);
    }
    let total = ClassCounts { train: split.train.len(), valid: split.valid.len() };
    table.row(["total".to_string(), total.train.to_string(), total.valid.to_string(), percent(total)]);
    let how = if split.stratify { "stratified by class" } else { "over all images" };
    let grouped = match split.group {
        GroupBy::None => String::new(),
        group => format!(", whole {} on one side", group.plural()),
    };
    println!("Split with seed {}, valid-pct {} {how}{grouped}:\n", split.seed, split.valid_pct);
    print!("{}", table.render());
    if !split.group.is_none() {
        let groups = split.group_counts();
        println!("{} {} train, {} valid; none on both sides", split.group.plural(), groups.train, groups.valid);
    }
    println!("\nRecorded in {}", file.display());
    Ok(())
}
