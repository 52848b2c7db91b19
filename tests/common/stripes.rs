//! A tiny made-up dataset that a ResNet learns in a few batches, and learners on it.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::sync::Mutex;

use mednist::data::scan;
use mednist::data::settings::DatasetSettings;
use mednist::data::split::{self, SplitOptions};
use mednist::data::window::Window;
use mednist::job::CancelToken;
use mednist::learn::data::TrainData;
use mednist::learn::device::DeviceChoice;
use mednist::learn::learner::{Learner, LearnerSettings};
use mednist::model::Arch;
use mednist::workspace::Workspace;

pub const SIDE: usize = 16;

/// LibTorch's random generator is global to the process: tests that train take turns, so
/// a seed fixes each one's weights and dropout.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Two classes anyone can tell apart: horizontal and vertical stripes, with some noise.
pub fn make_workspace(per_class: usize) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::at(dir.path());
    for (class, horizontal) in [("horizontal", true), ("vertical", false)] {
        let folder = workspace.dataset_dir().join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_class {
            let image = image::GrayImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
                let along = if horizontal { y } else { x };
                let noise = ((x * 31 + y * 17 + i as u32 * 13) % 40) as u8;
                image::Luma([if (along / 2) % 2 == 0 { 200 + noise / 2 } else { 20 + noise }])
            });
            image.save(folder.join(format!("{i:03}.png"))).unwrap();
        }
    }
    let scanned =
        scan::scan(&workspace.dataset_dir(), &DatasetSettings::default(), &|_| {}, &CancelToken::new()).unwrap();
    split::split(&scanned, &SplitOptions { valid_pct: 0.25, seed: 1, stratify: true, group: None })
        .unwrap()
        .save(&workspace)
        .unwrap();
    (dir, workspace)
}

/// The batch size of the tests' learners unless a test asks for another.
pub const BATCH_SIZE: usize = 8;

pub fn settings() -> LearnerSettings {
    LearnerSettings { batch_size: BATCH_SIZE, ..LearnerSettings::default() }
}

pub fn load(workspace: &Workspace) -> TrainData {
    TrainData::load(workspace, SIDE, &Window::default(), &|_| {}, &CancelToken::new()).unwrap()
}

pub fn new_learner(workspace: &Workspace, data: &TrainData) -> Learner {
    new_learner_with_batches_of(BATCH_SIZE, workspace, data)
}

pub fn new_learner_with_batches_of(batch_size: usize, workspace: &Workspace, data: &TrainData) -> Learner {
    let device = DeviceChoice::Cpu.resolve().unwrap();
    let settings = LearnerSettings { batch_size, ..settings() };
    Learner::new(Arch::Resnet18, data, device, workspace.current_run_dir(), settings)
}

pub fn resume(workspace: &Workspace) -> Learner {
    let device = DeviceChoice::Cpu.resolve().unwrap();
    Learner::resume(workspace.current_run_dir(), device, settings(), &|_| {}).unwrap().expect("a checkpoint")
}
