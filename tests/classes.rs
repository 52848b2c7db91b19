//! `mednist classes` and the scan behind it, on a small made-up dataset with every kind of file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Cursor;
use std::path::Path;
use std::sync::Mutex;

use assert_cmd::cargo::cargo_bin_cmd;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb};
use mednist::data::scan::{self, EmptyClass, Item};
use mednist::data::settings::DatasetSettings;
use mednist::event::{Event, Stage};
use mednist::job::{CancelToken, Cancelled};

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn gray(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageLuma8(ImageBuffer::from_fn(width, height, |x, y| Luma([(x * 7 + y * 3) as u8])))
}

fn rgb(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| Rgb([(x * 9) as u8, (y * 5) as u8, 200])))
}

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Two usable classes (Alpha, Beta), an empty one, one with only broken files, and junk.
fn make_dataset(root: &Path) {
    let jpeg = encode(rgb(20, 10), ImageFormat::Jpeg);
    write(root, "Alpha/rgb.jpg", &jpeg);
    write(root, "Alpha/gray.JPEG", &encode(gray(20, 10), ImageFormat::Jpeg));
    write(root, "Alpha/gray.PNG", &encode(gray(7, 5), ImageFormat::Png));
    let deep = ImageBuffer::from_fn(3, 4, |x, y| Luma([(x * 20_000 + y * 1000) as u16]));
    write(root, "Alpha/deep16.png", &encode(DynamicImage::ImageLuma16(deep), ImageFormat::Png));
    write(root, "Alpha/sub/rgb16.Png", &encode(DynamicImage::ImageRgb16(rgb(9, 9).into_rgb16()), ImageFormat::Png));
    write(root, "Alpha/garbage.jpg", b"these bytes are no image at all");
    write(root, "Alpha/cut.jpg", &jpeg[..jpeg.len() - 40]);
    write(root, "Alpha/notes.txt", b"scanned on Tuesday");
    write(root, "Alpha/.DS_Store", b"\0\0\0\x01Bud1");
    write(root, "Alpha/._rgb.jpg", b"\0\x05\x16\x07AppleDouble");
    write(root, "Beta/one.png", &encode(DynamicImage::ImageRgba8(rgb(64, 64).into_rgba8()), ImageFormat::Png));
    write(root, "Beta/two.jpeg", &encode(gray(64, 64), ImageFormat::Jpeg));
    fs::create_dir_all(root.join("Empty")).unwrap();
    let mut bad_png = encode(gray(8, 8), ImageFormat::Png);
    bad_png.truncate(40);
    write(root, "Broken/bad.png", &bad_png);
    write(root, "Broken/cut.jpeg", &jpeg[..jpeg.len() / 2]);
    write(root, "README.txt", b"about this dataset");
    write(root, ".DS_Store", b"\0\0\0\x01Bud1");
    write(root, "__MACOSX/Alpha/._rgb.jpg", b"\0\x05\x16\x07AppleDouble");
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(key, n)| (key.to_string(), *n)).collect()
}

#[test]
fn scan_reports_classes_formats_sizes_modes_and_skipped_files() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path());
    let scan = scan::scan(dir.path(), &DatasetSettings::default(), &|_| {}, &CancelToken::new()).unwrap();

    assert_eq!(scan.class_names(), ["Alpha", "Beta"]);
    let [alpha, beta] = &scan.classes[..] else { panic!("two classes") };
    assert_eq!(alpha.images, 5);
    assert_eq!(alpha.formats, counts(&[("jpeg", 2), ("png", 3)]));
    assert_eq!(alpha.sizes, counts(&[("20x10", 2), ("7x5", 1), ("3x4", 1), ("9x9", 1)]));
    assert_eq!(alpha.modes, counts(&[("rgb8", 1), ("gray8", 2), ("gray16", 1), ("rgb16", 1)]));
    assert_eq!(beta.images, 2);
    assert_eq!(beta.formats, counts(&[("jpeg", 1), ("png", 1)]));
    assert_eq!(beta.sizes, counts(&[("64x64", 2)]));
    assert_eq!(beta.modes, counts(&[("gray8", 1), ("rgba8", 1)]));

    let item = |path: &str, class| Item::new(path, class);
    assert_eq!(
        scan.items,
        [
            item("Alpha/deep16.png", 0),
            item("Alpha/gray.JPEG", 0),
            item("Alpha/gray.PNG", 0),
            item("Alpha/rgb.jpg", 0),
            item("Alpha/sub/rgb16.Png", 0),
            item("Beta/one.png", 1),
            item("Beta/two.jpeg", 1),
        ]
    );
    let unreadable: Vec<(&str, &str)> = scan.unreadable.iter().map(|f| (f.path.as_str(), f.reason.as_str())).collect();
    let paths: Vec<&str> = unreadable.iter().map(|(path, _)| *path).collect();
    assert_eq!(paths, ["Alpha/cut.jpg", "Alpha/garbage.jpg", "Alpha/notes.txt", "Broken/bad.png", "Broken/cut.jpeg"]);
    let reason = |path: &str| unreadable.iter().find(|(p, _)| *p == path).unwrap().1;
    assert!(reason("Alpha/cut.jpg").contains("truncated JPEG"), "{}", reason("Alpha/cut.jpg"));
    assert!(reason("Broken/cut.jpeg").contains("truncated JPEG"));
    assert_eq!(reason("Alpha/garbage.jpg"), "not an image");
    assert_eq!(reason("Alpha/notes.txt"), "not an image");
    assert!(reason("Broken/bad.png").starts_with("corrupt png"), "{}", reason("Broken/bad.png"));

    assert_eq!(
        scan.empty_classes,
        [EmptyClass { name: "Broken".into(), files: 2 }, EmptyClass { name: "Empty".into(), files: 0 }]
    );
    assert_eq!(scan.root_files, ["README.txt"]);
    assert_eq!(scan.path_of(&scan.items[0]), dir.path().join("Alpha/deep16.png"));
}

