//! Lists a dataset's classes and checks every image by decoding it fully.
//!
//! A dataset is a folder with one sub-folder per class; every file under a class folder, at any
//! depth and whatever its name, is an image of that class (every frame of a multi-frame DICOM
//! file, unless [`Frames::Middle`]). Files that do not decode are reported and skipped, never
//! fatal. Hidden files and desktop junk (`.DS_Store`, `._*`, `Thumbs.db`, `__MACOSX/`) are
//! ignored silently.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use super::decode::{self, Unreadable};
use super::dicom::{self, DicomFacts, GroupKey};
use super::identifiers::PathMask;
use super::settings::{DatasetSettings, Frames};
use super::window::WindowSource;
use crate::event::{Emit, Event, Stage};
use crate::job::{CancelToken, Cancelled};

/// Progress is reported every this many decoded files (and at the end).
const PROGRESS_EVERY: u64 = 256;

/// One frame of a multi-frame file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Frame {
    /// From 0.
    pub index: u32,
    /// Frames in the file.
    pub count: u32,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {} of {}", self.index + 1, self.count)
    }
}

/// One readable image of the dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Item {
    /// Path relative to the dataset folder, `/`-separated: `CXR/000123.jpeg`.
    pub path: String,
    /// Index into [`DatasetScan::classes`].
    pub class: usize,
    /// The frame, for an image that is one frame of a multi-frame file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<Frame>,
    /// Images with the same number come from the same patient (DICOM Patient ID). The number
    /// is the patient's order of appearance in the dataset, nothing of the ID itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_group: Option<u32>,
    /// The same for the study (DICOM Study Instance UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_group: Option<u32>,
}

impl Item {
    /// An image that is a whole file, with no patient or study known.
    pub fn new(path: impl Into<String>, class: usize) -> Self {
        Self { path: path.into(), class, ..Self::default() }
    }

    /// The frame to decode: 0 for a single-frame file.
    pub fn frame_index(&self) -> u32 {
        self.frame.map_or(0, |frame| frame.index)
    }
}

/// A path, and the frame of a multi-frame file: `CT/series.dcm (frame 3 of 30)`.
pub fn image_label(path: impl fmt::Display, frame: Option<Frame>) -> String {
    match frame {
        Some(frame) => format!("{path} ({frame})"),
        None => path.to_string(),
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&image_label(&self.path, self.frame))
    }
}

/// What one class folder holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassSummary {
    pub name: String,
    /// Readable images (each frame of a multi-frame file is one).
    pub images: usize,
    /// Format (`jpeg`, `png`, `dicom`) -> images.
    pub formats: BTreeMap<String, usize>,
    /// `WIDTHxHEIGHT` -> images.
    pub sizes: BTreeMap<String, usize>,
    /// Colour mode (`gray8`, `gray16`, `rgb8`, `rgba8`, ...) -> images.
    pub modes: BTreeMap<String, usize>,
    /// Where the window of images with more than 8 bits of gray came from (`file`, `preset`,
    /// `minmax`, ...) -> images. Empty when every image is 8-bit, used as it is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub windows: BTreeMap<String, usize>,
    /// What its DICOM files are; empty without DICOM.
    #[serde(skip_serializing_if = "DicomSummary::is_empty")]
    pub dicom: DicomSummary,
}

/// What a class's DICOM images are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DicomSummary {
    /// Modality (`CT`, `MR`, `CR`, ...) -> images.
    pub modalities: BTreeMap<String, usize>,
    /// Transfer syntax (`Explicit VR Little Endian`, `RLE Lossless`, ...) -> images.
    pub transfer_syntaxes: BTreeMap<String, usize>,
    /// Bits Stored -> images.
    pub bits_stored: BTreeMap<u16, usize>,
    /// Photometric Interpretation (`MONOCHROME2`, `MONOCHROME1`, `RGB`) -> images.
    pub photometric_interpretations: BTreeMap<String, usize>,
    /// Frames in a file -> files.
    pub frames: BTreeMap<u32, usize>,
    /// Images whose file names a patient (a Patient ID).
    pub with_patient: usize,
}

