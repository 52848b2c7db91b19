//! `mednist split` and the split behind it: reproducible, complete, recorded, and checked
//! against the dataset it was made from.

use std::collections::HashSet;
use std::fs;
use std::io::Cursor;
use std::path::Path;

use assert_cmd::cargo::cargo_bin_cmd;
use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use mednist::data::scan::{self, ClassSummary, DatasetScan, Item};
use mednist::data::settings::DatasetSettings;
use mednist::data::split::{self, ClassCounts, GroupBy, Split, SplitOptions};
use mednist::job::CancelToken;
use mednist::remedy::{self, Remedy};
use mednist::workspace::Workspace;

/// `count` tiny PNGs per class, named `<class>/<i>.png`.
fn make_dataset(root: &Path, classes: &[(&str, usize)]) {
    let mut png = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(GrayImage::from_pixel(2, 2, Luma([90]))).write_to(&mut png, ImageFormat::Png).unwrap();
    for (class, count) in classes {
        fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..*count {
            fs::write(root.join(class).join(format!("{i:03}.png")), png.get_ref()).unwrap();
        }
    }
}

fn scan(root: &Path) -> DatasetScan {
    scan::scan(root, &DatasetSettings::default(), &|_| {}, &CancelToken::new()).unwrap()
}

fn options(valid_pct: f64, seed: u64, stratify: bool) -> SplitOptions {
    SplitOptions { valid_pct, seed, stratify, group: None }
}

const CLASSES: [(&str, usize); 3] = [("A", 10), ("B", 7), ("C", 23)];

fn assert_partition(scan: &DatasetScan, split: &Split) {
    let train: HashSet<&Item> = split.train.iter().collect();
    let valid: HashSet<&Item> = split.valid.iter().collect();
    assert_eq!(train.len(), split.train.len(), "no item twice in train");
    assert_eq!(valid.len(), split.valid.len(), "no item twice in valid");
    assert!(train.is_disjoint(&valid));
    assert_eq!(train.union(&valid).copied().collect::<HashSet<_>>(), scan.items.iter().collect());
    // Both keep the dataset's order.
    let position = |item: &Item| scan.items.iter().position(|i| i == item).unwrap();
    assert!(split.train.windows(2).all(|w| position(&w[0]) < position(&w[1])));
    assert!(split.valid.windows(2).all(|w| position(&w[0]) < position(&w[1])));
}

#[test]
fn the_same_seed_gives_the_same_split_and_another_seed_another() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &CLASSES);
    let scan = scan(dir.path());
    for stratify in [false, true] {
        let first = split::split(&scan, &options(0.2, 42, stratify)).unwrap();
        assert_eq!(split::split(&scan, &options(0.2, 42, stratify)).unwrap(), first);
        let other = split::split(&scan, &options(0.2, 43, stratify)).unwrap();
        assert_ne!(other.valid, first.valid, "stratify {stratify}");
    }
}

#[test]
fn without_stratify_the_first_int_pct_n_of_the_permutation_are_held_out() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &CLASSES);
    let scan = scan(dir.path());
    for (valid_pct, valid) in [(0.2, 8), (0.25, 10), (0.33, 13)] {
        let split = split::split(&scan, &options(valid_pct, 1, false)).unwrap();
        assert_eq!(split.valid.len(), valid, "valid-pct {valid_pct}");
        assert_partition(&scan, &split);
    }
}

#[test]
fn stratify_holds_out_int_pct_n_of_every_class() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &CLASSES);
    let scan = scan(dir.path());
    let split = split::split(&scan, &options(0.2, 5, true)).unwrap();
    let counts = |train, valid| ClassCounts { train, valid };
    assert_eq!(split.class_counts(), [counts(8, 2), counts(6, 1), counts(19, 4)]);
    assert_partition(&scan, &split);
    assert!(split.valid.iter().all(|item| split.classes[item.class] == item.path[..1]));
}

#[test]
fn a_valid_pct_outside_zero_to_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &CLASSES);
    let scan = scan(dir.path());
    for valid_pct in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        let error = split::split(&scan, &options(valid_pct, 42, false)).unwrap_err().to_string();
        assert!(error.contains(&format!("valid-pct {valid_pct} is outside (0, 1)")), "{error}");
    }
    let error = split::split(&scan, &options(0.01, 42, false)).unwrap_err().to_string();
    assert!(error.contains("valid-pct 0.01 of 40 images leaves the validation set empty"), "{error}");
}

#[test]
fn a_class_too_small_to_split_is_named() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &[("Big", 10), ("Tiny", 2)]);
    let error = split::split(&scan(dir.path()), &options(0.2, 42, true)).unwrap_err().to_string();
    assert!(error.contains("class Tiny has 2 image(s), too few to hold out 0.2"), "{error}");
}

