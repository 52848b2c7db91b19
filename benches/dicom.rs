//! Scans and decodes 10,000 CT-like 16-bit DICOM files made from MedNIST (as `train` does:
//! the scan, then the cache in the file's window) and prints images/second, beside pydicom +
//! numpy doing the same windowing in one process (benches/dicom_reference.py).
//! `cargo bench --bench dicom`; needs ../shared/data/MedNIST.tar.gz and
//! scripts/setup-test-python.sh's pydicom and imagecodecs.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mednist::data::cache::ImageCache;
use mednist::data::scan;
use mednist::data::settings::DatasetSettings;
use mednist::job::CancelToken;

const FILES: usize = 10_000;

fn main() -> anyhow::Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let archive = manifest.join("../shared/data/MedNIST.tar.gz");
    if !archive.exists() {
        println!("skipped: {} not found", archive.display());
        return Ok(());
    }
    let setup = Command::new(manifest.join("scripts/setup-test-python.sh")).output()?;
    if !setup.status.success() {
        println!("skipped: scripts/setup-test-python.sh failed: {}", String::from_utf8_lossy(&setup.stderr));
        return Ok(());
    }
    let python = String::from_utf8(setup.stdout)?.trim().to_string();
    let reference = manifest.join("benches/dicom_reference.py");
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let root = scratch.path().join("dataset");

    let started = Instant::now();
    let made =
        Command::new(&python).arg(&reference).arg("make").arg(&archive).arg(&root).arg(FILES.to_string()).status()?;
    anyhow::ensure!(made.success(), "{} make failed", reference.display());
    println!("made {FILES} DICOM files from {} in {:.1} s", archive.display(), started.elapsed().as_secs_f64());

    let settings = DatasetSettings::default();
    let started = Instant::now();
    let scanned = scan::scan(&root, &settings, &|_| {}, &CancelToken::new())?;
    let scan_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(scanned.items.len() == FILES, "{} images of {FILES} read", scanned.items.len());
    let started = Instant::now();
    let cache = ImageCache::decode(&root, &scanned.items, 64, &settings.window, &|_| {}, &CancelToken::new())?;
    let decode_seconds = started.elapsed().as_secs_f64();
    let ours = scan_seconds + decode_seconds;
    let rate = |seconds: f64| FILES as f64 / seconds;
    println!(
        "mednist: scan {scan_seconds:.2} s ({:.0} images/s), decode {decode_seconds:.2} s ({:.0} images/s), \
         both {ours:.2} s = {:.0} images/s on {} threads ({} MB cached)",
        rate(scan_seconds),
        rate(decode_seconds),
        rate(ours),
        rayon::current_num_threads(),
        cache.bytes() >> 20
    );

    let output = Command::new(&python).arg(&reference).arg("decode").arg(&root).output()?;
    anyhow::ensure!(output.status.success(), "pydicom run failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout)?;
    let mut fields = text.split_whitespace();
    let (images, seconds): (usize, f64) =
        (fields.next().unwrap_or("0").parse()?, fields.next().unwrap_or("0").parse()?);
    println!("pydicom: {images} images in {seconds:.2} s = {:.0} images/s in one process", images as f64 / seconds);
    println!(
        "mednist scan + decode is {:.1}x pydicom's read + window (decode alone {:.1}x)",
        seconds / ours,
        seconds / decode_seconds
    );
    Ok(())
}
