//! `mednist fetch`: downloads over real HTTP (a server on 127.0.0.1), resume, checksums,
//! hostile and broken archives, and the swap that keeps the old data on failure.

#[path = "common/http.rs"]
mod http;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use assert_cmd::Command;
use mednist::data::archive::Limits;
use mednist::data::embedded::LESSON_ARCHIVE;
use mednist::data::fetch::{Checksum, DatasetInfo, FetchError, FetchRequest, Source, fetch};
use mednist::event::Event;
use mednist::job::CancelToken;
use mednist::workspace::{Workspace, read_json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use http::{Route, TestServer};

/// The real MedNIST, as shared/data/README.md describes it (opt-in checks only).
const MEDNIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/MedNIST.tar.gz");
const MEDNIST_SHA256: &str = "d06a16342bd66f3dcf6d96cc3c0efbf37e1c19748243c0db52d65d0348ef23ed";
const MEDNIST_CLASSES: [(&str, u64); 6] =
    [("AbdomenCT", 10000), ("BreastMRI", 8954), ("CXR", 10000), ("ChestCT", 10000), ("Hand", 10000), ("HeadCT", 10000)];

// ---------------------------------------------------------------- archive builders

enum Entry<'a> {
    File(&'a str, Vec<u8>),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

/// A tar written header by header, so that names the `tar` crate would refuse to write
/// (`..`, absolute paths) can be made.
fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let (name, kind, link, data): (&str, _, Option<&str>, &[u8]) = match entry {
            Entry::File(name, data) => (name, tar::EntryType::Regular, None, data),
            Entry::Dir(name) => (name, tar::EntryType::Directory, None, &[]),
            Entry::Symlink(name, target) => (name, tar::EntryType::Symlink, Some(*target), &[]),
            Entry::HardLink(name, target) => (name, tar::EntryType::Link, Some(*target), &[]),
        };
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zip(entries: &[Entry]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for entry in entries {
        match entry {
            Entry::File(name, data) => {
                writer.start_file(*name, options).unwrap();
                writer.write_all(data).unwrap();
            }
            Entry::Dir(name) => writer.add_directory(*name, options).unwrap(),
            Entry::Symlink(name, target) => writer.add_symlink(*name, *target, options).unwrap(),
            Entry::HardLink(..) => unreachable!("zip has no hard links"),
        }
    }
    writer.finish().unwrap().into_inner()
}

/// Incompressible bytes, so archives have a real size to cut and resume.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// Two classes of three "images" each, inside a `MedNIST/` top folder.
fn small_dataset(seed: u64) -> Vec<Entry<'static>> {
    let mut entries = Vec::new();
    for (c, class) in ["Hand", "CXR"].into_iter().enumerate() {
        entries.push(Entry::Dir(if class == "Hand" { "MedNIST/Hand/" } else { "MedNIST/CXR/" }));
        for (i, name) in ["000000.jpeg", "000001.jpeg", "000002.jpeg"].into_iter().enumerate() {
            let path: &'static str = Box::leak(format!("MedNIST/{class}/{name}").into_boxed_str());
            entries.push(Entry::File(path, noise(seed * 100 + (c * 10 + i) as u64, 40_000)));
        }
    }
    entries
}

// ---------------------------------------------------------------- workspace helpers

fn quiet(_: Event) {}

fn run_fetch(ws: &Workspace, request: &FetchRequest) -> Result<DatasetInfo, FetchError> {
    fetch(ws, request, &quiet, &CancelToken::new())
}

fn local(path: &Path) -> FetchRequest {
    FetchRequest::new(Source::Local(path.to_path_buf()), None)
}

/// Every file under `dir`, by relative path, with its contents.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string(), fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Every path under `dir`, sorted, links included and not followed.
fn all_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(all_paths(&path));
        }
    }
    out.sort();
    out
}

fn files_per_class(dataset: &Path) -> BTreeMap<String, usize> {
    fs::read_dir(dataset)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read_dir(e.path()).unwrap().count()))
        .collect()
}

/// A workspace under `dir` holding a small dataset already, as a failed re-fetch must leave it.
struct Seeded {
    ws: Workspace,
    dataset: BTreeMap<String, Vec<u8>>,
    info: Vec<u8>,
}