#[test]
fn without_stratify_a_class_left_with_no_training_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &[("Many", 9), ("Solo", 1)]);
    let scan = scan(dir.path());
    // Solo's one image lands in validation for about half the seeds.
    let (mut kept, mut refused) = (0, 0);
    for seed in 0..40 {
        match split::split(&scan, &options(0.5, seed, false)) {
            Ok(split) => {
                assert_eq!(split.class_counts()[1], ClassCounts { train: 1, valid: 0 });
                kept += 1;
            }
            Err(error) => {
                assert!(
                    error.to_string().contains(&format!(
                        "class Solo has 1 image(s) and would get none for training with valid-pct 0.5 and seed {seed}"
                    )),
                    "{error}"
                );
                refused += 1;
            }
        }
    }
    assert!(kept > 0 && refused > 0, "kept {kept}, refused {refused}");
}

fn mednist(workdir: &Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("mednist");
    command.env_remove("MEDNIST_HOME").arg("--workdir").arg(workdir);
    command
}

#[test]
fn split_records_the_split_and_reports_counts() {
    let workdir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    make_dataset(data.path(), &CLASSES);
    let run = || {
        let args = ["--json", "split", "--seed", "7", "--valid-pct", "0.3", "--stratify", "--data"];
        let output = mednist(workdir.path()).args(args).arg(data.path()).assert().success();
        serde_json::from_slice::<serde_json::Value>(&output.get_output().stdout).unwrap()
    };
    let report = run();
    let file = workdir.path().join("split.json");
    assert_eq!(report["file"], file.to_str().unwrap());
    assert_eq!(
        (report["seed"].clone(), report["valid_pct"].clone(), report["stratify"].clone()),
        (7.into(), 0.3.into(), true.into())
    );
    assert_eq!(report["classes"][0], serde_json::json!({"name": "A", "train": 7, "valid": 3}));
    assert_eq!(report["classes"][2], serde_json::json!({"name": "C", "train": 17, "valid": 6}));
    assert_eq!((report["train"].clone(), report["valid"].clone()), (29.into(), 11.into()));

    let recorded = fs::read(&file).unwrap();
    let split: Split = serde_json::from_slice(&recorded).unwrap();
    let scan = scan(data.path());
    assert_eq!(split, split::split(&scan, &options(0.3, 7, true)).unwrap());
    assert_eq!(split.classes, ["A", "B", "C"]);
    assert_eq!(split.dataset_fingerprint, scan.fingerprint());

    run();
    assert_eq!(fs::read(&file).unwrap(), recorded, "the same command records the same bytes");
}

#[test]
fn split_prints_a_table_of_the_workspace_dataset() {
    let workdir = tempfile::tempdir().unwrap();
    make_dataset(&workdir.path().join("dataset"), &CLASSES);
    let output = mednist(workdir.path()).arg("split").assert().success();
    let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("seed 42, valid-pct 0.2 over all images"), "{stdout}");
    assert!(stdout.lines().any(|l| l.split_whitespace().eq(["total", "32", "8", "20.0%"])), "{stdout}");
    assert!(stdout.contains(&format!("Recorded in {}", workdir.path().join("split.json").display())), "{stdout}");
}

