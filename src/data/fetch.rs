//! `fetch`: get a dataset (embedded sample, download, local archive or folder) into the
//! workspace. Downloads resume; checksums are verified before extraction; the new data
//! replaces the old only once it is complete, so a failure leaves the old data as it was.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use walkdir::WalkDir;

use crate::data::archive::{self, Archive, Limits};
use crate::data::download;
use crate::data::embedded::LESSON_ARCHIVE;
use crate::event::{Emit, Event, Stage};
use crate::job::{CancelToken, Cancelled};
use crate::workspace::{self, Workspace};

/// The full MedNIST release that MONAI's tutorials download.
pub const MEDNIST_URL: &str =
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/MedNIST.tar.gz";
/// md5 of [`MEDNIST_URL`], as MONAI publishes it.
pub const MEDNIST_MD5: &str = "0bc7306e7427e00ad1c5526a6677552d";

/// How many times a broken-off download is resumed within one fetch before giving up.
pub const DEFAULT_RESUME_ATTEMPTS: u32 = 3;

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The lesson-sized sample compiled into the binary.
    Lesson,
    /// An http(s) URL, downloaded into the workspace's `downloads/`.
    Url(String),
    /// A local archive (.tar.gz, .tgz, .tar, .zip) or a folder of class folders.
    Local(PathBuf),
}

impl Source {
    /// Reads `--source`: http(s) and file:// URLs, else a local path.
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let Some((scheme, _)) = text.split_once("://") else {
            return Ok(Source::Local(PathBuf::from(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Ok(Source::Url(text.to_string())),
            "file" => reqwest::Url::parse(text)
                .ok()
                .and_then(|url| url.to_file_path().ok())
                .map(Source::Local)
                .ok_or_else(|| FetchError::UnsupportedUrl { url: text.to_string() }),
            _ => Err(FetchError::UnsupportedUrl { url: text.to_string() }),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Lesson => f.write_str("the embedded lesson sample"),
            Source::Url(url) => f.write_str(url),
            Source::Local(path) => write!(f, "{}", path.display()),
        }
    }
}

/// An expected checksum, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", content = "hex", rename_all = "lowercase")]
pub enum Checksum {
    Md5(String),
    Sha256(String),
}

impl Checksum {
    pub fn md5(hex: &str) -> Result<Self, FetchError> {
        Self::parse_hex(hex, 32, "md5").map(Checksum::Md5)
    }

    pub fn sha256(hex: &str) -> Result<Self, FetchError> {
        Self::parse_hex(hex, 64, "sha256").map(Checksum::Sha256)
    }

    fn parse_hex(hex: &str, digits: usize, algorithm: &'static str) -> Result<String, FetchError> {
        if hex.len() == digits && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(hex.to_ascii_lowercase())
        } else {
            Err(FetchError::InvalidChecksum { algorithm, value: hex.to_string(), digits })
        }
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "md5",
            Checksum::Sha256(_) => "sha256",
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            Checksum::Md5(hex) | Checksum::Sha256(hex) => hex,
        }
    }

    /// The hex digest of `archive` in this checksum's algorithm.
    fn digest_of(&self, archive: &Archive, emit: &dyn Emit, cancel: &CancelToken) -> Result<String, FetchError> {
        match self {
            Checksum::Md5(_) => hash_with::<Md5>(archive, emit, cancel),
            Checksum::Sha256(_) => hash_with::<Sha256>(archive, emit, cancel),
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm(), self.hex())
    }
}

fn hash_with<D: Digest>(archive: &Archive, emit: &dyn Emit, cancel: &CancelToken) -> Result<String, FetchError> {
    let (mut reader, total) = archive.open()?;
    emit.emit(Event::StageStarted { stage: Stage::Verify, total: Some(total) });
    let mut hasher = D::new();
    let mut buffer = vec![0; 1 << 20];
    let mut done = 0;
    loop {
        cancel.check()?;
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(archive.read_error(e)),
        };
        hasher.update(&buffer[..n]);
        done += n as u64;
        emit.emit(Event::Progress { stage: Stage::Verify, done, total: Some(total) });
    }
    emit.emit(Event::StageFinished { stage: Stage::Verify });
    Ok(hex::encode(hasher.finalize()))
}

/// What to fetch and how.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub source: Source,
    pub checksum: Option<Checksum>,
    pub limits: Limits,
    pub resume_attempts: u32,
}

impl FetchRequest {
    pub fn new(source: Source, checksum: Option<Checksum>) -> Self {
        Self { source, checksum, limits: Limits::default(), resume_attempts: DEFAULT_RESUME_ATTEMPTS }
    }