fn seeded(dir: &Path) -> Seeded {
    let archive = dir.join("seed.tar.gz");
    fs::write(&archive, gzip(&tar(&small_dataset(7)))).unwrap();
    let ws = Workspace::at(dir.join("ws"));
    run_fetch(&ws, &local(&archive)).unwrap();
    let dataset = tree(&ws.dataset_dir());
    assert_eq!(dataset.len(), 6);
    let info = fs::read(ws.dataset_info_file()).unwrap();
    Seeded { ws, dataset, info }
}

impl Seeded {
    /// The old dataset and its record are exactly as before, and no staging is left.
    fn assert_intact(&self) {
        assert_eq!(tree(&self.ws.dataset_dir()), self.dataset, "the old dataset changed");
        assert_eq!(fs::read(self.ws.dataset_info_file()).unwrap(), self.info, "dataset.json changed");
        let tmp = self.ws.root().join("tmp");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "staging left in {}", tmp.display());
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---------------------------------------------------------------- the embedded lesson

#[test]
fn lesson_gives_six_classes_of_300_images() {
    let dir = TempDir::new().unwrap();
    let output = Command::cargo_bin("mednist")
        .unwrap()
        .args(["--workdir", dir.path().to_str().unwrap(), "--json", "fetch"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(json["images"], 1800);
    let classes = json["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 6);
    assert!(classes.iter().all(|c| c["files"] == 300), "{classes:?}");

    let ws = Workspace::at(dir.path());
    let on_disk = files_per_class(&ws.dataset_dir());
    assert_eq!(on_disk.len(), 6);
    assert!(on_disk.values().all(|&n| n == 300), "{on_disk:?}");
    let info: DatasetInfo = read_json(&ws.dataset_info_file()).unwrap();
    assert_eq!(info.files, 1800);
}

#[test]
fn text_output_summarises_the_dataset() {
    let dir = TempDir::new().unwrap();
    let assert = Command::cargo_bin("mednist")
        .unwrap()
        .args(["--workdir", dir.path().to_str().unwrap(), "fetch", "--dataset", "lesson"])
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("1800 in 6 class folders"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("BreastMRI") && l.ends_with(" 300")), "{stdout}");
}

// ---------------------------------------------------------------- HTTP

/// Runs the resumable, verified download of a full MedNIST-sized archive (`archive`, whose
/// classes and counts are `classes`) over HTTP, cut after 20 MB.
fn assert_full_download_resumes(archive: Vec<u8>, classes: &[(&str, u64)]) {
    let cut = 20_000_000;
    assert!(archive.len() > 2 * cut, "the archive ({} bytes) is too small to cut at {cut}", archive.len());
    let (size, sha256) = (archive.len() as u64, sha256_hex(&archive));
    let server = TestServer::start(vec![("/MedNIST.tar.gz", Route::new(archive).cut_first_at(cut))]);
    let dir = TempDir::new().unwrap();
    let ws = Workspace::at(dir.path());
    let request =
        FetchRequest::new(Source::Url(server.url("/MedNIST.tar.gz")), Some(Checksum::sha256(&sha256).unwrap()));
    let warnings = Mutex::new(Vec::new());
    let collect = |event: Event| {
        if let Event::Log { message, .. } = event {
            warnings.lock().unwrap().push(message);
        }
    };
    let info = fetch(&ws, &request, &collect, &CancelToken::new()).unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range(), None);
    assert_eq!(requests[1].range(), Some(format!("bytes={cut}-").as_str()));
    assert!(warnings.lock().unwrap().iter().any(|w| w.contains("resuming")), "{warnings:?}");

    let total: u64 = classes.iter().map(|(_, count)| count).sum();
    assert_eq!(info.images(), total);
    let expected: Vec<(String, u64)> = classes.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    let got: Vec<(String, u64)> = info.classes.iter().map(|c| (c.name.clone(), c.files)).collect();
    assert_eq!(got, expected);
    let on_disk = files_per_class(&ws.dataset_dir());
    assert_eq!(on_disk.values().sum::<usize>() as u64, total);
    assert_eq!(info.checksum, Some(Checksum::Sha256(sha256)));

    let downloads: Vec<_> = fs::read_dir(ws.downloads_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert!(downloads[0].to_string_lossy().ends_with("-MedNIST.tar.gz"));
    assert_eq!(fs::metadata(&downloads[0]).unwrap().len(), size);
}

/// An archive shaped like the full MedNIST: `MedNIST/<Class>/<NNNNNN>.jpeg`, 64x64 gray JPEGs,
/// the same classes and counts, and about the same size (61 MB), generated here.
fn mednist_shaped_archive() -> Vec<u8> {
    use rayon::prelude::*;
    let names: Vec<(&str, u64)> =
        MEDNIST_CLASSES.iter().flat_map(|&(class, count)| (0..count).map(move |i| (class, i))).collect();
    let jpegs: Vec<Vec<u8>> =
        names.par_iter().map(|&(class, i)| synthetic_scan(class.len() as u64 * 100_003 + i)).collect();
    let mut builder = tar::Builder::new(Vec::new());
    for ((class, i), jpeg) in names.iter().zip(&jpegs) {
        let mut header = tar::Header::new_gnu();
        header.set_size(jpeg.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, format!("MedNIST/{class}/{i:06}.jpeg"), jpeg.as_slice()).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

/// A 64x64 gray JPEG: a bright disc on a dark field with grain, about as large as MedNIST's.
fn synthetic_scan(seed: u64) -> Vec<u8> {
    let grain = noise(seed, 64 * 64);
    let (cx, cy) = (20.0 + (seed % 24) as f32, 20.0 + (seed / 24 % 24) as f32);
    let image = image::GrayImage::from_fn(64, 64, |x, y| {
        let distance = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        let body = (200.0 - distance * 6.0).max(20.0);
        image::Luma([(body + f32::from(grain[(y * 64 + x) as usize] % GRAIN)).min(255.0) as u8])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&image).unwrap();
    jpeg
}

/// Amplitude of the grain in [`synthetic_scan`], which sets the JPEG's size.
const GRAIN: u8 = 12;

#[test]
fn a_full_size_download_resumes_after_a_cut_and_is_verified() {
    let archive = mednist_shaped_archive();
    // The real one is 61,122,880 bytes.
    assert!((45_000_000..80_000_000).contains(&archive.len()), "{} bytes", archive.len());
    assert_full_download_resumes(archive, &MEDNIST_CLASSES);
}

/// The same with the real MedNIST, which a clone does not have: opt in with
/// `cargo test --test fetch -- --ignored` and the archive at ../shared/data/MedNIST.tar.gz
/// (or `MEDNIST_ARCHIVE=PATH`).
#[test]
#[ignore = "needs the real MedNIST archive: cargo test --test fetch -- --ignored"]
fn the_real_mednist_download_resumes_after_a_cut_and_is_verified() {
    let path = std::env::var("MEDNIST_ARCHIVE").unwrap_or_else(|_| MEDNIST.to_string());
    let archive =
        fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (set MEDNIST_ARCHIVE to the real MedNIST.tar.gz)"));
    assert_eq!(sha256_hex(&archive), MEDNIST_SHA256, "{path} is not the MedNIST of shared/data/README.md");
    assert_full_download_resumes(archive, &MEDNIST_CLASSES);
}

#[test]
fn a_cut_download_resumes_in_the_next_run() {
    let archive = gzip(&tar(&small_dataset(1)));
    let cut = archive.len() / 2;
    let server = TestServer::start(vec![("/small.tgz", Route::new(archive.clone()).cut_first_at(cut))]);
    let dir = TempDir::new().unwrap();
    let ws = Workspace::at(dir.path());
    let mut request = FetchRequest::new(
        Source::Url(server.url("/small.tgz")),
        Some(Checksum::sha256(&sha256_hex(&archive)).unwrap()),
    );
    request.resume_attempts = 0;

    let error = run_fetch(&ws, &request).unwrap_err();
    assert!(matches!(error, FetchError::Interrupted { done, .. } if done == cut as u64), "{error:?}");
    assert!(error.to_string().contains("run the same command again to resume"), "{error}");
    let parts: Vec<_> = fs::read_dir(ws.downloads_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].to_string_lossy().ends_with(".part"));
    assert_eq!(fs::metadata(&parts[0]).unwrap().len(), cut as u64);
    assert!(!ws.dataset_dir().exists());

    let info = run_fetch(&ws, &request).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].range(), Some(format!("bytes={cut}-").as_str()));
    assert_eq!(info.files, 6);
    assert!(!parts[0].exists(), "the .part file is renamed once complete");
}

#[test]
fn a_server_ignoring_range_gets_the_download_restarted() {
    let archive = gzip(&tar(&small_dataset(2)));
    let route = Route::new(archive.clone()).cut_first_at(archive.len() / 3).ignoring_range();
    let server = TestServer::start(vec![("/small.tgz", route)]);
    let dir = TempDir::new().unwrap();
    let ws = Workspace::at(dir.path());
    let request = FetchRequest::new(
        Source::Url(server.url("/small.tgz")),
        Some(Checksum::sha256(&sha256_hex(&archive)).unwrap()),
    );

    // Appending the 200's full body to the part would fail the checksum.
    let info = run_fetch(&ws, &request).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].range().is_some());
    assert_eq!(info.files, 6);
}

#[test]
fn a_complete_part_answered_with_416_is_used_as_is() {
    let archive = gzip(&tar(&small_dataset(3)));
    let server = TestServer::start(vec![("/small.tgz", Route::new(archive.clone()).cut_first_at(10))]);
    let dir = TempDir::new().unwrap();
    let ws = Workspace::at(dir.path());
    let mut request = FetchRequest::new(
        Source::Url(server.url("/small.tgz")),
        Some(Checksum::sha256(&sha256_hex(&archive)).unwrap()),
    );
    request.resume_attempts = 0;
    run_fetch(&ws, &request).unwrap_err();
    // As if a run had received every byte and stopped before renaming the part.
    let part = fs::read_dir(ws.downloads_dir()).unwrap().next().unwrap().unwrap().path();
    fs::write(&part, &archive).unwrap();

    let info = run_fetch(&ws, &request).unwrap();
    let requests = server.requests();
    assert_eq!(requests[1].range(), Some(format!("bytes={}-", archive.len()).as_str()));
    assert_eq!(info.files, 6);
}

#[test]
fn wrong_checksum_names_both_sums_and_keeps_the_old_data() {
    let archive = gzip(&tar(&small_dataset(4)));
    let server = TestServer::start(vec![("/small.tgz", Route::new(archive.clone()))]);
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let wrong = "0".repeat(64);
    let request = FetchRequest::new(Source::Url(server.url("/small.tgz")), Some(Checksum::sha256(&wrong).unwrap()));

    let error = run_fetch(&seeded.ws, &request).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, FetchError::ChecksumMismatch { download_removed: true, .. }), "{error:?}");
    assert!(message.contains(&format!("expected sha256 {wrong}")), "{message}");
    assert!(message.contains(&format!("got {}", sha256_hex(&archive))), "{message}");
    seeded.assert_intact();
    assert_eq!(fs::read_dir(seeded.ws.downloads_dir()).unwrap().count(), 0, "the bad download is deleted");
}

