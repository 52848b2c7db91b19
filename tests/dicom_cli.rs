//! The commands on DICOM data as a PACS exports it (Class/Patient/Study/Series/IMnnnn, no
//! extensions, a DICOMDIR and a report among the images): fetch, classes, split, train,
//! interpret, export and predict, and that no patient name or ID reaches any of their output
//! or the files they write.

#[path = "common/dicom_files.rs"]
mod dicom_files;

use std::fs;
use std::path::Path;

use assert_cmd::cargo::cargo_bin_cmd;
use dicom_files::files;
use serde_json::Value;

fn mednist(workdir: &Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("mednist");
    command.env_remove("MEDNIST_HOME").arg("--workdir").arg(workdir);
    command
}

/// Runs `args`, checks the exit status, and returns stdout and stderr together with stdout
/// parsed as JSON when it is JSON.
fn run(workdir: &Path, args: &[&str], success: bool, transcript: &mut String) -> Value {
    let output = mednist(workdir).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.success(), success, "mednist {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    transcript.push_str(&format!("$ mednist {args:?}\n{stdout}\n{stderr}\n"));
    serde_json::from_str(&stdout).unwrap_or(Value::Null)
}

/// The patient a path of the test tree belongs to: its `PATn` folder.
fn patient_of(path: &str) -> &str {
    path.split('/').find(|part| part.starts_with("PAT")).unwrap_or_else(|| panic!("{path} names no patient"))
}

#[test]
fn classes_reports_what_the_dicom_files_are_and_what_was_skipped() {
    let workdir = tempfile::tempdir().unwrap();
    let tree = files().tree();
    let mut transcript = String::new();
    let report = run(workdir.path(), &["--json", "classes", "--data", tree.to_str().unwrap()], true, &mut transcript);
    assert_eq!(report["images"], 54, "24 single-frame files and one of 3 frames per class");
    assert_eq!(report["settings"], serde_json::json!({"window": "file", "frames": "all"}));
    let horizontal = &report["classes"][0];
    assert_eq!(horizontal["name"], "Horizontal");
    assert_eq!(horizontal["formats"], serde_json::json!({"dicom": 27}));
    assert_eq!(horizontal["modes"], serde_json::json!({"gray16": 27}));
    assert_eq!(horizontal["windows"], serde_json::json!({"file": 27}));
    let dicom = &horizontal["dicom"];
    assert_eq!(dicom["modalities"], serde_json::json!({"CT": 27}));
    assert_eq!(dicom["transfer_syntaxes"], serde_json::json!({"Explicit VR Little Endian": 27}));
    assert_eq!(dicom["bits_stored"], serde_json::json!({"16": 27}));
    assert_eq!(dicom["photometric_interpretations"], serde_json::json!({"MONOCHROME2": 27}));
    assert_eq!(dicom["frames"], serde_json::json!({"1": 24, "3": 1}));
    assert_eq!(dicom["with_patient"], 27);
    let unreadable: Vec<(&str, &str)> = report["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["path"].as_str().unwrap(), u["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        unreadable,
        [
            ("Horizontal/DICOMDIR", "no pixel data: DICOMDIR (a directory of other files)"),
            ("Horizontal/report.dcm", "no pixel data: SR document (Basic Text SR Storage)"),
        ]
    );

    let table = mednist(workdir.path()).args(["classes", "--data"]).arg(&tree).assert().success();
    let stdout = String::from_utf8(table.get_output().stdout.clone()).unwrap();
    let row = stdout.lines().filter(|l| l.starts_with("Horizontal")).nth(1).unwrap_or_else(|| panic!("{stdout}"));
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["Horizontal", "file", "CT", "Explicit VR Little Endian", "16", "MONOCHROME2", "1 (24), 3 (1)"]);
    assert!(!workdir.path().join("dataset-settings.json").exists(), "nothing recorded without --window/--frames");
}

