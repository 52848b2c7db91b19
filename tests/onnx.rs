//! `export --format onnx`: onnxruntime, run on the exported file, gives the probabilities
//! mednist gives, for a basic-block and a bottleneck ResNet, frozen and unfrozen, calibrated
//! or not; and the clear errors.

#[path = "common/onnxruntime.rs"]
mod onnxruntime;
#[path = "common/python.rs"]
mod python;
#[path = "common/stripes.rs"]
mod stripes;

use std::path::Path;

use assert_cmd::cargo::cargo_bin_cmd;
use mednist::data::cache::decode_gray;
use mednist::data::window::Window;
use mednist::job::CancelToken;
use mednist::learn::data::TrainData;
use mednist::learn::device::DeviceChoice;
use mednist::learn::export::ExportedModel;
use mednist::learn::learner::Learner;
use mednist::model::Arch;
use mednist::workspace::Workspace;
use onnxruntime::max_difference;
use stripes::{make_workspace, one_at_a_time, settings};

/// Within what onnxruntime must agree with mednist: the bound.
const TOLERANCE: f32 = 1e-4;
/// The stripes resized to 64px: the last stage's map is then 2x2, so the head's max and
/// average pools differ (at 1x1 a swapped pair would go unnoticed).
const SIDE: usize = 64;

fn load(workspace: &Workspace) -> TrainData {
    TrainData::load(workspace, SIDE, &Window::default(), &|_| {}, &CancelToken::new()).unwrap()
}

fn cpu() -> (burn::tensor::Device, String) {
    DeviceChoice::Cpu.resolve().unwrap()
}

fn valid_images(data: &TrainData) -> Vec<Vec<u8>> {
    data.valid
        .iter()
        .map(|&item| decode_gray(&data.dataset.join(&data.items[item].path), 0, SIDE, &data.window).unwrap())
        .collect()
}

/// mednist's probabilities for `images` through the `.mednist` export of `learner`.
fn mednist_probabilities(learner: &Learner, dir: &Path, images: &[Vec<u8>]) -> Vec<Vec<f32>> {
    let path = dir.join("model.mednist");
    learner.export(&path).unwrap();
    let exported = ExportedModel::load(&path, &cpu().0).unwrap();
    let predictions = exported.predict(images.to_vec(), &|_| {}, &CancelToken::new()).unwrap();
    (0..predictions.len()).map(|row| predictions.probabilities_of(row)).collect()
}

/// Trains a fresh `arch` one epoch on the stripes (body frozen first when `frozen`), exports
/// it both ways and compares onnxruntime's probabilities with mednist's.
fn onnx_agrees_with_mednist(arch: Arch, frozen: bool, temperature: Option<f32>) {
    let _turn = one_at_a_time();
    let (dir, workspace) = make_workspace(8);
    let data = load(&workspace);
    let mut learner = Learner::new(arch, &data, cpu(), workspace.current_run_dir(), settings());
    learner.set_frozen(frozen);
    learner.fit_one_cycle(&data, 1, "1e-3".parse().unwrap(), &|_| {}, &CancelToken::new()).unwrap();
    learner.set_temperature(temperature);
    let images = valid_images(&data);
    let expected = mednist_probabilities(&learner, dir.path(), &images);

    let path = dir.path().join("model.onnx");
    let summary = learner.export_onnx(&path).unwrap();
    assert_eq!(summary.bytes as u64, std::fs::metadata(&path).unwrap().len());
    let run = onnxruntime::run(&path, &images);
    let difference = max_difference(&run.probabilities, &expected);
    println!("{arch} frozen={frozen} T={temperature:?}: max |difference| {difference:e} over {} images", images.len());
    assert!(difference <= TOLERANCE, "{arch} frozen={frozen} T={temperature:?}: max |difference| {difference:e}");
    assert!(max_difference(std::slice::from_ref(&run.first_alone), &expected[..1]) <= TOLERANCE, "a batch of one");
    assert_eq!(run.opset, 17);
    assert_eq!(run.input.0, "image");
    assert_eq!(run.input.1[1..], [3, SIDE, SIDE].map(serde_json::Value::from));
    assert!(run.input.1[0].is_string(), "a dynamic batch: {:?}", run.input.1);
    assert_eq!(run.output.0, "probabilities");
    assert_eq!(serde_json::from_str::<Vec<String>>(&run.metadata["classes"]).unwrap(), ["horizontal", "vertical"]);
    assert_eq!(run.metadata.get("temperature").map(|t| t.parse::<f32>().unwrap()), temperature);
}

#[test]
fn resnet18_unfrozen_matches_onnxruntime() {
    onnx_agrees_with_mednist(Arch::Resnet18, false, None);
}

#[test]
fn resnet18_frozen_and_calibrated_matches_onnxruntime() {
    onnx_agrees_with_mednist(Arch::Resnet18, true, Some(2.5));
}

#[test]
fn resnet50_bottlenecks_match_onnxruntime() {
    onnx_agrees_with_mednist(Arch::Resnet50, false, None);
}

#[test]
fn an_untrained_learner_is_not_exported() {
    let (dir, workspace) = make_workspace(4);
    let data = load(&workspace);
    let learner = Learner::new(Arch::Resnet18, &data, cpu(), workspace.current_run_dir(), settings());
    let error = learner.export_onnx(&dir.path().join("model.onnx")).unwrap_err();
    assert!(format!("{error:#}").contains("is not trained yet: run `mednist train`"), "{error:#}");
    assert!(!dir.path().join("model.onnx").exists());
}

fn mednist(workdir: &Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("mednist");
    command.env_remove("MEDNIST_HOME").arg("--workdir").arg(workdir);
    command
}

/// The headless path: `export --format onnx` then `predict --json` on the same files.
#[test]
fn the_exported_onnx_file_predicts_what_mednist_predict_prints() {
    let _turn = one_at_a_time();
    let (dir, workspace) = make_workspace(8);
    let data = load(&workspace);
    let mut learner = Learner::new(Arch::Resnet18, &data, cpu(), workspace.current_run_dir(), settings());
    learner.fit_one_cycle(&data, 1, "1e-3".parse().unwrap(), &|_| {}, &CancelToken::new()).unwrap();

    let missing = dir.path().join("no/such/folder/model.onnx");
    let output = mednist(dir.path()).args(["export", "--format", "onnx"]).arg(&missing).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("folder") && stderr.contains("no/such/folder does not exist"), "{stderr}");

    let output = mednist(dir.path()).args(["--json", "export", "--format", "onnx"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let onnx_path = dir.path().join("export.onnx");
    assert_eq!(report["path"], onnx_path.to_str().unwrap());
    assert_eq!(report["onnx"]["opset"], 17);
    let output = mednist(dir.path()).arg("export").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let files: Vec<_> = data.valid.iter().map(|&item| data.dataset.join(&data.items[item].path)).collect();
    let output =
        mednist(dir.path()).args(["--json", "predict", "--top", "2", "--device", "cpu"]).args(&files).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let classes = ["horizontal", "vertical"];
    let by_class: Vec<Vec<f32>> = printed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let named = |class: &str| {
                let entry = p["classes"].as_array().unwrap().iter().find(|c| c["class"] == class).unwrap();
                entry["probability"].as_f64().unwrap() as f32
            };
            classes.map(named).to_vec()
        })
        .collect();
    let run = onnxruntime::run(&onnx_path, &valid_images(&data));
    let difference = max_difference(&run.probabilities, &by_class);
    assert!(difference <= TOLERANCE, "max |difference| {difference:e}");
}