#[test]
fn http_errors_name_the_status_and_keep_the_old_data() {
    let server = TestServer::start(vec![]);
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let url = server.url("/missing.tar.gz");
    let error = run_fetch(&seeded.ws, &FetchRequest::new(Source::Url(url.clone()), None)).unwrap_err();
    assert!(matches!(error, FetchError::HttpStatus { status, .. } if status == 404), "{error:?}");
    assert!(error.to_string().contains(&format!("{url} answered HTTP 404")), "{error}");
    seeded.assert_intact();
}

#[test]
fn connection_refused_is_one_line_suggesting_a_local_source() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = TempDir::new().unwrap();
    let url = format!("http://127.0.0.1:{port}/MedNIST.tar.gz");
    let assert = Command::cargo_bin("mednist")
        .unwrap()
        .args(["--workdir", dir.path().to_str().unwrap(), "fetch", "--source", &url])
        .assert()
        .failure();
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("error: cannot reach {url}")), "{stderr}");
    assert!(stderr.contains("--source PATH"), "{stderr}");
}

// ---------------------------------------------------------------- hostile archives

/// Fetches `archive` into a seeded workspace and checks that it is refused naming
/// `entry`, that nothing named `escaped*` appeared anywhere, and that the old data stands.
fn assert_refused(label: &str, archive: Vec<u8>, entry: &str) {
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let path = dir.path().join("hostile.archive");
    fs::write(&path, archive).unwrap();
    let before = all_paths(dir.path());

    let error = run_fetch(&seeded.ws, &local(&path)).unwrap_err();
    match &error {
        FetchError::UnsafeEntry { entry: refused, .. } => assert_eq!(refused, entry, "{label}"),
        other => panic!("{label}: expected UnsafeEntry, got {other:?}"),
    }
    assert!(error.to_string().contains(&format!("{entry:?}")), "{label}: {error}");
    assert_eq!(all_paths(dir.path()), before, "{label}: files appeared or vanished");
    seeded.assert_intact();
}

