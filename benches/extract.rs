//! Extraction speed on the full MedNIST (58,954 files): our extractor against GNU
//! `tar xzf` on the same archive, each into a fresh folder on the same filesystem.
//!
//! `cargo bench --bench extract [-- ARCHIVE]` prints each run, the medians of 3 and
//! their ratio. Runs alternate so that load from other processes hits both alike. Both
//! extract into $TMPDIR.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mednist::data::archive::{Archive, Limits, extract};
use mednist::event::Event;
use mednist::job::CancelToken;

const RUNS: usize = 3;

fn main() {
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/MedNIST.tar.gz");
    // `cargo bench` passes `--bench`; the first other argument, if any, is the archive.
    let archive = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_else(|| default.to_string());
    let archive = Path::new(&archive);
    if !archive.is_file() {
        eprintln!("no archive at {}: pass one as `cargo bench --bench extract -- ARCHIVE`", archive.display());
        std::process::exit(1);
    }
    // In $TMPDIR: `TMPDIR=/dev/shm` takes the disk out of the comparison.
    let scratch = tempfile::tempdir().expect("scratch folder");
    let mut ours = Vec::new();
    let mut tar = Vec::new();
    for run in 1..=RUNS {
        let dest = scratch.path().join(format!("ours-{run}"));
        let start = Instant::now();
        let extracted =
            extract(&Archive::file(archive), &dest, &Limits::default(), &|_: Event| {}, &CancelToken::new())
                .expect("extraction");
        ours.push(start.elapsed());
        println!("run {run}: mednist {:>6.2} s ({} files)", secs(ours[run - 1]), extracted.files);
        settle(&dest);

        let dest = scratch.path().join(format!("tar-{run}"));
        std::fs::create_dir(&dest).expect("tar folder");
        let start = Instant::now();
        let status = Command::new("tar").arg("xzf").arg(archive).arg("-C").arg(&dest).status().expect("run tar");
        assert!(status.success(), "tar failed: {status}");
        tar.push(start.elapsed());
        println!("run {run}: tar xzf {:>6.2} s", secs(tar[run - 1]));
        settle(&dest);
    }
    let (ours, tar) = (median(&mut ours), median(&mut tar));
    println!(
        "median of {RUNS}: mednist {:.2} s, tar xzf {:.2} s, ratio mednist/tar {:.2}",
        secs(ours),
        secs(tar),
        secs(ours) / secs(tar)
    );
}

/// Deletes a run's files and flushes the filesystem, so no run pays for the one before.
fn settle(dest: &Path) {
    std::fs::remove_dir_all(dest).expect("remove extracted files");
    let status = Command::new("sync").status().expect("run sync");
    assert!(status.success(), "sync failed: {status}");
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
