//! Extracts .tar.gz/.tgz/.tar/.zip archives, or copies a folder, into a staging folder.
//!
//! Entries that would land outside the target (`..`, absolute paths, links pointing out)
//! are refused; no symbolic link is ever created, so no later entry can be written through
//! one. Junk (`__MACOSX/`, `.DS_Store`, `._*`) is dropped. Total bytes and entry count are
//! capped against decompression bombs.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use walkdir::WalkDir;

use crate::data::fetch::FetchError;
use crate::event::{Emit, Event, Stage};
use crate::job::CancelToken;

/// Caps on what one dataset may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    /// Files, folders and links together.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 20 GiB and 2 million entries: far above MedNIST (60 MB, 59k files).
    fn default() -> Self {
        Self { max_bytes: 20 << 30, max_entries: 2_000_000 }
    }
}

/// What an extraction or copy wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    pub files: u64,
    pub bytes: u64,
}

/// An archive on disk or in memory (the embedded lesson sample).
#[derive(Debug, Clone)]
pub struct Archive<'a> {
    name: String,
    data: Data<'a>,
}

#[derive(Debug, Clone)]
enum Data<'a> {
    File(PathBuf),
    Memory(&'a [u8]),
}

trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

impl<'a> Archive<'a> {
    pub fn file(path: &Path) -> Self {
        Self { name: path.display().to_string(), data: Data::File(path.to_path_buf()) }
    }