#[test]
fn entries_climbing_out_are_refused() {
    let good = || Entry::File("MedNIST/Hand/000000.jpeg", b"jpeg".to_vec());
    let escape = || b"escaped".to_vec();
    assert_refused("tar ..", gzip(&tar(&[good(), Entry::File("../../escaped.txt", escape())])), "../../escaped.txt");
    assert_refused(
        "tar .. inside a path",
        tar(&[good(), Entry::File("MedNIST/../../../escaped.txt", escape())]),
        "MedNIST/../../../escaped.txt",
    );
    assert_refused("zip slip", zip(&[good(), Entry::File("../escaped.txt", escape())]), "../escaped.txt");
}

#[test]
fn absolute_paths_are_refused() {
    let target = std::env::temp_dir().join(format!("escaped-absolute-{}.txt", std::process::id()));
    let name = target.to_str().unwrap();
    let good = || Entry::File("MedNIST/Hand/000000.jpeg", b"jpeg".to_vec());
    assert_refused("tar absolute", gzip(&tar(&[good(), Entry::File(name, b"escaped".to_vec())])), name);
    assert_refused("zip absolute", zip(&[good(), Entry::File(name, b"escaped".to_vec())]), name);
    assert!(!target.exists());
}

#[test]
fn links_pointing_out_are_refused() {
    let good = || Entry::File("MedNIST/Hand/000000.jpeg", b"jpeg".to_vec());
    let through = || Entry::File("MedNIST/Hand/link/escaped.txt", b"escaped".to_vec());
    assert_refused(
        "tar symlink climbing out",
        gzip(&tar(&[good(), Entry::Symlink("MedNIST/Hand/link", "../../../../.."), through()])),
        "MedNIST/Hand/link",
    );
    assert_refused(
        "tar symlink to an absolute path",
        gzip(&tar(&[good(), Entry::Symlink("MedNIST/Hand/link", "/tmp"), through()])),
        "MedNIST/Hand/link",
    );
    assert_refused(
        "zip symlink",
        zip(&[good(), Entry::Symlink("MedNIST/Hand/link", "../../.."), through()]),
        "MedNIST/Hand/link",
    );
    assert_refused(
        "tar hard link climbing out",
        gzip(&tar(&[good(), Entry::HardLink("MedNIST/Hand/escaped", "../seed.tar.gz")])),
        "MedNIST/Hand/escaped",
    );
}

