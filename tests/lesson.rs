//! The rest of the lesson on a tiny made-up dataset: lr_find, export and predict, and the
//! headless commands from pretrained weights to predictions.

#[path = "common/http.rs"]
mod http;
#[path = "common/python.rs"]
mod python;
#[path = "common/stripes.rs"]
mod stripes;
#[path = "common/torch_pth.rs"]
mod torch_pth;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use assert_cmd::cargo::cargo_bin_cmd;
use burn::store::burn_pack::{Bytes, Reader};
use mednist::data::cache::decode_gray;
use mednist::event::Event;
use mednist::job::CancelToken;
use mednist::learn::checkpoint;
use mednist::learn::data::TrainData;
use mednist::learn::export::ExportedModel;
use mednist::learn::learner::Learner;
use mednist::learn::lr_find::LrFindOptions;
use mednist::model::Arch;
use mednist::workspace::Workspace;
use stripes::{SIDE, load, make_workspace, new_learner, one_at_a_time};

/// What a burnpack file holds, whatever its layout: tensors by name, and scalars.
/// (The same state can be laid out in another order, and BatchNorm statistics get new ids
/// when loaded, so the bytes alone are not the thing to compare.)
fn pack_contents(bytes: &[u8]) -> (BTreeMap<String, Vec<u8>>, String) {
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).unwrap();
    let names: Vec<String> = reader.tensor_names().into_iter().map(String::from).collect();
    let tensors = names.into_iter().map(|name| (name.clone(), reader.tensor_data(&name).unwrap())).collect();
    (tensors, format!("{:?}", reader.scalars()))
}

/// A resnet18 trained one epoch on the stripes, in its own workspace.
fn trained_one_epoch() -> (tempfile::TempDir, Workspace, TrainData, Learner) {
    let (dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let mut learner = new_learner(&workspace, &data);
    learner.fit_one_cycle(&data, 1, "1e-3".parse().unwrap(), &|_| {}, &CancelToken::new()).unwrap();
    (dir, workspace, data, learner)
}

/// The current checkpoint's weight and optimizer files, as bytes.
fn saved_files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let checkpoint = checkpoint::load(dir).unwrap().expect("a checkpoint");
    (std::fs::read(checkpoint.model).unwrap(), std::fs::read(checkpoint.optimizer).unwrap())
}

#[test]
fn lr_find_suggests_a_rate_and_puts_the_learner_back_exactly() {
    let _turn = one_at_a_time();
    let (_dir, workspace, data, mut learner) = trained_one_epoch();
    let before = saved_files(&workspace.current_run_dir());
    let predictions_before = learner.predict(&data, &data.valid, &|_| {}, &CancelToken::new()).unwrap();

    let steps = Mutex::new(Vec::new());
    let options = LrFindOptions { iterations: 30, ..LrFindOptions::default() };
    let emit = |event| {
        if let Event::LrFindStep(step) = event {
            steps.lock().unwrap().push(step);
        }
    };
    let result = learner.lr_find(&data, &options, &emit, &CancelToken::new()).unwrap();

    let steps = steps.into_inner().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 30 && steps.len() == result.lrs.len());
    assert_eq!(result.lrs[0], 1e-7);
    assert!(result.lrs.windows(2).all(|w| w[1] > w[0]), "rates grow");
    assert!(result.diverged || result.lrs.len() == 30);
    let suggestions = result.suggestions.expect("a suggestion");
    for lr in [suggestions.valley.lr, suggestions.steep.lr] {
        assert!(lr.is_finite() && (1e-7..=10.0).contains(&lr), "{lr}");
    }

    learner.save().unwrap();
    let after = saved_files(&workspace.current_run_dir());
    assert_eq!(pack_contents(&before.0), pack_contents(&after.0), "weights and BatchNorm statistics are restored");
    assert_eq!(pack_contents(&before.1), pack_contents(&after.1), "the optimizer state is restored");
    let predictions_after = learner.predict(&data, &data.valid, &|_| {}, &CancelToken::new()).unwrap();
    assert_eq!(predictions_before, predictions_after);
}