#[test]
fn split_refuses_a_bad_valid_pct_and_records_nothing() {
    let workdir = tempfile::tempdir().unwrap();
    make_dataset(&workdir.path().join("dataset"), &CLASSES);
    mednist(workdir.path())
        .args(["split", "--valid-pct", "1.5"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("valid-pct 1.5 is outside (0, 1)"));
    assert!(!workdir.path().join("split.json").exists());
}

#[test]
fn load_for_detects_a_dataset_changed_since_the_split() {
    let workdir = tempfile::tempdir().unwrap();
    let workspace = Workspace::at(workdir.path());
    let data = workspace.dataset_dir();
    make_dataset(&data, &CLASSES);

    let error = split::load_for(&workspace, &scan(&data)).unwrap_err().to_string();
    assert!(error.contains("run `mednist split` first"), "{error}");

    let made = split::split(&scan(&data), &SplitOptions::default()).unwrap();
    made.save(&workspace).unwrap();
    assert_eq!(split::load_for(&workspace, &scan(&data)).unwrap(), made);

    let changed = "dataset changed since the split";
    fs::copy(data.join("A/000.png"), data.join("A/new.png")).unwrap();
    let error = split::load_for(&workspace, &scan(&data)).unwrap_err().to_string();
    assert!(error.contains(changed) && error.contains("run `mednist split` again"), "{error}");
    assert!(error.contains("40 images in 3 classes then, 41 in 3 now"), "{error}");

    fs::rename(data.join("A/new.png"), data.join("A/000.png")).unwrap();
    assert!(split::load_for(&workspace, &scan(&data)).is_ok(), "back as it was");
    fs::write(data.join("B/000.png"), b"no longer an image").unwrap();
    let error = split::load_for(&workspace, &scan(&data)).unwrap_err().to_string();
    assert!(error.contains(changed), "{error}");
}

/// A made-up scan: `patients` patients with the given images per class each (class 0, 1), and
/// `loose` images of class 0 whose files name no patient.
fn grouped_scan(patients: &[(usize, usize)], loose: usize) -> DatasetScan {
    let mut items = Vec::new();
    for (class, name) in ["A", "B"].iter().enumerate() {
        for (patient, counts) in patients.iter().enumerate() {
            let count = if class == 0 { counts.0 } else { counts.1 };
            for image in 0..count {
                items.push(Item {
                    patient_group: Some(patient as u32),
                    study_group: Some(patient as u32 * 2 + (image % 2) as u32),
                    ..Item::new(format!("{name}/p{patient:02}/{image:03}"), class)
                });
            }
        }
        if class == 0 {
            items.extend((0..loose).map(|image| Item::new(format!("{name}/loose{image:03}"), class)));
        }
    }
    let summary = |name: &str| ClassSummary {
        name: name.into(),
        images: items.iter().filter(|i| i.path.starts_with(name)).count(),
        ..ClassSummary::default()
    };
    DatasetScan {
        root: "/data".into(),
        settings: DatasetSettings::default(),
        classes: vec![summary("A"), summary("B")],
        items,
        unreadable: Vec::new(),
        empty_classes: Vec::new(),
        root_files: Vec::new(),
    }
}

/// Patients (or studies) on each side, checking that none is on both.
fn sides(split: &Split, group: impl Fn(&Item) -> Option<u32>) -> (HashSet<u32>, HashSet<u32>) {
    let train: HashSet<u32> = split.train.iter().filter_map(&group).collect();
    let valid: HashSet<u32> = split.valid.iter().filter_map(&group).collect();
    assert!(train.is_disjoint(&valid), "groups on both sides: {:?}", train.intersection(&valid).collect::<Vec<_>>());
    (train, valid)
}

#[test]
fn a_grouped_split_never_puts_a_patient_on_both_sides_and_comes_close_to_valid_pct() {
    // 20 patients with 1 to 12 images a class: 233 images, 47 to hold out.
    let patients: Vec<(usize, usize)> = (0..20).map(|p| (1 + p * 7 % 12, p * 5 % 9)).collect();
    let scan = grouped_scan(&patients, 0);
    let total = scan.items.len();
    for seed in 0..30 {
        for stratify in [false, true] {
            let options = SplitOptions { valid_pct: 0.2, seed, stratify, group: None };
            let split = split::split(&scan, &options).unwrap();
            assert_eq!(split.group, GroupBy::Patient, "patients by default when the files name them");
            assert_partition(&scan, &split);
            let (train, valid) = sides(&split, |item| item.patient_group);
            assert_eq!(train.len() + valid.len(), 20);
            assert_eq!(split.group_counts(), ClassCounts { train: train.len(), valid: valid.len() });
            let target = (0.2 * total as f64) as usize;
            assert!(split.valid.len().abs_diff(target) <= 1, "seed {seed}: {} of {total} held out", split.valid.len());
            if stratify {
                for (counts, class) in split.class_counts().iter().zip(&scan.classes) {
                    let target = (0.2 * class.images as f64) as usize;
                    assert!(counts.valid.abs_diff(target) <= 3, "seed {seed} {}: {counts:?}", class.name);
                }
            }
            assert_eq!(split::split(&scan, &options).unwrap(), split, "the same seed, the same split");
        }
    }
    let one = split::split(&scan, &SplitOptions { group: Some(GroupBy::Patient), ..SplitOptions::default() });
    let other =
        split::split(&scan, &SplitOptions { seed: 7, group: Some(GroupBy::Patient), ..SplitOptions::default() });
    assert_ne!(one.unwrap().valid, other.unwrap().valid);
}

#[test]
fn studies_group_finer_and_images_without_a_patient_stand_alone() {
    let scan = grouped_scan(&[(6, 6), (6, 6), (6, 6), (6, 6)], 5);
    let by_study = SplitOptions { valid_pct: 0.3, seed: 1, stratify: false, group: Some(GroupBy::Study) };
    let split = split::split(&scan, &by_study).unwrap();
    assert_eq!(split.group, GroupBy::Study);
    let (train, valid) = sides(&split, |item| item.study_group);
    assert_eq!(train.len() + valid.len(), 8);
    // 8 studies of 6 images and 5 loose ones: the loose are groups of one each.
    let counts = split.group_counts();
    assert_eq!(counts.train + counts.valid, 8 + 5);
    assert_eq!(split.valid.len(), (0.3 * 53.0) as usize, "loose images fill the gap exactly");

    let none = SplitOptions { group: Some(GroupBy::None), ..by_study.clone() };
    let split = split::split(&scan, &none).unwrap();
    assert_eq!((split.group, split.group_counts().valid), (GroupBy::None, split.valid.len()));
}

#[test]
fn ungrouped_datasets_default_to_no_grouping_and_one_patient_cannot_be_split() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &CLASSES);
    let split = split::split(&scan(dir.path()), &SplitOptions::default()).unwrap();
    assert_eq!(split.group, GroupBy::None);
    let text = serde_json::to_string(&split).unwrap();
    assert!(!text.contains("group"), "no grouping fields in an ungrouped split.json: {text}");

    let scan = grouped_scan(&[(10, 10)], 0);
    let error = split::split(&scan, &SplitOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("20 images in 1 patients leaves the validation set empty"), "{text}");
    assert_eq!(remedy::remedies(&error), [Remedy::LargerValidPct, Remedy::NoGrouping]);
}