#[test]
fn a_hard_link_to_an_outside_file_cannot_be_written_through() {
    let dir = TempDir::new().unwrap();
    let secret = dir.path().join("secret.txt");
    fs::write(&secret, "secret").unwrap();
    let ws = Workspace::at(dir.path().join("ws"));
    let archive = dir.path().join("hostile.tar");
    let link = "MedNIST/Hand/000001.jpeg";
    fs::write(
        &archive,
        tar(&[
            Entry::File("MedNIST/Hand/000000.jpeg", b"jpeg".to_vec()),
            Entry::HardLink(link, secret.to_str().unwrap()),
            Entry::File(link, b"overwritten".to_vec()),
        ]),
    )
    .unwrap();
    let error = run_fetch(&ws, &local(&archive)).unwrap_err();
    assert!(matches!(&error, FetchError::UnsafeEntry { entry, .. } if entry == link), "{error:?}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret");
    assert!(!ws.dataset_dir().exists());
}

#[test]
fn links_inside_the_archive_become_copies_of_their_target() {
    let dir = TempDir::new().unwrap();
    let ws = Workspace::at(dir.path().join("ws"));
    let archive = dir.path().join("links.tar.gz");
    fs::write(
        &archive,
        gzip(&tar(&[
            Entry::File("MedNIST/Hand/000000.jpeg", b"hand".to_vec()),
            Entry::Symlink("MedNIST/Hand/000001.jpeg", "000000.jpeg"),
            Entry::HardLink("MedNIST/CXR/000000.jpeg", "MedNIST/Hand/000000.jpeg"),
        ])),
    )
    .unwrap();
    let info = run_fetch(&ws, &local(&archive)).unwrap();
    assert_eq!(info.files, 3);
    for path in all_paths(&ws.dataset_dir()) {
        assert!(!fs::symlink_metadata(&path).unwrap().is_symlink(), "{} is a symlink", path.display());
    }
    assert!(tree(&ws.dataset_dir()).values().all(|data| data == b"hand"));
}