impl DicomSummary {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    fn add(&mut self, facts: &DicomFacts, images: usize) {
        let modality = facts.modality.clone().unwrap_or_else(|| "unknown".into());
        *self.modalities.entry(modality).or_default() += images;
        *self.transfer_syntaxes.entry(facts.transfer_syntax.clone()).or_default() += images;
        *self.bits_stored.entry(facts.bits_stored).or_default() += images;
        *self.photometric_interpretations.entry(facts.photometric.clone()).or_default() += images;
        *self.frames.entry(facts.frames).or_default() += 1;
        self.with_patient += if facts.patient.is_some() { images } else { 0 };
    }
}

/// A file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableFile {
    /// Relative to the dataset folder.
    pub path: String,
    pub reason: String,
}

/// A class folder left out because it holds no readable image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmptyClass {
    pub name: String,
    /// Files found in it (all unreadable).
    pub files: usize,
}

/// The result of [`scan`]: everything the `classes` report, the split and the learner need.
#[derive(Debug, Clone)]
pub struct DatasetScan {
    pub root: PathBuf,
    /// The settings the images were read with.
    pub settings: DatasetSettings,
    /// Classes with at least one readable image, sorted by name (at least two).
    pub classes: Vec<ClassSummary>,
    /// Readable images grouped by class in class order, sorted by path (then frame) within a class.
    pub items: Vec<Item>,
    /// Skipped files, sorted by path.
    pub unreadable: Vec<UnreadableFile>,
    /// Class folders left out, sorted by name.
    pub empty_classes: Vec<EmptyClass>,
    /// Files directly in the dataset folder, outside any class folder (ignored).
    pub root_files: Vec<String>,
}

impl DatasetScan {
    pub fn class_names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }

    pub fn path_of(&self, item: &Item) -> PathBuf {
        self.root.join(&item.path)
    }

    /// Whether some images name their patient, so that a split can keep patients apart.
    pub fn has_patients(&self) -> bool {
        self.items.iter().any(|item| item.patient_group.is_some())
    }

    /// A digest of the class names and the item list: it changes when an image is added,
    /// removed, renamed, becomes unreadable or changes patient, so a recorded split can tell
    /// it is stale.
    pub fn fingerprint(&self) -> String {
        let listing = serde_json::to_vec(&(self.class_names(), &self.items)).expect("strings and numbers serialise");
        hex::encode(Sha256::digest(listing))
    }
}

/// Hidden files and what desktops and archivers leave behind.
fn is_junk(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || matches!(name.as_ref(), "Thumbs.db" | "desktop.ini" | "__MACOSX")
}

/// A file that cannot be used, in its class folder.
struct Unusable {
    folder: usize,
    /// The reason's short form, for tallies.
    kind: String,
    file: UnreadableFile,
}

impl Unusable {
    fn new(folder: usize, path: String, reason: &Unreadable) -> Self {
        Self { folder, kind: reason.kind(), file: UnreadableFile { path, reason: reason.to_string() } }
    }
}

/// A file found under a class folder, before decoding.
struct Candidate {
    folder: usize,
    path: String,
}

/// What the walk found, sorted.
struct Listing {
    /// Class folder names.
    folders: Vec<String>,
    candidates: Vec<Candidate>,
    /// Files the walk could not use.
    unusable: Vec<Unusable>,
    root_files: Vec<String>,
}

fn list_files(root: &Path) -> Result<Listing> {
    let entries = fs::read_dir(root).with_context(|| format!("cannot read dataset folder {}", root.display()))?;
    let mut folders = Vec::new();
    let mut root_files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read dataset folder {}", root.display()))?;
        if is_junk(&entry.file_name()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        // `Path::is_dir` follows links: a linked class folder is a class folder.
        if entry.path().is_dir() {
            folders.push((name, entry.path()));
        } else {
            root_files.push(name);
        }
    }
    folders.sort();
    root_files.sort();

    let relative = |path: &Path| path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let mut candidates = Vec::new();
    let mut unusable = Vec::new();
    for (folder, (_, dir)) in folders.iter().enumerate() {
        let walk = WalkDir::new(dir).min_depth(1).follow_links(true).into_iter();
        for entry in walk.filter_entry(|e| !is_junk(e.file_name())) {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let path = error.path().map(relative).unwrap_or_default();
                    let reason = error.to_string();
                    unusable.push(Unusable {
                        folder,
                        kind: "cannot read".into(),
                        file: UnreadableFile { path: slash_path(&path), reason },
                    });
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let path = relative(entry.path());
            match path.components().map(|c| c.as_os_str().to_str()).collect::<Option<Vec<_>>>() {
                Some(parts) => candidates.push(Candidate { folder, path: parts.join("/") }),
                None => unusable.push(Unusable {
                    folder,
                    kind: "name not UTF-8".into(),
                    file: UnreadableFile {
                        path: slash_path(&path),
                        reason: "name is not valid UTF-8: rename it".into(),
                    },
                }),
            }
        }
    }
    candidates.sort_by(|a, b| (a.folder, &a.path).cmp(&(b.folder, &b.path)));
    Ok(Listing { folders: folders.into_iter().map(|(name, _)| name).collect(), candidates, unusable, root_files })
}