    /// The 1,800-image lesson sample compiled into the binary.
    pub fn lesson() -> Self {
        Self::new(Source::Lesson, None)
    }

    /// The full MedNIST release, checked against its published md5.
    pub fn mednist() -> Self {
        Self::new(Source::Url(MEDNIST_URL.to_string()), Some(Checksum::Md5(MEDNIST_MD5.to_string())))
    }
}

/// Written to the workspace's `dataset.json`: where the active dataset came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub source: String,
    /// The checksum the archive was verified against, if one was given.
    pub checksum: Option<Checksum>,
    /// Files in the dataset folder (junk such as `.DS_Store` left out).
    pub files: u64,
    pub bytes: u64,
    pub classes: Vec<ClassFolder>,
    pub fetched_at_unix_s: u64,
}

impl DatasetInfo {
    /// Files inside class folders: the images, for a well-formed dataset.
    pub fn images(&self) -> u64 {
        self.classes.iter().map(|c| c.files).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassFolder {
    pub name: String,
    pub files: u64,
}

/// Every way a fetch can fail; each message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "cannot reach {url} ({cause}): check the network connection, or get the archive another way \
         and pass it with --source PATH"
    )]
    Unreachable { url: String, cause: String },
    #[error(
        "{url} answered HTTP {status}: check the URL, or get the archive another way and pass it \
         with --source PATH"
    )]
    HttpStatus { url: String, status: reqwest::StatusCode },
    #[error("download of {url} failed ({cause}): run the same command again to retry")]
    Request { url: String, cause: String },
    #[error(
        "download of {url} broke off after {done} of {} bytes ({cause}): run the same command again \
         to resume it",
        .total.map_or("?".to_string(), |t| t.to_string())
    )]
    Interrupted { url: String, done: u64, total: Option<u64>, cause: String },
    #[error(
        "checksum mismatch for {input}: expected {algorithm} {expected}, got {got}; {}",
        mismatch_advice(*.download_removed)
    )]
    ChecksumMismatch { input: String, algorithm: &'static str, expected: String, got: String, download_removed: bool },
    #[error("{value:?} is not a {algorithm} checksum: expected {digits} hexadecimal digits")]
    InvalidChecksum { algorithm: &'static str, value: String, digits: usize },
    #[error("{} is a folder, and a checksum applies only to an archive: drop --md5/--sha256", .0.display())]
    ChecksumOnFolder(PathBuf),
    #[error(
        "{} does not exist: pass an http(s) URL, an archive (.tar.gz, .tgz, .tar, .zip) or a folder \
         of class folders",
        .0.display()
    )]
    NotFound(PathBuf),
    #[error(
        "{url}: only http://, https:// and file:// URLs are supported; download it another way and \
         pass the file with --source PATH"
    )]
    UnsupportedUrl { url: String },
    #[error(
        "{archive} is not a .tar.gz, .tgz, .tar or .zip archive{hint}: pass an archive or a folder of \
         class folders"
    )]
    NotAnArchive { archive: String, hint: &'static str },
    #[error("{archive} is truncated or damaged ({cause}): download it again or get a good copy")]
    Damaged { archive: String, cause: String },
    #[error(
        "refused {archive}: entry {entry:?} {reason}; nothing was written outside the staging folder \
         and the current dataset is unchanged"
    )]
    UnsafeEntry { archive: String, entry: String, reason: String },
    #[error(
        "stopped extracting {archive} at entry {entry:?}: it holds more than {limit}, the limit for \
         one dataset; the current dataset is unchanged"
    )]
    TooLarge { archive: String, entry: String, limit: String },
    #[error(
        "{input} holds no class folders: expected <Class>/<image> folders, optionally inside one top \
         folder"
    )]
    NoClassFolders { input: String },
    #[error("cannot {action} {}: {cause}{}", .path.display(), advice(.cause.kind()))]
    Io { action: &'static str, path: PathBuf, cause: io::Error },
    #[error("{error:#}{}", advice(io_kind(.error)))]
    Workspace { error: anyhow::Error },
    #[error("{0}; the current dataset is unchanged")]
    Cancelled(#[from] Cancelled),
}

impl FetchError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
        let path = path.to_path_buf();
        move |cause| FetchError::Io { action, path, cause }
    }
}

fn mismatch_advice(download_removed: bool) -> &'static str {
    if download_removed {
        "the download was deleted: check the --md5/--sha256 value, or run again to download it afresh"
    } else {
        "check the --md5/--sha256 value, or get a good copy of the file"
    }
}