#[test]
fn classes_records_the_window_and_frames_and_refuses_unknown_windows() {
    let workdir = tempfile::tempdir().unwrap();
    let tree = files().tree();
    let mut transcript = String::new();
    let args = ["--json", "classes", "--window", "-600,1500", "--frames", "middle", "--data", tree.to_str().unwrap()];
    let report = run(workdir.path(), &args, true, &mut transcript);
    assert_eq!(report["images"], 50, "one frame of each multi-frame file");
    assert_eq!(report["classes"][0]["windows"], serde_json::json!({"custom": 25}));
    let settings: Value =
        serde_json::from_slice(&fs::read(workdir.path().join("dataset-settings.json")).unwrap()).unwrap();
    assert_eq!(settings, serde_json::json!({"window": "-600,1500", "frames": "middle"}));
    // The recorded setting holds for the next steps.
    let report = run(workdir.path(), &["--json", "classes", "--data", tree.to_str().unwrap()], true, &mut transcript);
    assert_eq!((report["images"].clone(), report["settings"]["window"].clone()), (50.into(), "-600,1500".into()));

    let refused = mednist(workdir.path()).args(["classes", "--window", "bone", "--data"]).arg(&tree).assert().failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("unknown window \"bone\""), "{stderr}");
    assert!(stderr.contains("brain (80/40)") && stderr.contains("lungs (1500/-600)"), "{stderr}");
    let refused = mednist(workdir.path()).args(["train", "--window", "40,wide"]).assert().failure();
    assert!(String::from_utf8_lossy(&refused.get_output().stderr).contains("is not LEVEL,WIDTH"));
}

#[test]
fn a_dataset_of_only_non_image_dicom_says_what_it_found() {
    let workdir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for (class, name) in [("Reports", "report.dcm"), ("Reports", "letter.dcm"), ("Index", "DICOMDIR")] {
        fs::create_dir_all(data.path().join(class)).unwrap();
        fs::copy(files().case(name), data.path().join(class).join(name)).unwrap();
    }
    let failed = mednist(workdir.path()).args(["classes", "--data"]).arg(data.path()).assert().failure();
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(stderr.contains("has no class folder with readable images; at least two are needed"), "{stderr}");
    assert!(stderr.contains("Left out: Index (1 unreadable files), Reports (2 unreadable files)"), "{stderr}");
    for found in [
        "no pixel data: DICOMDIR (a directory of other files) (1)",
        "no pixel data: SR document (Basic Text SR Storage) (1)",
        "no pixel data: encapsulated document (Encapsulated PDF Storage) (1)",
    ] {
        assert!(stderr.contains(found), "{found} in {stderr}");
    }
}

/// The tree as a .tar.gz, as a PACS export would be shipped.
fn tree_archive(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("export.tar.gz");
    let gzip = flate2::write::GzEncoder::new(fs::File::create(&path).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gzip);
    tar.append_dir_all("PACS-export", files().tree()).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    path
}

#[test]
fn fetch_keeps_files_without_an_extension_from_a_folder_and_an_archive() {
    let scratch = tempfile::tempdir().unwrap();
    let archive = tree_archive(scratch.path());
    for source in [files().tree(), archive] {
        let workdir = tempfile::tempdir().unwrap();
        let mut transcript = String::new();
        let info =
            run(workdir.path(), &["--json", "fetch", "--source", source.to_str().unwrap()], true, &mut transcript);
        assert_eq!(info["files"], 52, "50 images, a report and a DICOMDIR: {info}");
        assert!(workdir.path().join("dataset/Vertical/PAT3/ST3/SE1/IM0005").is_file());
        let report = run(workdir.path(), &["--json", "classes"], true, &mut transcript);
        assert_eq!(report["images"], 54, "{}", source.display());
    }
}