    pub fn in_memory(name: &str, bytes: &'a [u8]) -> Self {
        Self { name: name.to_string(), data: Data::Memory(bytes) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A reader over the whole archive, and its length in bytes.
    pub(crate) fn open(&self) -> Result<(impl Read + Seek + Send + 'a, u64), FetchError> {
        Ok(match &self.data {
            Data::File(path) => {
                let file = File::open(path).map_err(FetchError::io("open", path))?;
                let length = file.metadata().map_err(FetchError::io("read", path))?.len();
                (Box::new(BufReader::with_capacity(1 << 16, file)) as Box<dyn ReadSeek + 'a>, length)
            }
            Data::Memory(bytes) => (Box::new(Cursor::new(*bytes)) as Box<dyn ReadSeek + 'a>, bytes.len() as u64),
        })
    }

    /// Maps a failure to read the archive's raw bytes.
    pub(crate) fn read_error(&self, cause: io::Error) -> FetchError {
        match &self.data {
            Data::File(path) => FetchError::Io { action: "read", path: path.clone(), cause },
            Data::Memory(_) => self.damaged(cause),
        }
    }

    fn damaged(&self, cause: impl ToString) -> FetchError {
        FetchError::Damaged { archive: self.name.clone(), cause: cause.to_string() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Gzip,
    Tar,
    Zip,
}

/// Recognises an archive by its first bytes, whatever its file name says.
fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::Gzip)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.get(257..262) == Some(b"ustar") {
        Some(Format::Tar)
    } else {
        None
    }
}

/// A clause explaining what a non-archive file looks like instead.
fn not_archive_hint(head: &[u8]) -> &'static str {
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        None => " (it is empty)",
        Some(b'<') => " (it looks like a web page)",
        Some(_) => "",
    }
}

/// Extracts `archive` into `dest` (created if missing).
pub fn extract(
    archive: &Archive,
    dest: &Path,
    limits: &Limits,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<Extracted, FetchError> {
    let (mut reader, total) = archive.open()?;
    let mut head = Vec::with_capacity(512);
    (&mut reader).take(512).read_to_end(&mut head).map_err(|e| archive.read_error(e))?;
    reader.seek(SeekFrom::Start(0)).map_err(|e| archive.read_error(e))?;
    let format = sniff(&head).ok_or_else(|| FetchError::NotAnArchive {
        archive: archive.name().to_string(),
        hint: not_archive_hint(&head),
    })?;

    fs::create_dir_all(dest).map_err(FetchError::io("create", dest))?;
    emit.emit(Event::StageStarted { stage: Stage::Extract, total: Some(total) });
    let mut sink = Sink::new(archive.name(), dest, limits, emit, Some(total));
    let consumed = Arc::new(AtomicU64::new(0));
    let counted = |inner| Counted { inner, count: Arc::clone(&consumed) };
    match format {
        // Inflating on a thread of its own overlaps it with writing the files, as `tar xzf`
        // does with its gzip process.
        Format::Gzip => thread::scope(|scope| {
            let (chunks, received) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
            scope.spawn(move || send_chunks(flate2::read::MultiGzDecoder::new(counted(reader)), chunks));
            extract_tar(Received::new(received), archive, &mut sink, &consumed, cancel)
        })?,
        Format::Tar => extract_tar(counted(reader), archive, &mut sink, &consumed, cancel)?,
        Format::Zip => extract_zip(reader, archive, &mut sink, cancel)?,
    }
    sink.report(total);
    emit.emit(Event::StageFinished { stage: Stage::Extract });
    Ok(sink.extracted)
}

/// Counts the bytes read through it, for progress over the compressed input.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Chunks of inflated data queued between the inflating thread and the writer.
const CHUNKS_IN_FLIGHT: usize = 16;
const CHUNK_BYTES: usize = 1 << 18;

/// Sends what `reader` yields, chunk by chunk, until it ends or fails or nobody listens.
fn send_chunks(mut reader: impl Read, chunks: SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0; CHUNK_BYTES];
        let result = match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                Ok(chunk)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = result.is_err();
        if chunks.send(result).is_err() || failed {
            return;
        }
    }
}

/// Reads the chunks [`send_chunks`] sends; the end of the channel is the end of the data.
struct Received {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Received {
    fn new(chunks: Receiver<io::Result<Vec<u8>>>) -> Self {
        Self { chunks, chunk: Vec::new(), at: 0 }
    }
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            match self.chunks.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk?, 0),
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn extract_tar(
    reader: impl Read,
    archive: &Archive,
    sink: &mut Sink,
    consumed: &AtomicU64,
    cancel: &CancelToken,
) -> Result<(), FetchError> {
    use tar::EntryType;

    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(|e| archive.damaged(e))? {
        cancel.check()?;
        let mut entry = entry.map_err(|e| archive.damaged(e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let entry_type = entry.header().entry_type();
        let Some(rel) = sink.place(&name)? else { continue };
        match entry_type {
            // Old tars mark folders only with a trailing slash.
            EntryType::Regular if name.ends_with('/') => sink.dir(&name, &rel)?,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                sink.file(&name, &rel, &mut entry, size, &|e| archive.damaged(e))?;
            }
            EntryType::Directory => sink.dir(&name, &rel)?,
            EntryType::Symlink | EntryType::Link => {
                let target = entry.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned());
                let kind = if entry_type == EntryType::Symlink { LinkKind::Symbolic } else { LinkKind::Hard };
                sink.link(&name, &rel, target.as_deref().unwrap_or(""), kind)?;
            }
            EntryType::XGlobalHeader => {}
            _ => sink.skip(&name, "is not a file, folder or link"),
        }
        sink.report(consumed.load(Ordering::Relaxed));
    }
    Ok(())
}

fn extract_zip(
    reader: impl Read + Seek,
    archive: &Archive,
    sink: &mut Sink,
    cancel: &CancelToken,
) -> Result<(), FetchError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| archive.damaged(e))?;
    let mut consumed = 0;
    for index in 0..zip.len() {
        cancel.check()?;
        let mut file = zip.by_index(index).map_err(|e| archive.damaged(e))?;
        let name = file.name().to_string();
        consumed += file.compressed_size();
        let Some(rel) = sink.place(&name)? else { continue };
        if file.is_dir() {
            sink.dir(&name, &rel)?;
        } else if file.is_symlink() {
            let mut target = String::new();
            (&mut file).take(4096).read_to_string(&mut target).map_err(|e| archive.damaged(e))?;
            sink.link(&name, &rel, &target, LinkKind::Symbolic)?;
        } else {
            let size = file.size();
            sink.file(&name, &rel, &mut file, size, &|e| archive.damaged(e))?;
        }
        sink.report(consumed);
    }
    Ok(())
}