#[test]
fn scan_reports_progress_over_every_file_it_decodes() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path());
    let events = Mutex::new(Vec::new());
    let scan = scan::scan(
        dir.path(),
        &DatasetSettings::default(),
        &|event| events.lock().unwrap().push(event),
        &CancelToken::new(),
    )
    .unwrap();
    let events = events.into_inner().unwrap();
    let decoded = (scan.items.len() + scan.unreadable.len()) as u64;
    assert_eq!(events.first(), Some(&Event::StageStarted { stage: Stage::Scan, total: Some(decoded) }));
    assert_eq!(events.last(), Some(&Event::StageFinished { stage: Stage::Scan }));
    let last_progress = events.iter().rev().find_map(|e| match e {
        Event::Progress { done, total, .. } => Some((*done, *total)),
        _ => None,
    });
    assert_eq!(last_progress, Some((decoded, Some(decoded))));
}

#[test]
fn a_cancelled_scan_stops_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path());
    let cancel = CancelToken::new();
    cancel.cancel();
    let error = scan::scan(dir.path(), &DatasetSettings::default(), &|_| {}, &cancel).unwrap_err();
    assert!(error.downcast_ref::<Cancelled>().is_some(), "{error:#}");
}

#[test]
fn fewer_than_two_classes_with_readable_images_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Good/a.png", &encode(gray(4, 4), ImageFormat::Png));
    let error =
        scan::scan(dir.path(), &DatasetSettings::default(), &|_| {}, &CancelToken::new()).unwrap_err().to_string();
    assert!(error.contains("one class folder (Good)") && error.contains("at least two"), "{error}");

    write(dir.path(), "Bad/a.png", b"not a png");
    let error =
        scan::scan(dir.path(), &DatasetSettings::default(), &|_| {}, &CancelToken::new()).unwrap_err().to_string();
    assert!(error.contains("1 class folder(s) with readable images (Good)"), "{error}");
    assert!(error.contains("Bad (1 unreadable files)"), "{error}");

    let empty = tempfile::tempdir().unwrap();
    let error =
        scan::scan(empty.path(), &DatasetSettings::default(), &|_| {}, &CancelToken::new()).unwrap_err().to_string();
    assert!(error.contains("no class folder"), "{error}");
}

fn mednist(workdir: &Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("mednist");
    command.env_remove("MEDNIST_HOME").arg("--workdir").arg(workdir);
    command
}

#[test]
fn classes_json_lists_what_the_dataset_holds() {
    let workdir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    make_dataset(data.path());
    let output = mednist(workdir.path()).args(["--json", "classes", "--data"]).arg(data.path()).assert().success();
    let report: serde_json::Value = serde_json::from_slice(&output.get_output().stdout).unwrap();

    assert_eq!(report["data"], data.path().to_str().unwrap());
    assert_eq!(report["images"], 7);
    let names: Vec<&str> = report["classes"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alpha", "Beta"]);
    assert_eq!(report["classes"][0]["images"], 5);
    assert_eq!(report["classes"][0]["formats"], serde_json::json!({"jpeg": 2, "png": 3}));
    assert_eq!(report["classes"][1]["sizes"], serde_json::json!({"64x64": 2}));
    assert_eq!(report["classes"][1]["modes"], serde_json::json!({"gray8": 1, "rgba8": 1}));
    assert_eq!(report["unreadable"].as_array().unwrap().len(), 5);
    assert_eq!(report["unreadable"][0]["path"], "Alpha/cut.jpg");
    assert_eq!(report["empty_classes"][0], serde_json::json!({"name": "Broken", "files": 2}));
    assert_eq!(report["root_files"], serde_json::json!(["README.txt"]));
}

#[test]
fn classes_reads_the_workspace_dataset_and_prints_tables() {
    let workdir = tempfile::tempdir().unwrap();
    make_dataset(&workdir.path().join("dataset"));
    let output = mednist(workdir.path()).arg("classes").assert().success();
    let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();

    let alpha = stdout.lines().find(|l| l.starts_with("Alpha")).unwrap();
    let cells: Vec<&str> = alpha.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(
        cells,
        [
            "Alpha",
            "5",
            "png (3), jpeg (2)",
            "20x10 (2), 3x4 (1), 7x5 (1), +1 more",
            "gray8 (2), gray16 (1), rgb16 (1), rgb8 (1)"
        ]
    );
    assert!(stdout.lines().any(|l| l.split_whitespace().eq(["total", "7"])), "{stdout}");
    assert!(stdout.contains("5 unreadable files (skipped)"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("Alpha/garbage.jpg") && l.ends_with("not an image")), "{stdout}");
    assert!(stdout.contains("Left out, no readable image: Broken (2 unreadable files), Empty (empty)"), "{stdout}");
    assert!(stdout.contains("Ignored, not in a class folder: README.txt"), "{stdout}");
    assert!(!stdout.contains("DS_Store") && !stdout.contains("MACOSX"), "{stdout}");
}

#[test]
fn classes_without_a_dataset_says_how_to_get_one() {
    let workdir = tempfile::tempdir().unwrap();
    mednist(workdir.path()).arg("classes").assert().failure().stderr(predicates::str::contains("mednist fetch"));
}

#[test]
fn classes_fails_clearly_with_a_single_class() {
    let workdir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write(data.path(), "Only/a.png", &encode(gray(4, 4), ImageFormat::Png));
    mednist(workdir.path())
        .args(["classes", "--data"])
        .arg(data.path())
        .assert()
        .failure()
        .stderr(predicates::str::contains("one class folder (Only); at least two are needed"));
}
