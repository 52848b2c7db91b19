//! Lists a dataset's classes and checks every image by decoding it fully.
//!
//! A dataset is a folder with one sub-folder per class; every file under a class folder, at any
//! depth, is an image of that class. Files that do not decode are reported and skipped, never
//! fatal. Hidden files and desktop junk (`.DS_Store`, `._*`, `Thumbs.db`, `__MACOSX/`) are
//! ignored silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::{fs, io};

use anyhow::{Context, Result};
use image::{ColorType, DynamicImage, ImageFormat};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use crate::event::{Emit, Event, Stage};
use crate::job::{CancelToken, Cancelled};

/// The formats the learner reads, with the names reports use for them.
const SUPPORTED_FORMATS: [(ImageFormat, &str); 2] = [(ImageFormat::Jpeg, "jpeg"), (ImageFormat::Png, "png")];

/// Progress is reported every this many decoded files (and at the end).
const PROGRESS_EVERY: u64 = 256;

/// One readable image of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Item {
    /// Path relative to the dataset folder, `/`-separated: `CXR/000123.jpeg`.
    pub path: String,
    /// Index into [`DatasetScan::classes`].
    pub class: usize,
}

/// What one class folder holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassSummary {
    pub name: String,
    /// Readable images.
    pub images: usize,
    /// Format (`jpeg`, `png`) -> images.
    pub formats: BTreeMap<String, usize>,
    /// `WIDTHxHEIGHT` -> images.
    pub sizes: BTreeMap<String, usize>,
    /// Colour mode (`gray8`, `gray16`, `rgb8`, `rgba8`, ...) -> images.
    pub modes: BTreeMap<String, usize>,
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
    /// Classes with at least one readable image, sorted by name (at least two).
    pub classes: Vec<ClassSummary>,
    /// Readable images grouped by class in class order, sorted by path within a class.
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

    /// A digest of the class names and the item list: it changes when an image is added,
    /// removed, renamed or becomes unreadable, so a recorded split can tell it is stale.
    pub fn fingerprint(&self) -> String {
        let listing = serde_json::to_vec(&(self.class_names(), &self.items)).expect("strings and numbers serialise");
        hex::encode(Sha256::digest(listing))
    }
}

/// Why a file is not a usable image.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("empty file")]
    Empty,
    #[error("not an image")]
    NotAnImage,
    #[error("{0} images are not supported (only JPEG and PNG)")]
    Unsupported(String),
    #[error("truncated JPEG: the file ends before its end-of-image marker")]
    TruncatedJpeg,
    #[error("corrupt {format}: {error}")]
    Corrupt { format: &'static str, error: image::ImageError },
}

/// A fully decoded image and the name of its format (`jpeg`, `png`).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub format: &'static str,
    pub image: DynamicImage,
}

/// Reads and fully decodes one image file. The format comes from the content, not the name.
pub fn decode_file(path: &Path) -> Result<Decoded, Unreadable> {
    decode_bytes(&fs::read(path)?)
}

/// Fully decodes an encoded JPEG or PNG.
pub fn decode_bytes(bytes: &[u8]) -> Result<Decoded, Unreadable> {
    if bytes.is_empty() {
        return Err(Unreadable::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| Unreadable::NotAnImage)?;
    let (_, name) = SUPPORTED_FORMATS
        .into_iter()
        .find(|(supported, _)| *supported == format)
        .ok_or_else(|| Unreadable::Unsupported(format!("{format:?}").to_uppercase()))?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Unreadable::TruncatedJpeg);
    }
    let image = image::load_from_memory_with_format(bytes, format)
        .map_err(|error| Unreadable::Corrupt { format: name, error })?;
    Ok(Decoded { format: name, image })
}

/// Whether a JPEG's marker structure runs on to its end-of-image marker. The `image` crate's
/// decoder, like browsers, fills the missing part of a cut-off file with gray instead of
/// failing, so a truncated download would otherwise pass as readable.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    // After SOI come segments `FF <marker> <u16 length incl. itself> <payload>`; each SOS is
    // followed by entropy-coded data, in which FF only appears as a stuffed `FF 00` or a
    // restart marker `FF D0..D7`. Stray bytes between segments are skipped, as libjpeg does.
    let mut at = 2;
    loop {
        let Some(offset) = bytes.get(at..).and_then(|rest| rest.iter().position(|&b| b != 0xFF)) else {
            return false;
        };
        // `at + offset` is the first non-FF byte; a marker is FF then that byte.
        let marker_at = at + offset;
        if offset == 0 {
            at += 1;
            continue;
        }
        let marker = bytes[marker_at];
        at = marker_at + 1;
        match marker {
            0xD9 => return true,
            0x00 | 0x01 | 0xD0..=0xD7 => {}
            _ => {
                let Some(&[high, low]) = bytes.get(at..at + 2) else { return false };
                at += usize::from(u16::from_be_bytes([high, low]));
                if marker == 0xDA {
                    let Some(end) = entropy_data_end(bytes, at) else { return false };
                    at = end;
                }
            }
        }
    }
}

/// Where the entropy-coded data starting at `from` ends: the FF that starts the next marker.
fn entropy_data_end(bytes: &[u8], from: usize) -> Option<usize> {
    let data = bytes.get(from..)?;
    data.windows(2)
        .position(|pair| pair[0] == 0xFF && !matches!(pair[1], 0x00 | 0xD0..=0xD7))
        .map(|offset| from + offset)
}