/// Copies a folder of class folders into `dest`, with the same junk filter and caps as
/// [`extract`]. Symbolic links to files are followed; links to folders are skipped.
pub fn copy_folder(
    folder: &Path,
    dest: &Path,
    limits: &Limits,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<Extracted, FetchError> {
    fs::create_dir_all(dest).map_err(FetchError::io("create", dest))?;
    // `dest` may lie inside `folder` (a workspace passed as its own source): never copy it into itself.
    let dest_real = fs::canonicalize(dest).map_err(FetchError::io("read", dest))?;
    let folder_name = folder.display().to_string();
    emit.emit(Event::StageStarted { stage: Stage::Extract, total: None });
    let mut sink = Sink::new(&folder_name, dest, limits, emit, None);
    let is_dest = |entry: &walkdir::DirEntry| {
        entry.file_type().is_dir() && fs::canonicalize(entry.path()).is_ok_and(|real| real == dest_real)
    };
    let walk = WalkDir::new(folder)
        .min_depth(1)
        .into_iter()
        .filter_entry(|entry| !(is_junk(Path::new(entry.file_name())) || is_dest(entry)));
    for entry in walk {
        cancel.check()?;
        let entry = entry.map_err(|e| FetchError::Io {
            action: "read",
            path: e.path().unwrap_or(folder).to_path_buf(),
            cause: e.into(),
        })?;
        let path = entry.path();
        let rel = path.strip_prefix(folder).expect("walkdir yields paths under its root");
        let name = rel.display().to_string();
        if entry.file_type().is_dir() {
            sink.dir(&name, rel)?;
            continue;
        }
        // Follows symbolic links: a link to a file is copied as that file.
        let meta = fs::metadata(path).map_err(FetchError::io("read", path))?;
        if meta.is_dir() {
            sink.skip(&name, "is a symbolic link to a folder");
            continue;
        }
        let mut file = File::open(path).map_err(FetchError::io("open", path))?;
        let read_error = |cause| FetchError::Io { action: "read", path: path.to_path_buf(), cause };
        sink.file(&name, rel, &mut file, meta.len(), &read_error)?;
        sink.report(sink.extracted.bytes);
    }
    sink.report(sink.extracted.bytes);
    emit.emit(Event::StageFinished { stage: Stage::Extract });
    Ok(sink.extracted)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    /// Target relative to the link's own folder.
    Symbolic,
    /// Target relative to the archive's root.
    Hard,
}

/// Writes entries under `root`, enforcing the limits and reporting progress.
struct Sink<'a> {
    /// The archive or folder, for messages.
    source: &'a str,
    root: &'a Path,
    limits: Limits,
    emit: &'a dyn Emit,
    total: Option<u64>,
    extracted: Extracted,
    entries: u64,
    made_dirs: HashSet<PathBuf>,
    buffer: Vec<u8>,
    reported: u64,
}

/// Progress is reported at most once per this many bytes of input.
const REPORT_EVERY: u64 = 1 << 20;

impl<'a> Sink<'a> {
    fn new(source: &'a str, root: &'a Path, limits: &Limits, emit: &'a dyn Emit, total: Option<u64>) -> Self {
        Self {
            source,
            root,
            limits: *limits,
            emit,
            total,
            extracted: Extracted { files: 0, bytes: 0 },
            entries: 0,
            made_dirs: HashSet::new(),
            buffer: vec![0; 1 << 16],
            reported: 0,
        }
    }