// ---------------------------------------------------------------- broken input

#[test]
fn truncated_archives_are_reported_and_the_old_data_kept() {
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let zipped = zip(&small_dataset(5));
    let cases = [
        ("truncated.tar.gz", &LESSON_ARCHIVE[..LESSON_ARCHIVE.len() / 2]),
        ("truncated.zip", &zipped[..zipped.len() - 100]),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let error = run_fetch(&seeded.ws, &local(&path)).unwrap_err();
        assert!(matches!(error, FetchError::Damaged { .. }), "{name}: {error:?}");
        assert!(error.to_string().contains("is truncated or damaged"), "{name}: {error}");
        seeded.assert_intact();
    }
}

#[test]
fn files_that_are_not_archives_are_reported() {
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    for (name, bytes, hint) in
        [("notes.tar.gz", &b"just some notes"[..], ""), ("page.tar.gz", b"<!DOCTYPE html><html>", "web page")]
    {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let error = run_fetch(&seeded.ws, &local(&path)).unwrap_err();
        assert!(matches!(error, FetchError::NotAnArchive { .. }), "{name}: {error:?}");
        assert!(error.to_string().contains(hint), "{name}: {error}");
        seeded.assert_intact();
    }
}

#[test]
fn size_and_count_caps_stop_extraction() {
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let path = dir.path().join("big.tar.gz");
    fs::write(&path, gzip(&tar(&small_dataset(6)))).unwrap();

    let mut request = local(&path);
    request.limits = Limits { max_bytes: 100_000, ..Limits::default() };
    let error = run_fetch(&seeded.ws, &request).unwrap_err();
    assert!(matches!(error, FetchError::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("more than 100000 bytes"), "{error}");
    seeded.assert_intact();

    request.limits = Limits { max_entries: 4, ..Limits::default() };
    let error = run_fetch(&seeded.ws, &request).unwrap_err();
    assert!(error.to_string().contains("more than 4 files and folders"), "{error}");
    seeded.assert_intact();
}

#[test]
fn cancelling_a_download_keeps_the_part_and_the_old_data() {
    let server = TestServer::start(vec![("/big.tgz", Route::new(noise(9, 4 << 20)))]);
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let cancel = CancelToken::new();
    let cancel_on_progress = |event: Event| {
        if matches!(event, Event::Progress { done, .. } if done > 0) {
            cancel.cancel();
        }
    };
    let request = FetchRequest::new(Source::Url(server.url("/big.tgz")), None);
    let error = fetch(&seeded.ws, &request, &cancel_on_progress, &cancel).unwrap_err();
    assert!(matches!(error, FetchError::Cancelled(_)), "{error:?}");
    let parts: Vec<_> = fs::read_dir(seeded.ws.downloads_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].to_string_lossy().ends_with(".part"), "{parts:?}");
    assert!(fs::metadata(&parts[0]).unwrap().len() < 4 << 20);
    seeded.assert_intact();
}

#[test]
fn cancelling_an_extraction_keeps_the_old_data() {
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let cancel = CancelToken::new();
    let cancel_on_extract = |event: Event| {
        if matches!(event, Event::StageStarted { .. }) {
            cancel.cancel();
        }
    };
    let error = fetch(&seeded.ws, &FetchRequest::lesson(), &cancel_on_extract, &cancel).unwrap_err();
    assert!(matches!(error, FetchError::Cancelled(_)), "{error:?}");
    seeded.assert_intact();
}

// ---------------------------------------------------------------- sources and layout

