//! `mednist fetch`: get the images into the workspace, headless.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::ValueEnum;
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::print_json;
use crate::cli::progress::StderrProgress;
use crate::cli::table::Table;
use crate::data::fetch::{Checksum, DatasetInfo, FetchRequest, Source, fetch};
use crate::job::CancelToken;
use crate::workspace::Workspace;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetChoice {
    /// The 1,800-image lesson sample built into the program (no download)
    Lesson,
    /// The full MedNIST release: 58,954 images, a 61 MB download, checked against its md5
    Mednist,
}

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Which dataset [default: lesson, or what --source holds]
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetChoice>,
    /// Get the images from here: an http(s) or file:// URL, an archive (.tar.gz, .tgz, .tar,
    /// .zip) or a folder of class folders. With --dataset mednist, a mirror of the release
    #[arg(long, value_name = "URL|PATH")]
    pub source: Option<String>,
    /// Check the archive's md5 before extracting it
    #[arg(long, value_name = "HEX", value_parser = Checksum::md5, conflicts_with = "sha256")]
    pub md5: Option<Checksum>,
    /// Check the archive's sha256 before extracting it
    #[arg(long, value_name = "HEX", value_parser = Checksum::sha256)]
    pub sha256: Option<Checksum>,
}

impl FetchArgs {
    fn request(&self) -> Result<FetchRequest> {
        let mut request = match (self.dataset, &self.source) {
            (Some(DatasetChoice::Lesson), Some(_)) => bail!(
                "--dataset lesson is built into the program and takes no --source: drop one of them \
                 (a MedNIST mirror is --dataset mednist --source URL)"
            ),
            (None | Some(DatasetChoice::Lesson), None) => FetchRequest::lesson(),
            (Some(DatasetChoice::Mednist), None) => FetchRequest::mednist(),
            // A mirror of the release: same file, so the published md5 still applies.
            (Some(DatasetChoice::Mednist), Some(source)) => {
                FetchRequest { source: Source::parse(source)?, ..FetchRequest::mednist() }
            }
            (None, Some(source)) => FetchRequest::new(Source::parse(source)?, None),
        };
        if let Some(checksum) = self.md5.as_ref().or(self.sha256.as_ref()) {
            request.checksum = Some(checksum.clone());
        }
        Ok(request)
    }
}

/// The `--json` document: `dataset.json`'s fields plus where the dataset is.
#[derive(Serialize)]
struct FetchOutput<'a> {
    dataset_dir: PathBuf,
    images: u64,
    #[serde(flatten)]
    info: &'a DatasetInfo,
}

pub fn run(workspace: &Workspace, args: &FetchArgs, json: bool) -> Result<()> {
    let request = args.request()?;
    let cancel = CancelToken::new();
    crate::cli::cancel_on_interrupt(&cancel, "stopping the fetch");
    let progress = if json { StderrProgress::quiet() } else { StderrProgress::new() };
    let info = fetch(workspace, &request, &progress, &cancel)?;
    let dataset_dir = workspace.dataset_dir();
    if json {
        return print_json(&FetchOutput { dataset_dir, images: info.images(), info: &info });
    }
    let outside = info.files - info.images();
    println!("dataset   {}", dataset_dir.display());
    println!("source    {}", info.source);
    println!(
        "images    {} in {} class folders{}",
        info.images(),
        info.classes.len(),
        if outside > 0 { format!(" (and {outside} other files)") } else { String::new() }
    );
    println!("size      {}", HumanBytes(info.bytes));
    match &info.checksum {
        Some(checksum) => println!("checksum  {checksum} (verified)"),
        None => println!("checksum  none given"),
    }
    println!();
    let mut table = Table::new(["class", "images"]);
    for class in &info.classes {
        table.row([class.name.clone(), class.files.to_string()]);
    }
    print!("{}", table.render());
    Ok(())
}
