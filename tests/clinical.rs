//! Issue 15 end to end: Grad-CAM finds the evidence a made-up dataset hides, and
//! `interpret` / `predict` report metrics with intervals, calibration, test-time augmentation
//! and heatmaps, with clear errors for what cannot be done.

#[path = "common/squares.rs"]
mod squares;
#[path = "common/stripes.rs"]
mod stripes;

use std::path::Path;
use std::sync::Arc;

use assert_cmd::cargo::cargo_bin_cmd;
use mednist::data::window::Window;
use mednist::job::CancelToken;
use mednist::learn::checkpoint;
use mednist::learn::data::TrainData;
use mednist::learn::device::DeviceChoice;
use mednist::learn::learner::{Learner, LearnerSettings};
use mednist::learn::open::OpenOptions;
use mednist::model::Arch;
use mednist::tui::jobs::{JobMessage, JobRequest, Jobs, Outcome, Output};
use mednist::tui::log::LogFile;
use mednist::tui::panes::PaneId;
use serde_json::Value;
use stripes::one_at_a_time;
use tokio::sync::mpsc::UnboundedReceiver;

fn mednist(workdir: &Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("mednist");
    command.env_remove("MEDNIST_HOME").arg("--workdir").arg(workdir);
    command
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", stderr_of(output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// How far apart (pixels) the mean horizontal centre of the heatmaps of images with the square
/// on the left and of those with it on the right must be.
const CENTRE_SHIFT_BOUND: f64 = 4.0;

/// A resnet18 trained from scratch on the squares, where only the bright square's corner tells
/// the classes apart: the Grad-CAM of each validation image for its class follows the square.
/// Measured (AVX2 EPYC): the maps of left squares sit left of those of right squares
/// (horizontal centres 7.4 px apart), and more of a map lies on the bright square than on the
/// dim decoy (0.29 against 0.18 of the mass, on average); on an AVX-512 EPYC 8.4 px apart, 0.41
/// against 0.19, with one of the 24 maps empty. The stronger claim, most of the mass
/// inside the square, does not hold for a from-scratch resnet18 on 2x2 maps (a quarter is
/// chance), so the test asserts the shift and the square over the decoy, and prints the shares.
#[test]
fn grad_cam_follows_the_square_that_decides_the_class() {
    let _turn = one_at_a_time();
    let (dir, workspace) = squares::make_workspace(48);
    let data = TrainData::load(&workspace, squares::SIDE, &Window::default(), &|_| {}, &CancelToken::new()).unwrap();
    let settings = LearnerSettings { batch_size: 16, ..stripes::settings() };
    let device = DeviceChoice::Cpu.resolve().unwrap();
    let mut learner = Learner::new(Arch::Resnet18, &data, device, workspace.current_run_dir(), settings);
    learner.fit_one_cycle(&data, 10, "3e-3".parse().unwrap(), &|_| {}, &CancelToken::new()).unwrap();
    let predictions = learner.predict(&data, &data.valid, &|_| {}, &CancelToken::new()).unwrap();
    assert!(predictions.tally().error_rate() < 0.1, "learned the corners: {}", predictions.tally().error_rate());

    let classes: Vec<usize> = data.valid.iter().map(|&item| data.cache.label(item) as usize).collect();
    let heatmaps = learner.grad_cam(&data, &data.valid, &classes).unwrap();
    assert_eq!(heatmaps.len(), data.valid.len());
    let (mut left, mut right, mut inside, mut decoys) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut empty = 0;
    for (heatmap, &item) in heatmaps.iter().zip(&data.valid) {
        assert_eq!((heatmap.grid, heatmap.side), (2, squares::SIDE));
        assert!(heatmap.values.iter().all(|v| (0.0..=1.0).contains(v)));
        let (columns, rows) = squares::square_of_file(Path::new(&data.items[item].path));
        inside.push(heatmap.mass_inside(columns, rows));
        let (decoy_columns, decoy_rows) = squares::decoy_of_file(Path::new(&data.items[item].path));
        decoys.push(heatmap.mass_inside(decoy_columns, decoy_rows));
        match horizontal_centre(heatmap) {
            Some(centre) if columns.0 == 0 => left.push(centre),
            Some(centre) => right.push(centre),
            None => empty += 1,
        }
    }
    // An empty map has no centre: the centres are those of the others.
    assert!(empty * 4 <= heatmaps.len(), "{empty} of {} maps are empty", heatmaps.len());
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let shift = mean(&right) - mean(&left);
    println!(
        "Grad-CAM: horizontal centre {:.1} px for left squares, {:.1} px for right ones (shift {shift:.1}, bound \
         {CENTRE_SHIFT_BOUND}); mass inside the square {:.3} on average",
        mean(&left),
        mean(&right),
        mean(&inside)
    );
    println!("Grad-CAM: mass on the dim decoy {:.3} on average; {empty} empty map(s)", mean(&decoys));
    assert!(!left.is_empty() && !right.is_empty());
    assert!(shift > CENTRE_SHIFT_BOUND, "the maps do not follow the square: shift {shift:.1} px");
    assert!(mean(&inside) > mean(&decoys), "more of the maps on the decoy than on the square");

    // The headless commands draw the same maps as PNGs.
    let cams = dir.path().join("cams");
    let output = mednist(dir.path())
        .args(["--json", "interpret", "--top", "3", "--resamples", "20", "--device", "cpu", "--cam-dir"])
        .arg(&cams)
        .output()
        .unwrap();
    let evaluation = json_of(&output);
    let top = evaluation["top_losses"].as_array().unwrap();
    let top_cams = evaluation["top_loss_cams"].as_array().unwrap();
    assert_eq!((top.len(), top_cams.len()), (3, 3));
    assert_eq!(top_cams[0]["values"].as_array().unwrap().len(), squares::SIDE * squares::SIDE);
    let mut written: Vec<String> =
        std::fs::read_dir(&cams).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    written.sort();
    assert_eq!(written.len(), 3);
    let first = top[0]["path"].as_str().unwrap();
    let stem = Path::new(first).file_stem().unwrap().to_str().unwrap();
    assert_eq!(written[0], format!("001-{stem}-{}.png", top[0]["predicted"].as_str().unwrap()));

    let output = mednist(dir.path()).arg("export").output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let (class, file) = (squares::CLASSES[1], format!("{:03}.png", 0));
    let image = workspace.dataset_dir().join(class).join(&file);
    let predict_cams = dir.path().join("predict-cams");
    let output = mednist(dir.path())
        .args(["--json", "predict", "--device", "cpu", "--cam-dir"])
        .arg(&predict_cams)
        .arg(&image)
        .output()
        .unwrap();
    let predictions = json_of(&output);
    let predicted = predictions[0]["classes"][0]["class"].as_str().unwrap();
    assert!(predictions[0]["cam"]["values"].is_array());
    assert!(predict_cams.join(format!("001-000-{predicted}.png")).is_file());
}

/// A resnet18 trained on the stripes (16px), saved in its workspace.
/// The column of a heatmap's centre of mass, in pixels.
/// The map's mass-weighted column, `None` for a map with no mass (Grad-CAM's ReLU left nothing:
/// the gradients spoke against the class everywhere on the last stage).
fn horizontal_centre(heatmap: &mednist::learn::cam::Heatmap) -> Option<f64> {
    let weighted: f64 =
        heatmap.values.iter().enumerate().map(|(at, &v)| (at % heatmap.side) as f64 * f64::from(v)).sum();
    let mass: f64 = heatmap.values.iter().map(|&v| f64::from(v)).sum();
    (mass > 0.0).then(|| weighted / mass)
}

fn trained_stripes() -> (tempfile::TempDir, mednist::workspace::Workspace) {
    let (dir, workspace) = stripes::make_workspace(12);
    let data = stripes::load(&workspace);
    let mut learner = stripes::new_learner(&workspace, &data);
    learner.fit_one_cycle(&data, 1, "1e-3".parse().unwrap(), &|_| {}, &CancelToken::new()).unwrap();
    (dir, workspace)
}

fn assert_estimate(estimate: &Value) {
    let value = estimate["value"].as_f64().expect("a value");
    let (lower, upper) = (estimate["ci"]["lower"].as_f64().unwrap(), estimate["ci"]["upper"].as_f64().unwrap());
    assert!((0.0..=1.0).contains(&value) && lower <= value && value <= upper && upper <= 1.0, "{estimate}");
}

#[test]
fn interpret_reports_intervals_calibrates_and_predict_uses_the_temperature() {
    let _turn = one_at_a_time();
    let (dir, workspace) = trained_stripes();
    let root = dir.path();
    let before = mednist(root).args(["--json", "interpret", "--resamples", "50", "--device", "cpu"]).output().unwrap();
    let before = json_of(&before);
    assert!(before["calibration"]["temperature"].is_null());
    assert!(before["calibration"]["uncalibrated"].is_null());
    assert!(before.get("tta").is_none() && before.get("top_loss_cams").is_none());

    let output = mednist(root)
        .args(["--json", "interpret", "--calibrate", "--tta", "2", "--resamples", "50", "--device", "cpu"])
        .output()
        .unwrap();
    let evaluation = json_of(&output);
    let metrics = &evaluation["metrics"];
    assert_eq!(metrics["bootstrap"]["resamples"], 50);
    assert_eq!(metrics["level"], 0.95);
    let per_class = metrics["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 2);
    for class in per_class {
        for name in ["sensitivity", "specificity", "ppv", "npv", "f1", "auc"] {
            assert_estimate(&class[name]);
        }
    }
    for average in ["macro", "weighted"] {
        assert_estimate(&metrics[average]["auc"]);
    }
    // One class against the other: the second's sensitivity is the first's specificity.
    assert_eq!(per_class[0]["specificity"]["value"], per_class[1]["sensitivity"]["value"]);
    assert_eq!(metrics["roc"][0]["points"][0], serde_json::json!([0.0, 0.0]));

    let calibration = &evaluation["calibration"];
    let temperature = calibration["temperature"].as_f64().expect("fitted");
    assert_eq!(calibration["fitted_now"], true);
    assert_eq!(calibration["bins"].as_array().unwrap().len(), 15);
    let uncalibrated = calibration["uncalibrated"]["ece"].as_f64().unwrap();
    assert_eq!(uncalibrated, before["calibration"]["ece"].as_f64().unwrap(), "the same predictions before");
    assert!(calibration["ece"].as_f64().unwrap().is_finite());
    assert_eq!(evaluation["tta"]["copies"], 2);
    assert_eq!(evaluation["tta"]["beta"], 0.25);
    assert_estimate(&evaluation["tta"]["metrics"]["macro"]["sensitivity"]);

    let saved = checkpoint::load(&workspace.current_run_dir()).unwrap().unwrap().state;
    assert_eq!(saved.temperature, Some(temperature as f32), "kept with the learner");

    // predict divides by the temperature too: the calibrated probability of the top class is
    // the softmax of the uncalibrated log-probabilities over T.
    let image = workspace.dataset_dir().join("horizontal/000.png");
    let export = mednist(root).arg("export").output().unwrap();
    assert!(export.status.success(), "{}", stderr_of(&export));
    let calibrated =
        json_of(&mednist(root).args(["--json", "predict", "--device", "cpu"]).arg(&image).output().unwrap());
    let probability = |json: &Value, class: &str| {
        let classes = json[0]["classes"].as_array().unwrap();
        classes.iter().find(|c| c["class"] == class).unwrap()["probability"].as_f64().unwrap()
    };
    let mut learner = stripes::resume(&workspace);
    learner.set_temperature(None);
    learner.save().unwrap();
    let export = mednist(root).arg("export").output().unwrap();
    assert!(export.status.success(), "{}", stderr_of(&export));
    let plain = json_of(&mednist(root).args(["--json", "predict", "--device", "cpu"]).arg(&image).output().unwrap());
    let (h, v) =
        (probability(&plain, "horizontal").ln() / temperature, probability(&plain, "vertical").ln() / temperature);
    let expected = h.exp() / (h.exp() + v.exp());
    assert!(
        (probability(&calibrated, "horizontal") - expected).abs() < 1e-5,
        "{calibrated} vs {plain}, T {temperature}"
    );

    let tta =
        json_of(&mednist(root).args(["--json", "predict", "--tta", "--device", "cpu"]).arg(&image).output().unwrap());
    let total: f64 = tta[0]["classes"].as_array().unwrap().iter().map(|c| c["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "TTA probabilities still sum to 1: {tta}");
}

#[test]
fn interpret_prints_the_charts_and_refuses_what_cannot_be_done() {
    let _turn = one_at_a_time();
    let (dir, _workspace) = trained_stripes();
    let root = dir.path();
    let output =
        mednist(root).args(["interpret", "--tta", "1", "--resamples", "30", "--device", "cpu"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "confusion matrix (counts)",
        "30 bootstrap resamples",
        "sensitivity",
        "macro average",
        "ROC curves",
        "horizontal  AUC",
        "calibration (15 bins): ECE",
        "reliability diagram",
        "1 augmented copies",
        "with tta",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }

    let output = mednist(root).args(["interpret", "--cam", "--device", "cpu"]).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr_of(&output).contains("Grad-CAM cannot locate anything at 16px"), "{}", stderr_of(&output));
    for command in [&["interpret", "--tta", "0"][..], &["predict", "--tta", "0", "x.png"]] {
        let output = mednist(root).args(command).output().unwrap();
        assert!(!output.status.success());
        assert!(stderr_of(&output).contains("at least 1 augmented copy"), "{}", stderr_of(&output));
    }
    let output = mednist(root).args(["interpret", "--resamples", "1"]).output().unwrap();
    assert!(stderr_of(&output).contains("at least 2 bootstrap resamples"), "{}", stderr_of(&output));
}

/// Runs `request` on the app's kernel and collects what it sends for the Interpret pane until
/// the step ends.
fn run_step(
    jobs: &mut Jobs,
    messages: &mut UnboundedReceiver<JobMessage>,
    request: JobRequest,
) -> (Vec<Output>, Outcome) {
    jobs.submit(request);
    let mut outputs = Vec::new();
    loop {
        match messages.blocking_recv().expect("the kernel runs") {
            JobMessage::Output { pane: PaneId::Interpret, output } => outputs.push(output),
            JobMessage::Finished { pane: PaneId::Interpret, outcome } => return (outputs, outcome),
            _ => {}
        }
    }
}

/// The app's Interpret and Predict steps on a new 64px learner: the evaluation `interpret`
/// prints with the top losses' heatmaps, one file's classes with its Grad-CAM, and a file that
/// is no image refused by name.
#[test]
fn the_app_s_kernel_interprets_and_predicts_an_image_file() {
    let _turn = one_at_a_time();
    let (dir, workspace) = stripes::make_workspace(12);
    let (sender, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let log = Arc::new(LogFile::open(&dir.path().join("logs")).unwrap());
    let mut jobs = Jobs::start(workspace.clone(), sender, log).unwrap();
    let open = OpenOptions {
        arch: Some(Arch::Resnet18),
        image_size: 64,
        device: DeviceChoice::Cpu,
        settings: stripes::settings(),
        ..OpenOptions::default()
    };

    let (outputs, outcome) = run_step(&mut jobs, &mut messages, JobRequest::Interpret { open: open.clone(), top: 4 });
    assert_eq!(outcome, Outcome::Done);
    let Some(Output::Interpret(info)) = outputs.into_iter().next() else { panic!("no interpretation") };
    let evaluation = &info.evaluation;
    assert_eq!(evaluation.metrics.bootstrap.resamples, 1000, "the CLI's default intervals");
    assert_eq!(evaluation.metrics.per_class.len(), 2);
    assert_eq!(evaluation.calibration.bins.len(), 15);
    assert_eq!(evaluation.top_loss_cams.len(), 4, "one heatmap per top loss");
    assert!(info.images.iter().all(|image| image.as_ref().is_some_and(|image| image.dimensions() == (64, 64))));

    let file = workspace.dataset_dir().join("vertical/003.png");
    let (outputs, outcome) =
        run_step(&mut jobs, &mut messages, JobRequest::Predict { open: open.clone(), file: file.clone() });
    assert_eq!(outcome, Outcome::Done);
    let Some(Output::Predicted(predicted)) = outputs.into_iter().next() else { panic!("no prediction") };
    assert_eq!(predicted.file, file);
    let probabilities: Vec<f32> = predicted.classes.iter().map(|(_, p)| *p).collect();
    assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4 && probabilities[0] >= probabilities[1]);
    assert_eq!(predicted.image.dimensions(), (64, 64));
    assert_eq!(predicted.heatmap.as_ref().map(|heatmap| heatmap.side), Some(64));

    let notes = dir.path().join("notes.png");
    std::fs::write(&notes, "not a picture").unwrap();
    let (_, outcome) = run_step(&mut jobs, &mut messages, JobRequest::Predict { open, file: notes.clone() });
    let Outcome::Failed(message) = outcome else { panic!("{outcome:?}") };
    assert!(message.starts_with(&format!("cannot read {}", notes.display())) && !message.contains('\n'), "{message}");
}