fn io_kind(error: &anyhow::Error) -> Option<io::ErrorKind> {
    error.chain().find_map(|cause| cause.downcast_ref::<io::Error>()).map(io::Error::kind)
}

/// What to do about an I/O failure, as a clause to append to its message.
fn advice(kind: impl Into<Option<io::ErrorKind>>) -> &'static str {
    match kind.into() {
        Some(io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) => {
            ": the disk is full; free some space and run again"
        }
        Some(io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem) => {
            ": check the permissions, or choose a workspace you can write with --workdir DIR"
        }
        _ => "",
    }
}

/// Gets `request.source` into `workspace.dataset_dir()` and records it in `dataset.json`.
///
/// The data is extracted into a staging folder inside the workspace and swapped in only
/// when complete; on any error (or cancellation) the previous dataset is left as it was.
pub fn fetch(
    workspace: &Workspace,
    request: &FetchRequest,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<DatasetInfo, FetchError> {
    let input = match &request.source {
        Source::Lesson => Input::Archive(Archive::in_memory("the embedded lesson sample", LESSON_ARCHIVE)),
        Source::Url(url) => {
            let file = download::download(url, &workspace.downloads_dir(), request.resume_attempts, emit, cancel)?;
            Input::Download(Archive::file(&file), file)
        }
        Source::Local(path) => match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Input::Folder(path.clone()),
            Ok(_) => Input::Archive(Archive::file(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FetchError::NotFound(path.clone())),
            Err(e) => return Err(FetchError::io("read", path)(e)),
        },
    };
    if let Some(checksum) = &request.checksum {
        verify(&input, &request.source, checksum, emit, cancel)?;
    }

    let staging = workspace.staging_dir().map_err(|error| FetchError::Workspace { error })?;
    let unpacked = staging.path().join("unpacked");
    let extracted = match &input {
        Input::Archive(archive) | Input::Download(archive, _) => {
            archive::extract(archive, &unpacked, &request.limits, emit, cancel)?
        }
        Input::Folder(folder) => archive::copy_folder(folder, &unpacked, &request.limits, emit, cancel)?,
    };
    let root = dataset_root(&unpacked)?;
    let classes = class_folders(&root)?;
    if classes.is_empty() {
        return Err(FetchError::NoClassFolders { input: request.source.to_string() });
    }
    cancel.check()?;
    let staging = install(&root, &workspace.dataset_dir(), staging)?;

    let info = DatasetInfo {
        source: match &request.source {
            Source::Local(path) => std::path::absolute(path).unwrap_or_else(|_| path.clone()).display().to_string(),
            other => other.to_string(),
        },
        checksum: request.checksum.clone(),
        files: extracted.files,
        bytes: extracted.bytes,
        classes,
        fetched_at_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    workspace::write_json_atomic(&workspace.dataset_info_file(), &info)
        .map_err(|error| FetchError::Workspace { error })?;
    let staging_path = staging.path().to_path_buf();
    if let Err(e) = staging.close() {
        emit.warn(format!("could not clean up {}: {e}; delete it by hand", staging_path.display()));
    }
    Ok(info)
}

enum Input {
    Archive(Archive<'static>),
    /// An archive this fetch downloaded: deleted when it fails its checksum, so that the
    /// next run downloads it afresh instead of failing on the same bad copy.
    Download(Archive<'static>, PathBuf),
    Folder(PathBuf),
}

fn verify(
    input: &Input,
    source: &Source,
    checksum: &Checksum,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<(), FetchError> {
    let archive = match input {
        Input::Archive(archive) | Input::Download(archive, _) => archive,
        Input::Folder(folder) => return Err(FetchError::ChecksumOnFolder(folder.clone())),
    };
    let got = checksum.digest_of(archive, emit, cancel)?;
    if got == checksum.hex() {
        return Ok(());
    }
    let download_removed = match input {
        Input::Download(_, file) => fs::remove_file(file).is_ok(),
        _ => false,
    };
    Err(FetchError::ChecksumMismatch {
        input: source.to_string(),
        algorithm: checksum.algorithm(),
        expected: checksum.hex().to_string(),
        got,
        download_removed,
    })
}

/// The folder of class folders: descends while a folder holds nothing but one folder that
/// has folders itself (archives usually wrap the classes in a top folder such as `MedNIST/`;
/// a lone folder of images is a class, not a wrapper).
fn dataset_root(unpacked: &Path) -> Result<PathBuf, FetchError> {
    let mut dir = unpacked.to_path_buf();
    loop {
        let mut entries = sub_entries(&dir)?;
        match (entries.pop(), entries.is_empty()) {
            (Some((only, true)), true) if sub_entries(&only)?.iter().any(|(_, is_dir)| *is_dir) => dir = only,
            _ => return Ok(dir),
        }
    }
}

/// The entries of `dir`, each with whether it is a folder.
fn sub_entries(dir: &Path) -> Result<Vec<(PathBuf, bool)>, FetchError> {
    let read_error = FetchError::io("read", dir);
    let entries = fs::read_dir(dir)
        .and_then(|entries| entries.map(|entry| entry.and_then(|e| Ok((e.path(), e.file_type()?.is_dir())))).collect());
    entries.map_err(read_error)
}

/// The class folders under `root` with the number of files in each (sorted by name).
fn class_folders(root: &Path) -> Result<Vec<ClassFolder>, FetchError> {
    let walk_error = |e: walkdir::Error| FetchError::Io {
        action: "read",
        path: e.path().unwrap_or(root).to_path_buf(),
        cause: e.into(),
    };
    let mut classes = Vec::new();
    for class in WalkDir::new(root).min_depth(1).max_depth(1).sort_by_file_name() {
        let class = class.map_err(walk_error)?;
        if class.file_type().is_dir() {
            let mut files = 0;
            for entry in WalkDir::new(class.path()) {
                files += u64::from(!entry.map_err(walk_error)?.file_type().is_dir());
            }
            classes.push(ClassFolder { name: class.file_name().to_string_lossy().into_owned(), files });
        }
    }
    Ok(classes)
}

/// Moves `new` (inside `staging`) to `target`. An existing `target` is swapped out
/// atomically where the platform allows, so readers always find a complete dataset; the
/// old data ends up inside `staging`, returned for the caller to delete.
fn install(new: &Path, target: &Path, staging: TempDir) -> Result<TempDir, FetchError> {
    if fs::symlink_metadata(target).is_err() {
        fs::rename(new, target).map_err(FetchError::io("move the new dataset to", target))?;
        return Ok(staging);
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, new, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(staging),
            // Filesystems without RENAME_EXCHANGE take the two renames below.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(FetchError::io("swap in the new dataset at", target)(e.into())),
        }
    }
    let aside = staging.path().join("previous");
    fs::rename(target, &aside).map_err(FetchError::io("move aside the old dataset at", target))?;
    if let Err(cause) = fs::rename(new, target) {
        if fs::rename(&aside, target).is_ok() {
            return Err(FetchError::Io { action: "move the new dataset to", path: target.to_path_buf(), cause });
        }
        // Keep the old data where it is rather than deleting it with the staging folder.
        let kept = staging.keep().join("previous");
        return Err(FetchError::Io { action: "move the new dataset in; the old one is kept at", path: kept, cause });
    }
    Ok(staging)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_and_permission_errors_say_what_to_do() {
        let error = |errno| FetchError::Io {
            action: "write",
            path: PathBuf::from("/ws/tmp/x.jpeg"),
            cause: io::Error::from_raw_os_error(errno),
        };
        let full = error(28).to_string(); // ENOSPC
        assert!(full.starts_with("cannot write /ws/tmp/x.jpeg: "), "{full}");
        assert!(full.ends_with("the disk is full; free some space and run again"), "{full}");
        let denied = error(13).to_string(); // EACCES
        assert!(denied.ends_with("choose a workspace you can write with --workdir DIR"), "{denied}");
        let staging = FetchError::Workspace {
            error: anyhow::Error::new(io::Error::from_raw_os_error(13)).context("cannot create /ws/tmp"),
        };
        assert!(staging.to_string().starts_with("cannot create /ws/tmp: "), "{staging}");
        assert!(staging.to_string().ends_with("--workdir DIR"), "{staging}");
    }

    #[test]
    fn sources_are_read_from_urls_and_paths() {
        assert_eq!(Source::parse("https://x.org/a.tgz").unwrap(), Source::Url("https://x.org/a.tgz".into()));
        assert_eq!(Source::parse("file:///data/a%20b.zip").unwrap(), Source::Local("/data/a b.zip".into()));
        assert_eq!(Source::parse("data/MedNIST").unwrap(), Source::Local("data/MedNIST".into()));
        assert!(matches!(Source::parse("ftp://x.org/a.tgz"), Err(FetchError::UnsupportedUrl { .. })));
        assert_eq!(Checksum::md5("0BC7306E7427E00AD1C5526A6677552D").unwrap().hex(), MEDNIST_MD5);
        assert!(matches!(Checksum::sha256("abc"), Err(FetchError::InvalidChecksum { digits: 64, .. })));
    }
}
