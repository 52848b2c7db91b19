//! Decodes the full MedNIST (58,954 JPEGs) with `mednist::data::scan` and prints images/second,
//! beside Pillow's speed when python3 has PIL. `cargo bench --bench decode`.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use flate2::read::GzDecoder;
use mednist::data::scan;
use mednist::data::settings::DatasetSettings;
use mednist::job::CancelToken;

/// Decodes every `*/*.jpeg` under argv[1] with Pillow, in one process per core as a
/// DataLoader would, and prints the number of images.
const PILLOW_SCRIPT: &str = r#"
import glob, os, sys
from multiprocessing import Pool
from PIL import Image

def load(path):
    with Image.open(path) as image:
        image.load()

paths = sorted(glob.glob(os.path.join(sys.argv[1], "*", "*.jpeg")))
with Pool(os.cpu_count()) as pool:
    pool.map(load, paths, chunksize=256)
print(len(paths))
"#;

fn main() -> anyhow::Result<()> {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/MedNIST.tar.gz");
    if !archive.exists() {
        println!("skipped: {} not found", archive.display());
        return Ok(());
    }
    let scratch = tempfile::tempdir()?;
    let started = Instant::now();
    tar::Archive::new(GzDecoder::new(File::open(&archive)?)).unpack(scratch.path())?;
    println!("extracted {} in {:.1} s", archive.display(), started.elapsed().as_secs_f64());
    let root = scratch.path().join("MedNIST");

    let started = Instant::now();
    let scan = scan::scan(&root, &DatasetSettings::default(), &|_| {}, &CancelToken::new())?;
    let seconds = started.elapsed().as_secs_f64();
    let images = scan.items.len();
    println!(
        "mednist scan: {images} images ({} unreadable) in {seconds:.2} s = {:.0} images/s on {} threads",
        scan.unreadable.len(),
        images as f64 / seconds,
        rayon::current_num_threads()
    );

    match pillow_seconds(&root) {
        Some((pillow_images, seconds)) => println!(
            "Pillow:       {pillow_images} images in {seconds:.2} s = {:.0} images/s on {} processes",
            pillow_images as f64 / seconds,
            std::thread::available_parallelism().map_or(1, usize::from)
        ),
        None => println!("Pillow:       skipped (python3 without PIL)"),
    }
    Ok(())
}

/// Images decoded and seconds taken by [`PILLOW_SCRIPT`], or `None` without python3 + PIL.
fn pillow_seconds(root: &Path) -> Option<(usize, f64)> {
    let has_pil = Command::new("python3").args(["-c", "import PIL"]).output().ok()?.status.success();
    if !has_pil {
        return None;
    }
    let started = Instant::now();
    let output = Command::new("python3").args(["-c", PILLOW_SCRIPT]).arg(root).output().ok()?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        eprintln!("Pillow run failed: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    Some((String::from_utf8_lossy(&output.stdout).trim().parse().ok()?, seconds))
}