#[test]
fn an_exported_model_predicts_what_the_learner_predicts() {
    let _turn = one_at_a_time();
    let (dir, _workspace, data, learner) = trained_one_epoch();
    let expected = learner.predict(&data, &data.valid, &|_| {}, &CancelToken::new()).unwrap();

    let path = dir.path().join("exports/stripes.mednist");
    learner.export(&path).unwrap();
    let exported = ExportedModel::load(&path, &mednist::learn::device::DeviceChoice::Cpu.resolve().unwrap().0).unwrap();
    assert_eq!(exported.header.arch, Arch::Resnet18);
    assert_eq!(exported.header.classes, ["horizontal", "vertical"]);
    assert_eq!(exported.header.image_size, SIDE);
    let images: Vec<Vec<u8>> = data
        .valid
        .iter()
        .map(|&item| decode_gray(&data.dataset.join(&data.items[item].path), 0, SIDE, &data.window).unwrap())
        .collect();
    let got = exported.predict(images, &|_| {}, &CancelToken::new()).unwrap();

    assert_eq!(got.len(), expected.len());
    for row in 0..got.len() {
        let (a, b) = (got.probabilities_of(row), expected.probabilities_of(row));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "image {row}: {a:?} vs {b:?}");
    }
}

fn mednist(workdir: &Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("mednist");
    command.env_remove("MEDNIST_HOME").arg("--workdir").arg(workdir);
    command
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The lesson after `fit_one_cycle`, through the binary: pretrained weights from a URL,
/// unfreeze, lr-find, interpret, export and predict.
#[test]
fn the_rest_of_the_lesson_headless() {
    let _turn = one_at_a_time();
    let (dir, workspace) = make_workspace(12);
    let root = dir.path();
    let pth = tempfile::tempdir().unwrap();
    let weights = pth.path().join("resnet18-test.pth");
    torch_pth::write_state_dict(&weights, &torch_pth::torchvision_entries(Arch::Resnet18));
    let server =
        http::TestServer::start(vec![("/resnet18-test.pth", http::Route::new(std::fs::read(&weights).unwrap()))]);
    let url = server.url("/resnet18-test.pth");
    let small = ["--arch", "resnet18", "--bs", "8", "--size", "16", "--device", "cpu"];

    let output = mednist(root).args(["train", "--epochs", "1", "--pretrained", &url]).args(small).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("the body is frozen"), "{}", stderr_of(&output));
    let downloaded: Vec<String> = std::fs::read_dir(root.join("downloads/weights"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        downloaded.len() == 1 && downloaded[0].ends_with("resnet18-test.pth"),
        "downloaded into the workspace: {downloaded:?}"
    );
    let state = checkpoint::load(&workspace.current_run_dir()).unwrap().unwrap().state;
    assert!(state.frozen);

    let output = mednist(root).args(["train", "--epochs", "1", "--pretrained", &url]).args(small).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr_of(&output).contains("start a new learner (--fresh)"), "{}", stderr_of(&output));

    let output = mednist(root).args(["--json", "unfreeze"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(json_of(&output)["frozen"], false);
    assert!(!checkpoint::load(&workspace.current_run_dir()).unwrap().unwrap().state.frozen);

    let output = mednist(root)
        .args(["--json", "lr-find", "--iterations", "12"])
        .args(["--bs", "8", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let sweep = json_of(&output);
    assert!(sweep["lrs"].as_array().unwrap().len() <= 12);
    assert_eq!(state.epochs_done, checkpoint::load(&workspace.current_run_dir()).unwrap().unwrap().state.epochs_done);

    let output = mednist(root).args(["--json", "interpret", "--top", "4", "--device", "cpu"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let interpretation = json_of(&output);
    let counted: u64 = interpretation["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, load(&workspace).valid.len());
    assert_eq!(interpretation["top_losses"].as_array().unwrap().len(), 4);

    let output = mednist(root).args(["interpret", "--top", "2", "--device", "cpu"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("confusion matrix (counts)") && text.contains("top losses"), "{text}");

    let output = mednist(root).arg("export").output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(root.join("export.mednist").is_file());

    let inputs = tempfile::tempdir().unwrap();
    let class_dir = workspace.dataset_dir().join("horizontal");
    std::fs::copy(class_dir.join("000.png"), inputs.path().join("a.png")).unwrap();
    std::fs::write(inputs.path().join("broken.png"), b"not a png").unwrap();
    let output =
        mednist(root).args(["--json", "predict", "--top", "2", "--device", "cpu"]).arg(inputs.path()).output().unwrap();
    assert!(!output.status.success(), "a file that cannot be predicted fails the command");
    assert!(stderr_of(&output).contains("1 of 2 file(s) could not be predicted"), "{}", stderr_of(&output));
    let predictions = json_of(&output);
    assert!(predictions[0]["file"].as_str().unwrap().ends_with("a.png"));
    let classes = predictions[0]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    let total: f64 = classes.iter().map(|c| c["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "two classes: probabilities sum to 1");
    assert!(predictions[1]["error"].as_str().unwrap().contains("broken.png"), "{predictions}");
}