#[test]
fn a_dicom_tree_trains_and_predicts_and_no_patient_data_reaches_any_output() {
    let scratch = tempfile::tempdir().unwrap();
    let workdir = scratch.path().join("workspace");
    let w = workdir.as_path();
    let tree = files().tree();
    let mut transcript = String::new();
    let archive = tree_archive(scratch.path());
    run(w, &["fetch", "--source", archive.to_str().unwrap()], true, &mut transcript);
    run(w, &["classes", "--window", "400,1200"], true, &mut transcript);
    run(w, &["classes"], true, &mut transcript);

    let split = run(w, &["--json", "split", "--stratify"], true, &mut transcript);
    assert_eq!(split["group"], "patient", "patients by default: the files name them");
    let recorded: Value = serde_json::from_slice(&fs::read(w.join("split.json")).unwrap()).unwrap();
    let patients = |side: &str| -> std::collections::HashSet<String> {
        recorded[side].as_array().unwrap().iter().map(|i| patient_of(i["path"].as_str().unwrap()).to_string()).collect()
    };
    let (train, valid) = (patients("train"), patients("valid"));
    assert!(train.is_disjoint(&valid), "{train:?} / {valid:?}");
    assert_eq!(train.len() + valid.len(), 5);
    assert_eq!(split["groups"], serde_json::json!({"train": train.len(), "valid": valid.len()}));
    run(w, &["split", "--group", "study"], true, &mut transcript);
    run(w, &["split"], true, &mut transcript);

    let args =
        ["--json", "train", "--arch", "resnet18", "--size", "16", "--bs", "8", "--epochs", "1", "--device", "cpu"];
    run(w, &args, true, &mut transcript);
    let checkpoint: Value = serde_json::from_slice(&fs::read(w.join("runs/current/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(checkpoint["window"], "400,1200", "the dataset's window, recorded with the learner");
    run(w, &["train", "--window", "brain", "--device", "cpu"], false, &mut transcript);
    let sweep =
        run(w, &["--json", "lr-find", "--iterations", "3", "--bs", "8", "--device", "cpu"], true, &mut transcript);
    assert!(!sweep.is_null(), "lr-find reads the DICOM images in the learner's window");
    assert!(transcript.contains("was trained on images in window 400,1200, not brain"), "{transcript}");

    let interpretation =
        run(w, &["--json", "interpret", "--no-images", "--device", "cpu", "--top", "60"], true, &mut transcript);
    let frames: Vec<&Value> =
        interpretation["top_losses"].as_array().unwrap().iter().filter(|t| !t["frame"].is_null()).collect();
    assert!(frames.iter().all(|t| t["frame"]["count"] == 3), "{frames:?}");

    run(w, &["export"], true, &mut transcript);
    let export = fs::read(w.join("export.mednist")).unwrap();
    assert!(String::from_utf8_lossy(&export).contains(r#""window":"400,1200""#), "the export carries the window");

    let predictions = run(w, &["--json", "predict", "--device", "cpu", tree.to_str().unwrap()], true, &mut transcript);
    let predictions = predictions.as_array().unwrap();
    assert_eq!(predictions.iter().filter(|p| p["classes"].is_array()).count(), 54, "every frame of every image");
    let multi_frame: Vec<&Value> =
        predictions.iter().filter(|p| p["file"].as_str().unwrap().ends_with("/MF0")).collect();
    let indices: Vec<&Value> = multi_frame.iter().map(|p| &p["frame"]["index"]).collect();
    assert_eq!(indices, [0, 1, 2]);
    let skipped: Vec<&str> = predictions.iter().filter_map(|p| p["skipped"].as_str()).collect();
    assert_eq!(skipped.len(), 2, "the DICOMDIR and the report: {skipped:?}");
    assert!(predictions.iter().all(|p| p["error"].is_null()));
    let middle = run(
        w,
        &["--json", "predict", "--device", "cpu", "--frames", "middle", tree.to_str().unwrap()],
        true,
        &mut transcript,
    );
    assert_eq!(middle.as_array().unwrap().iter().filter(|p| p["classes"].is_array()).count(), 50);
    run(w, &["predict", "--device", "cpu", tree.to_str().unwrap()], true, &mut transcript);
    assert!(transcript.contains("MF0 (frame 3 of 3)"), "{transcript}");

    // Nothing the commands printed or wrote holds a patient's name or ID. The dataset folder
    // is the input itself, copied.
    let mut written = vec![("transcript".to_string(), transcript.into_bytes())];
    for entry in walkdir::WalkDir::new(w).into_iter().map(Result::unwrap) {
        let inside_dataset = entry.path().starts_with(w.join("dataset"));
        if entry.file_type().is_file() && !inside_dataset {
            written.push((entry.path().display().to_string(), fs::read(entry.path()).unwrap()));
        }
    }
    assert!(written.len() > 6, "{:?}", written.iter().map(|(name, _)| name).collect::<Vec<_>>());
    for (name, bytes) in &written {
        let text = String::from_utf8_lossy(bytes).to_lowercase();
        for secret in files().expected.patients.all() {
            assert!(!text.contains(&secret.to_lowercase()), "{name} holds {secret:?}");
        }
    }
}

/// Copies `from` into `to`, folders and files.
fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).into_iter().map(Result::unwrap) {
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn folders_named_after_the_patient_are_shown_masked_in_skipped_files_and_top_losses() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("export");
    copy_tree(&files().tree(), &data);
    // Patient 1's folders as some PACS name them: after the patient's name and ID.
    let named = "Quixotic_Zelda_ZQX-4417-B";
    for class in ["Horizontal", "Vertical"] {
        fs::rename(data.join(class).join("PAT1"), data.join(class).join(named)).unwrap();
    }
    let series = data.join("Horizontal").join(named).join("ST1/SE1");
    // A file with no readable header beside the readable ones, and a DICOM file cut short
    // (its header still names the patient).
    fs::write(series.join("notes.txt"), "not an image").unwrap();
    let first = fs::read_dir(&series).unwrap().map(|e| e.unwrap().path()).find(|p| p.ends_with("IM0000")).unwrap();
    let whole = fs::read(&first).unwrap();
    fs::write(series.join("ZQX-4417-B_cut.dcm"), &whole[..whole.len() - 100]).unwrap();

    let w = scratch.path().join("workspace");
    let mut transcript = String::new();
    run(&w, &["fetch", "--source", data.to_str().unwrap()], true, &mut transcript);
    let report = run(&w, &["--json", "classes"], true, &mut transcript);
    let skipped: Vec<&str> =
        report["unreadable"].as_array().unwrap().iter().map(|u| u["path"].as_str().unwrap()).collect();
    let masked = "Horizontal/[patient]_[patient]_[patient]/ST1/SE1";
    assert!(skipped.contains(&format!("{masked}/notes.txt").as_str()), "{skipped:?}");
    assert!(skipped.contains(&format!("{masked}/[patient]_cut.dcm").as_str()), "{skipped:?}");
    run(&w, &["classes"], true, &mut transcript);

    run(&w, &["split", "--group", "none"], true, &mut transcript);
    let args = ["train", "--arch", "resnet18", "--size", "16", "--bs", "8", "--epochs", "1", "--device", "cpu"];
    run(&w, &args, true, &mut transcript);
    let interpretation =
        run(&w, &["--json", "interpret", "--no-images", "--device", "cpu", "--top", "60"], true, &mut transcript);
    let tops: Vec<&str> =
        interpretation["top_losses"].as_array().unwrap().iter().map(|t| t["path"].as_str().unwrap()).collect();
    assert!(tops.iter().any(|path| path.contains("/[patient]_[patient]_[patient]/")), "{tops:?}");
    run(&w, &["interpret", "--no-images", "--device", "cpu", "--top", "60"], true, &mut transcript);

    // What was printed, logged and recorded of the runs names no patient (the dataset and the
    // split's index of it hold the file names as they are).
    let mut written = vec![("transcript".to_string(), transcript.into_bytes())];
    for entry in walkdir::WalkDir::new(&w).into_iter().map(Result::unwrap) {
        let index = entry.path().starts_with(w.join("dataset")) || entry.path() == w.join("split.json");
        let text = entry.path().extension().is_some_and(|e| e == "json" || e == "jsonl" || e == "log");
        if entry.file_type().is_file() && text && !index {
            written.push((entry.path().display().to_string(), fs::read(entry.path()).unwrap()));
        }
    }
    assert!(written.iter().any(|(name, _)| name.ends_with("events.jsonl")), "{:?}", written.len());
    for (name, bytes) in &written {
        let text = String::from_utf8_lossy(bytes).to_lowercase();
        for secret in files().expected.patients.all() {
            assert!(!text.contains(&secret.to_lowercase()), "{name} holds {secret:?}");
        }
    }
}