/// A relative path for reports: `/`-separated, invalid UTF-8 replaced.
fn slash_path(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// What the scan keeps of a readable file.
struct FileInfo {
    format: &'static str,
    size: String,
    mode: &'static str,
    frames: u32,
    window: Option<WindowSource>,
    dicom: Option<DicomFacts>,
}

impl FileInfo {
    fn of(decoded: &decode::Decoded, settings: &DatasetSettings) -> Self {
        Self {
            format: decoded.format,
            size: format!("{}x{}", decoded.width, decoded.height),
            mode: decoded.mode,
            frames: decoded.frames(),
            window: decoded.window_source(&settings.window),
            dicom: decoded.dicom.clone(),
        }
    }

    /// The images of this file: its frames as `frames` picks them.
    fn frames(&self, frames: Frames) -> Vec<Option<Frame>> {
        if self.frames == 1 {
            return vec![None];
        }
        frames.pick(self.frames).map(|index| Some(Frame { index, count: self.frames })).collect()
    }
}

/// Numbers groups (patients, studies) in order of first appearance.
#[derive(Default)]
struct GroupNumbers(HashMap<GroupKey, u32>);

impl GroupNumbers {
    fn number(&mut self, key: Option<GroupKey>) -> Option<u32> {
        let next = self.0.len() as u32;
        key.map(|key| *self.0.entry(key).or_insert(next))
    }
}

/// Finds the classes and decodes every image (in parallel) to tell readable from unreadable,
/// reading them as `settings` says. Emits [`Stage::Scan`] progress in files. Fails when fewer
/// than two classes have a readable image, or with [`Cancelled`] when `cancel` is set.
pub fn scan(root: &Path, settings: &DatasetSettings, emit: &dyn Emit, cancel: &CancelToken) -> Result<DatasetScan> {
    let listing = list_files(root)?;
    if listing.folders.len() < 2 {
        let found = match listing.folders.first() {
            None => "no class folder".to_string(),
            Some(only) => format!("one class folder ({only})"),
        };
        anyhow::bail!(
            "{} has {found}; at least two are needed: put each class's images in a folder named after the class",
            root.display()
        );
    }

    let total = listing.candidates.len() as u64;
    emit.emit(Event::StageStarted { stage: Stage::Scan, total: Some(total) });
    let done = AtomicU64::new(0);
    let outcomes = listing
        .candidates
        .par_iter()
        .map(|candidate| {
            cancel.check()?;
            let outcome =
                decode::decode_file(&root.join(&candidate.path)).map(|decoded| FileInfo::of(&decoded, settings));
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(PROGRESS_EVERY) {
                emit.emit(Event::Progress { stage: Stage::Scan, done: n, total: Some(total) });
            }
            Ok(outcome)
        })
        .collect::<Result<Vec<_>, Cancelled>>();
    emit.emit(Event::Progress { stage: Stage::Scan, done: done.into_inner(), total: Some(total) });
    emit.emit(Event::StageFinished { stage: Stage::Scan });
    let outcomes = outcomes?;

    let mut summaries: Vec<ClassSummary> =
        listing.folders.iter().map(|name| ClassSummary { name: name.clone(), ..ClassSummary::default() }).collect();
    let mut unusable = listing.unusable;
    let mut readable = Vec::new();
    let (mut patients, mut studies) = (GroupNumbers::default(), GroupNumbers::default());
    let mut mask = PathMask::default();
    for (candidate, outcome) in listing.candidates.into_iter().zip(outcomes) {
        let info = match outcome {
            Ok(info) => info,
            Err(reason) => {
                unusable.push(Unusable::new(candidate.folder, candidate.path, &reason));
                continue;
            }
        };
        let frames = info.frames(settings.frames);
        let images = frames.len();
        let summary = &mut summaries[candidate.folder];
        summary.images += images;
        *summary.formats.entry(info.format.to_string()).or_default() += images;
        *summary.sizes.entry(info.size).or_default() += images;
        *summary.modes.entry(info.mode.to_string()).or_default() += images;
        if let Some(source) = info.window {
            *summary.windows.entry(source.to_string()).or_default() += images;
        }
        let (patient_group, study_group) = match &info.dicom {
            Some(facts) => {
                summary.dicom.add(facts, images);
                mask.show_read(&candidate.path, &facts.patient_text);
                (patients.number(facts.patient), studies.number(facts.study))
            }
            None => (None, None),
        };
        for frame in frames {
            let item =
                Item { path: candidate.path.clone(), class: candidate.folder, frame, patient_group, study_group };
            readable.push(item);
        }
    }

    for file in &mut unusable {
        file.file.path = shown_unusable(root, &file.file.path, &mut mask);
    }

    // Folders without a readable image are left out; the others are renumbered in order.
    let mut class_of_folder = vec![None; summaries.len()];
    let mut classes = Vec::new();
    let mut empty_classes = Vec::new();
    for (folder, summary) in summaries.into_iter().enumerate() {
        if summary.images > 0 {
            class_of_folder[folder] = Some(classes.len());
            classes.push(summary);
        } else {
            let files = unusable.iter().filter(|u| u.folder == folder).count();
            empty_classes.push(EmptyClass { name: summary.name, files });
        }
    }
    if classes.len() < 2 {
        let left_out: Vec<&Unusable> = unusable.iter().filter(|u| class_of_folder[u.folder].is_none()).collect();
        anyhow::bail!(too_few_classes(root, &classes, &empty_classes, &left_out));
    }
    let items = readable
        .into_iter()
        .map(|item| Item { class: class_of_folder[item.class].expect("a folder with an image is a class"), ..item })
        .collect();
    let mut unreadable: Vec<UnreadableFile> = unusable.into_iter().map(|u| u.file).collect();
    unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(DatasetScan {
        root: root.to_path_buf(),
        settings: *settings,
        classes,
        items,
        unreadable,
        empty_classes,
        root_files: listing.root_files,
    })
}

/// The path of a file that could not be used, as shown: masked by its own header where one
/// can be read (a DICOM file whose pixels could not be decoded), else as its neighbours were.
fn shown_unusable(root: &Path, path: &str, mask: &mut PathMask) -> String {
    let patient = fs::read(root.join(path)).map(|bytes| dicom::patient_text(&bytes)).unwrap_or_default();
    if patient.is_empty() { mask.show_unread(path) } else { mask.show_read(path, &patient) }
}

/// Why fewer than two classes are usable, naming the folders left out and what their files
/// (`left_out`) are.
fn too_few_classes(root: &Path, classes: &[ClassSummary], empty: &[EmptyClass], left_out: &[&Unusable]) -> String {
    let found = match classes {
        [] => "no class folder with readable images".to_string(),
        _ => format!(
            "{} class folder(s) with readable images ({})",
            classes.len(),
            classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    let folders: Vec<String> = empty
        .iter()
        .map(|c| match c.files {
            0 => format!("{} (no files)", c.name),
            n => format!("{} ({n} unreadable files)", c.name),
        })
        .collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    left_out.iter().for_each(|u| *kinds.entry(&u.kind).or_default() += 1);
    let mut kinds: Vec<(&str, usize)> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut message =
        format!("{} has {found}; at least two are needed. Left out: {}", root.display(), folders.join(", "));
    if !kinds.is_empty() {
        let kinds: Vec<String> = kinds.iter().map(|(kind, n)| format!("{kind} ({n})")).collect();
        message.push_str(&format!(". The unreadable files: {}", kinds.join(", ")));
    }
    message
}