    /// Where entry `name` goes, relative to the root; `None` for junk and the root itself.
    fn place(&self, name: &str) -> Result<Option<PathBuf>, FetchError> {
        let refuse = |reason: &str| FetchError::UnsafeEntry {
            archive: self.source.to_string(),
            entry: name.to_string(),
            reason: reason.to_string(),
        };
        if is_absolute(name) {
            return Err(refuse("is an absolute path"));
        }
        let mut rel = PathBuf::new();
        for part in name.split(['/', '\\']) {
            match part {
                "" | "." => {}
                ".." => return Err(refuse("climbs out of the target folder with `..`")),
                part => rel.push(part),
            }
        }
        Ok(Some(rel).filter(|rel| !rel.as_os_str().is_empty() && !is_junk(rel)))
    }

    fn count_entry(&mut self, name: &str) -> Result<(), FetchError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(self.too_large(name, format!("{} files and folders", self.limits.max_entries)));
        }
        Ok(())
    }

    fn add_bytes(&mut self, name: &str, bytes: u64) -> Result<(), FetchError> {
        self.extracted.bytes += bytes;
        if self.extracted.bytes > self.limits.max_bytes {
            return Err(self.too_large(name, size_text(self.limits.max_bytes)));
        }
        Ok(())
    }

    fn too_large(&self, name: &str, limit: String) -> FetchError {
        FetchError::TooLarge { archive: self.source.to_string(), entry: name.to_string(), limit }
    }

    fn make_dir(&mut self, dir: &Path) -> Result<(), FetchError> {
        if !self.made_dirs.contains(dir) {
            fs::create_dir_all(dir).map_err(FetchError::io("create", dir))?;
            self.made_dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    fn make_parent(&mut self, path: &Path) -> Result<(), FetchError> {
        match path.parent() {
            Some(parent) => self.make_dir(parent),
            None => Ok(()),
        }
    }

    fn dir(&mut self, name: &str, rel: &Path) -> Result<(), FetchError> {
        self.count_entry(name)?;
        self.make_dir(&self.root.join(rel))
    }

    /// Writes one file from `reader`; `declared` is the size the archive states, checked
    /// against the cap before writing (and the real size while writing).
    fn file(
        &mut self,
        name: &str,
        rel: &Path,
        reader: &mut dyn Read,
        declared: u64,
        read_error: &dyn Fn(io::Error) -> FetchError,
    ) -> Result<(), FetchError> {
        self.count_entry(name)?;
        if self.extracted.bytes.saturating_add(declared) > self.limits.max_bytes {
            return Err(self.too_large(name, size_text(self.limits.max_bytes)));
        }
        let path = self.root.join(rel);
        self.make_parent(&path)?;
        let mut out = File::create(&path).map_err(FetchError::io("create", &path))?;
        let mut buffer = std::mem::take(&mut self.buffer);
        let copied = loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(read_error(e)),
            };
            if let Err(e) = self.add_bytes(name, n as u64) {
                break Err(e);
            }
            if let Err(e) = out.write_all(&buffer[..n]) {
                break Err(FetchError::Io { action: "write", path: path.clone(), cause: e });
            }
        };
        self.buffer = buffer;
        copied?;
        self.extracted.files += 1;
        Ok(())
    }

    /// A link inside the archive becomes a hard link to the file it names, which must have
    /// been extracted already; a link that points outside the root is refused.
    fn link(&mut self, name: &str, rel: &Path, target: &str, kind: LinkKind) -> Result<(), FetchError> {
        let Some(target_rel) = resolve_link(rel, target, kind) else {
            let what = match kind {
                LinkKind::Symbolic => "symbolic",
                LinkKind::Hard => "hard",
            };
            return Err(FetchError::UnsafeEntry {
                archive: self.source.to_string(),
                entry: name.to_string(),
                reason: format!("is a {what} link to {target:?}, outside the target folder"),
            });
        };
        let original = self.root.join(&target_rel);
        let Some(meta) = fs::symlink_metadata(&original).ok().filter(|m| m.is_file()) else {
            self.skip(name, &format!("links to {target:?}, which is not a file extracted before it"));
            return Ok(());
        };
        self.count_entry(name)?;
        self.add_bytes(name, meta.len())?;
        let path = self.root.join(rel);
        self.make_parent(&path)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(FetchError::Io { action: "replace", path, cause: e });
            }
            _ => {}
        }
        fs::hard_link(&original, &path).map_err(FetchError::io("create", &path))?;
        self.extracted.files += 1;
        Ok(())
    }

    fn skip(&self, name: &str, reason: &str) {
        self.emit.warn(format!("skipped {name:?} in {}: it {reason}", self.source));
    }

    /// Reports progress when `done` (input bytes) moved on enough since the last report.
    fn report(&mut self, done: u64) {
        if done >= self.reported + REPORT_EVERY || Some(done) == self.total {
            self.reported = done;
            self.emit.emit(Event::Progress { stage: Stage::Extract, done, total: self.total });
        }
    }
}