fn mode_name(color: ColorType) -> &'static str {
    match color {
        ColorType::L8 => "gray8",
        ColorType::La8 => "gray-alpha8",
        ColorType::Rgb8 => "rgb8",
        ColorType::Rgba8 => "rgba8",
        ColorType::L16 => "gray16",
        ColorType::La16 => "gray-alpha16",
        ColorType::Rgb16 => "rgb16",
        ColorType::Rgba16 => "rgba16",
        ColorType::Rgb32F => "rgb32f",
        ColorType::Rgba32F => "rgba32f",
        _ => "other",
    }
}

/// Hidden files and what desktops and archivers leave behind.
fn is_junk(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || matches!(name.as_ref(), "Thumbs.db" | "desktop.ini" | "__MACOSX")
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
    /// Files the walk could not use, with their class folder.
    unusable: Vec<(usize, UnreadableFile)>,
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
                    let file = UnreadableFile { path: slash_path(&path), reason: error.to_string() };
                    unusable.push((folder, file));
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let path = relative(entry.path());
            match path.components().map(|c| c.as_os_str().to_str()).collect::<Option<Vec<_>>>() {
                Some(parts) => candidates.push(Candidate { folder, path: parts.join("/") }),
                None => unusable.push((
                    folder,
                    UnreadableFile { path: slash_path(&path), reason: "name is not valid UTF-8: rename it".into() },
                )),
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

/// Format, size and mode of a readable image.
struct ImageInfo {
    format: &'static str,
    size: String,
    mode: &'static str,
}

/// Finds the classes and decodes every image (in parallel) to tell readable from unreadable.
/// Emits [`Stage::Scan`] progress in files. Fails when fewer than two classes have a readable
/// image, or with [`Cancelled`] when `cancel` is set.
pub fn scan(root: &Path, emit: &dyn Emit, cancel: &CancelToken) -> Result<DatasetScan> {
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
            let outcome = decode_file(&root.join(&candidate.path)).map(|decoded| ImageInfo {
                format: decoded.format,
                size: format!("{}x{}", decoded.image.width(), decoded.image.height()),
                mode: mode_name(decoded.image.color()),
            });
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

    let mut summaries: Vec<ClassSummary> = listing
        .folders
        .iter()
        .map(|name| ClassSummary {
            name: name.clone(),
            images: 0,
            formats: BTreeMap::new(),
            sizes: BTreeMap::new(),
            modes: BTreeMap::new(),
        })
        .collect();
    let mut unusable = listing.unusable;
    let mut readable = Vec::new();
    for (candidate, outcome) in listing.candidates.into_iter().zip(outcomes) {
        match outcome {
            Ok(info) => {
                let summary = &mut summaries[candidate.folder];
                summary.images += 1;
                *summary.formats.entry(info.format.to_string()).or_default() += 1;
                *summary.sizes.entry(info.size).or_default() += 1;
                *summary.modes.entry(info.mode.to_string()).or_default() += 1;
                readable.push(candidate);
            }
            Err(reason) => {
                unusable.push((candidate.folder, UnreadableFile { path: candidate.path, reason: reason.to_string() }))
            }
        }
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
            let files = unusable.iter().filter(|(f, _)| *f == folder).count();
            empty_classes.push(EmptyClass { name: summary.name, files });
        }
    }
    if classes.len() < 2 {
        let left_out: Vec<String> = empty_classes
            .iter()
            .map(|c| match c.files {
                0 => format!("{} (no files)", c.name),
                n => format!("{} ({n} unreadable files)", c.name),
            })
            .collect();
        anyhow::bail!(
            "{} has {} class folder(s) with readable images ({}); at least two are needed. Left out: {}",
            root.display(),
            classes.len(),
            classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            left_out.join(", ")
        );
    }
    let items = readable
        .into_iter()
        .map(|c| Item { class: class_of_folder[c.folder].expect("a folder with an image is a class"), path: c.path })
        .collect();
    let mut unreadable: Vec<UnreadableFile> = unusable.into_iter().map(|(_, file)| file).collect();
    unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(DatasetScan {
        root: root.to_path_buf(),
        classes,
        items,
        unreadable,
        empty_classes,
        root_files: listing.root_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn every_cut_off_jpeg_is_unreadable_and_trailing_data_is_tolerated() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 17, |x, y| {
            image::Rgb([x as u8 * 9, y as u8 * 13, 80])
        }));
        let jpeg = encode(image, ImageFormat::Jpeg);
        assert!(decode_bytes(&jpeg).is_ok());
        for len in 1..jpeg.len() {
            assert!(decode_bytes(&jpeg[..len]).is_err(), "a JPEG cut to {len} of {} bytes decoded", jpeg.len());
        }
        let mut with_trailer = jpeg.clone();
        with_trailer.extend_from_slice(b"\0\0trailing data some cameras append");
        assert!(decode_bytes(&with_trailer).is_ok());
    }

    #[test]
    fn a_png_cut_inside_its_pixel_data_is_unreadable() {
        let png = encode(
            DynamicImage::ImageLuma8(image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * y) as u8]))),
            ImageFormat::Png,
        );
        // The last 12 bytes are the IEND chunk, after all pixel data.
        for len in 1..png.len() - 12 {
            assert!(decode_bytes(&png[..len]).is_err(), "a PNG cut to {len} of {} bytes decoded", png.len());
        }
    }
}