#[test]
fn every_source_form_gives_the_same_dataset() {
    let dir = TempDir::new().unwrap();
    let entries = small_dataset(8);
    let tarred = tar(&entries);
    let folder = dir.path().join("folder");
    for entry in &entries {
        if let Entry::File(name, data) = entry {
            let path = folder.join(name.strip_prefix("MedNIST/").unwrap());
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, data).unwrap();
        }
    }
    let mut sources = Vec::new();
    for (name, bytes) in
        [("a.tar.gz", gzip(&tarred)), ("a.tgz", gzip(&tarred)), ("a.tar", tarred.clone()), ("a.zip", zip(&entries))]
    {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        sources.push(path.to_str().unwrap().to_string());
    }
    sources.push(format!("file://{}", dir.path().join("a.tar.gz").display()));
    sources.push(folder.to_str().unwrap().to_string());

    let expected: BTreeMap<String, Vec<u8>> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::File(name, data) => Some((name.strip_prefix("MedNIST/").unwrap().to_string(), data.clone())),
            _ => None,
        })
        .collect();
    for source in sources {
        let ws = Workspace::at(dir.path().join("ws"));
        let info = run_fetch(&ws, &FetchRequest::new(Source::parse(&source).unwrap(), None)).unwrap();
        assert_eq!(tree(&ws.dataset_dir()), expected, "{source}");
        assert_eq!(info.files, 6, "{source}");
        assert_eq!(info.bytes, 6 * 40_000, "{source}");
    }
}

#[test]
fn junk_is_left_out() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mac.zip");
    let jpeg = || b"jpeg".to_vec();
    fs::write(
        &path,
        zip(&[
            Entry::File("MedNIST/Hand/000000.jpeg", jpeg()),
            Entry::File("MedNIST/Hand/.DS_Store", jpeg()),
            Entry::File("MedNIST/Hand/._000000.jpeg", jpeg()),
            Entry::File("MedNIST/.DS_Store", jpeg()),
            Entry::File("MedNIST/CXR/000000.jpeg", jpeg()),
            Entry::Dir("__MACOSX/"),
            Entry::File("__MACOSX/MedNIST/Hand/._000000.jpeg", jpeg()),
        ]),
    )
    .unwrap();
    let ws = Workspace::at(dir.path().join("ws"));
    let info = run_fetch(&ws, &local(&path)).unwrap();
    let files: Vec<String> = tree(&ws.dataset_dir()).into_keys().collect();
    assert_eq!(files, ["CXR/000000.jpeg", "Hand/000000.jpeg"]);
    assert_eq!(info.files, 2);
}

#[test]
fn a_refetch_replaces_the_old_data_completely() {
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let path = dir.path().join("other.zip");
    fs::write(
        &path,
        zip(&[Entry::File("Knee/000000.jpeg", b"knee".to_vec()), Entry::File("Hand/000009.jpeg", b"hand".to_vec())]),
    )
    .unwrap();
    let info = run_fetch(&seeded.ws, &local(&path)).unwrap();
    let files: Vec<String> = tree(&seeded.ws.dataset_dir()).into_keys().collect();
    assert_eq!(files, ["Hand/000009.jpeg", "Knee/000000.jpeg"]);
    let recorded: DatasetInfo = read_json(&seeded.ws.dataset_info_file()).unwrap();
    assert_eq!(recorded, info);
    assert!(recorded.source.ends_with("other.zip"));
    assert_eq!(fs::read_dir(seeded.ws.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn an_archive_without_class_folders_is_refused() {
    let dir = TempDir::new().unwrap();
    let seeded = seeded(dir.path());
    let path = dir.path().join("flat.tar.gz");
    fs::write(
        &path,
        gzip(&tar(&[Entry::File("000000.jpeg", b"jpeg".to_vec()), Entry::File("000001.jpeg", b"jpeg".to_vec())])),
    )
    .unwrap();
    let error = run_fetch(&seeded.ws, &local(&path)).unwrap_err();
    assert!(matches!(error, FetchError::NoClassFolders { .. }), "{error:?}");
    seeded.assert_intact();
}

#[test]
fn wrapping_folders_are_descended_but_a_lone_class_is_kept() {
    let dir = TempDir::new().unwrap();
    let ws = Workspace::at(dir.path().join("ws"));
    let jpeg = || b"jpeg".to_vec();
    for (name, entries) in [
        ("wrapped.tar", vec![Entry::File("data/MedNIST/Hand/000000.jpeg", jpeg())]),
        ("lone.tar", vec![Entry::File("Hand/000000.jpeg", jpeg())]),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, tar(&entries)).unwrap();
        let info = run_fetch(&ws, &local(&path)).unwrap();
        let classes: Vec<&str> = info.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(classes, ["Hand"], "{name}");
        assert!(ws.dataset_dir().join("Hand/000000.jpeg").is_file(), "{name}");
    }
}