/// Absolute on any platform: `/x`, `\x`, `C:...`.
fn is_absolute(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.starts_with(['/', '\\']) || (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':')
}

/// macOS metadata that archivers pick up along with the images.
fn is_junk(rel: &Path) -> bool {
    let junk_name = |name: &OsStr| {
        let name = name.to_string_lossy();
        name == ".DS_Store" || name.starts_with("._")
    };
    rel.iter().any(|part| part == "__MACOSX") || rel.file_name().is_some_and(junk_name)
}

/// The root-relative path a link at `link` (root-relative) with `target` points to, or
/// `None` when it points outside the root. Purely lexical: nothing on disk is a symbolic
/// link, so no component can redirect it.
fn resolve_link(link: &Path, target: &str, kind: LinkKind) -> Option<PathBuf> {
    if is_absolute(target) {
        return None;
    }
    let mut parts: Vec<&OsStr> = match kind {
        LinkKind::Symbolic => link.parent().map(|dir| dir.iter().collect()).unwrap_or_default(),
        LinkKind::Hard => Vec::new(),
    };
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(OsStr::new(part)),
        }
    }
    Some(parts.iter().collect())
}

fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match bytes {
        b if b >= GIB => format!("{:.1} GiB", b as f64 / GIB as f64),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_lexically_and_escapes_are_caught() {
        let link = Path::new("MedNIST/Hand/a.jpeg");
        assert_eq!(resolve_link(link, "b.jpeg", LinkKind::Symbolic), Some(PathBuf::from("MedNIST/Hand/b.jpeg")));
        assert_eq!(
            resolve_link(link, "../CXR/./c.jpeg", LinkKind::Symbolic),
            Some(PathBuf::from("MedNIST/CXR/c.jpeg"))
        );
        assert_eq!(resolve_link(link, "MedNIST/CXR/c.jpeg", LinkKind::Hard), Some(PathBuf::from("MedNIST/CXR/c.jpeg")));
        assert_eq!(resolve_link(link, "../../../x", LinkKind::Symbolic), None);
        assert_eq!(resolve_link(link, "../x", LinkKind::Hard), None);
        assert_eq!(resolve_link(link, "/etc/passwd", LinkKind::Symbolic), None);
        assert_eq!(resolve_link(link, "C:\\x", LinkKind::Hard), None);
    }

    #[test]
    fn junk_is_recognised_anywhere_in_the_path() {
        assert!(is_junk(Path::new("__MACOSX/MedNIST/Hand/x.jpeg")));
        assert!(is_junk(Path::new("MedNIST/.DS_Store")));
        assert!(is_junk(Path::new("MedNIST/Hand/._x.jpeg")));
        assert!(!is_junk(Path::new("MedNIST/Hand/x.jpeg")));
        assert!(!is_junk(Path::new("MedNIST/Hand/x._jpeg")));
    }

    #[test]
    fn formats_are_recognised_by_content() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Some(Format::Tar));
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some(Format::Gzip));
        assert_eq!(sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(sniff(b"<!DOCTYPE html>"), None);
        assert_eq!(not_archive_hint(b"  <html>"), " (it looks like a web page)");
        assert_eq!(not_archive_hint(b""), " (it is empty)");
    }
}
