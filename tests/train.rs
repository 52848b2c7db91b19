//! The learner on tiny made-up datasets: it learns, its schedule, checkpoints and resume.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;

use mednist::data::scan;
use mednist::data::split::{self, SplitOptions};
use mednist::event::{Event, TrainStart};
use mednist::job::CancelToken;
use mednist::learn::checkpoint;
use mednist::learn::data::TrainData;
use mednist::learn::device::DeviceChoice;
use mednist::learn::learner::{FitOutcome, Learner, LearnerSettings};
use mednist::learn::schedule::{MaxLr, OneCycle};
use mednist::model::Arch;
use mednist::workspace::Workspace;

const SIDE: usize = 16;

/// LibTorch's random generator is global to the process: tests that train take turns, so
/// a seed fixes each one's weights and dropout.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Two classes anyone can tell apart: horizontal and vertical stripes, with some noise.
fn make_workspace(per_class: usize) -> (tempfile::TempDir, Workspace) {
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
    let scanned = scan::scan(&workspace.dataset_dir(), &|_| {}, &CancelToken::new()).unwrap();
    split::split(&scanned, &SplitOptions { valid_pct: 0.25, seed: 1, stratify: true })
        .unwrap()
        .save(&workspace)
        .unwrap();
    (dir, workspace)
}

fn settings() -> LearnerSettings {
    LearnerSettings { batch_size: 8, ..LearnerSettings::default() }
}

fn load(workspace: &Workspace) -> TrainData {
    TrainData::load(workspace, SIDE, &|_| {}, &CancelToken::new()).unwrap()
}

fn new_learner(workspace: &Workspace, data: &TrainData) -> Learner {
    let device = DeviceChoice::Cpu.resolve().unwrap();
    Learner::new(Arch::Resnet18, data, device, workspace.current_run_dir(), settings())
}

fn resume(workspace: &Workspace) -> Learner {
    let device = DeviceChoice::Cpu.resolve().unwrap();
    Learner::resume(workspace.current_run_dir(), device, settings()).unwrap().expect("a checkpoint")
}

/// Runs a fit and returns its events.
fn fit(
    learner: &mut Learner,
    data: &TrainData,
    epochs: usize,
    max_lr: &str,
    cancel: &CancelToken,
) -> (FitOutcome, Vec<Event>) {
    let events = Mutex::new(Vec::new());
    let outcome = learner.fit_one_cycle(
        data,
        epochs,
        max_lr.parse::<MaxLr>().unwrap(),
        &|e| events.lock().unwrap().push(e),
        cancel,
    );
    (outcome.unwrap(), events.into_inner().unwrap())
}

fn batch_losses(events: &[Event]) -> Vec<f64> {
    events.iter().filter_map(|e| if let Event::Batch(b) = e { Some(b.loss) } else { None }).collect()
}

fn batch_lrs(events: &[Event]) -> Vec<f64> {
    events.iter().filter_map(|e| if let Event::Batch(b) = e { Some(b.lr) } else { None }).collect()
}

fn start(events: &[Event]) -> TrainStart {
    events.iter().find_map(|e| if let Event::TrainStarted(s) = e { Some(s.clone()) } else { None }).unwrap()
}

fn epochs(events: &[Event]) -> Vec<usize> {
    events.iter().filter_map(|e| if let Event::Epoch(row) = e { Some(row.epoch) } else { None }).collect()
}

#[test]
fn a_tiny_dataset_is_learned_to_near_zero_loss() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(48);
    let data = load(&workspace);
    let mut learner = new_learner(&workspace, &data);
    let (outcome, events) = fit(&mut learner, &data, 8, "5e-3", &CancelToken::new());
    assert_eq!(outcome, FitOutcome::Finished);
    assert_eq!(epochs(&events), (0..8).collect::<Vec<_>>());
    // The median raw loss of the last epoch: fastai's smoothed column still remembers the first
    // epochs, and dropout makes single batches noisy.
    let losses = batch_losses(&events);
    let steps = data.train.len() / 8;
    let median = |losses: &[f64]| {
        let mut sorted = losses.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let (first, last) = (median(&losses[..steps]), median(&losses[losses.len() - steps..]));
    let history = learner.history();
    assert!(last < 0.1 && last < first / 5.0, "median batch loss {first} then {last}; losses {losses:?}");
    assert!(history.last().unwrap().train_loss < history[0].train_loss / 2.0, "{history:?}");
    assert_eq!(history.last().unwrap().error_rate, 0.0, "{history:?}");
}

#[test]
fn learning_rates_follow_the_one_cycle_formula() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let mut learner = new_learner(&workspace, &data);
    let (_, events) = fit(&mut learner, &data, 2, "3e-3", &CancelToken::new());
    let lrs = batch_lrs(&events);
    let steps_per_epoch = data.train.len() / 8;
    let schedule = OneCycle::new(2 * steps_per_epoch, vec![3e-3, 3e-3]);
    assert_eq!(lrs.len(), 2 * steps_per_epoch);
    for (step, lr) in lrs.iter().enumerate() {
        assert!((lr - schedule.at(step).lrs[1]).abs() < 1e-15, "step {step}: {lr}");
    }
    assert!((lrs[0] - 3e-3 / 25.0).abs() < 1e-15);
}

#[test]
fn a_checkpoint_round_trip_gives_identical_predictions() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let mut learner = new_learner(&workspace, &data);
    fit(&mut learner, &data, 1, "1e-3", &CancelToken::new());
    let before = learner.validate(&data, &|_| {}, &CancelToken::new()).unwrap().unwrap();
    let restored = resume(&workspace);
    let after = restored.validate(&data, &|_| {}, &CancelToken::new()).unwrap().unwrap();
    assert_eq!(before, after);
    assert_eq!(restored.epochs_done(), 1);
    assert_eq!(restored.history(), learner.history());
}

#[test]
fn resuming_continues_the_epoch_numbers_and_the_schedule() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let steps_per_epoch = data.train.len() / 8;
    let mut learner = new_learner(&workspace, &data);
    // Stop a 3-epoch cycle once its first epoch is done.
    let cancel = CancelToken::new();
    let events = Mutex::new(Vec::new());
    let outcome = learner
        .fit_one_cycle(
            &data,
            3,
            MaxLr::Uniform(2e-3),
            &|e| {
                if matches!(e, Event::Epoch(_)) {
                    cancel.cancel();
                }
                events.lock().unwrap().push(e);
            },
            &cancel,
        )
        .unwrap();
    assert_eq!(outcome, FitOutcome::Cancelled);
    assert_eq!(epochs(&events.into_inner().unwrap()), vec![0]);

    let mut resumed = resume(&workspace);
    let (outcome, events) = fit(&mut resumed, &data, 3, "2e-3", &CancelToken::new());
    assert_eq!(outcome, FitOutcome::Finished);
    let started = start(&events);
    assert_eq!((started.first_epoch, started.cycle_epochs, started.cycle_epochs_done), (1, 3, 1));
    assert_eq!(epochs(&events), vec![1, 2]);
    let schedule = OneCycle::new(3 * steps_per_epoch, vec![2e-3, 2e-3]);
    let lrs = batch_lrs(&events);
    assert!((lrs[0] - schedule.at(steps_per_epoch).lrs[1]).abs() < 1e-15, "the schedule goes on where it stopped");

    // Once a cycle is complete, training again starts a new cycle and the epochs go on.
    let mut again = resume(&workspace);
    let (_, events) = fit(&mut again, &data, 1, "1e-3", &CancelToken::new());
    let started = start(&events);
    assert_eq!((started.first_epoch, started.cycle_epochs, started.cycle_epochs_done), (3, 1, 0));
    assert_eq!(epochs(&events), vec![3]);
}

#[test]
fn a_failure_in_the_middle_of_an_epoch_keeps_the_previous_checkpoint() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let mut learner = new_learner(&workspace, &data);
    fit(&mut learner, &data, 1, "1e-3", &CancelToken::new());
    let state_file = workspace.current_run_dir().join("checkpoint.json");
    let saved = std::fs::read(&state_file).unwrap();
    let expected = learner.validate(&data, &|_| {}, &CancelToken::new()).unwrap().unwrap();

    // A crash while the second epoch trains.
    let crashed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        learner.fit_one_cycle(
            &data,
            2,
            MaxLr::Uniform(1e-3),
            &|e| {
                if let Event::Batch(b) = &e
                    && b.batch == 2
                {
                    panic!("simulated crash");
                }
            },
            &CancelToken::new(),
        )
    }));
    assert!(crashed.is_err());
    assert_eq!(std::fs::read(&state_file).unwrap(), saved);
    let restored = resume(&workspace);
    assert_eq!(restored.epochs_done(), 1);
    assert_eq!(restored.validate(&data, &|_| {}, &CancelToken::new()).unwrap().unwrap(), expected);
    assert!(checkpoint::load(&workspace.current_run_dir()).unwrap().is_some());
    assert!(only_one_weights_file(&workspace.current_run_dir()));
}

fn only_one_weights_file(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("model-"))
        .count()
        == 1
}

#[test]
fn the_same_seed_gives_the_same_first_epoch_losses() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let run = || {
        let mut learner = new_learner(&workspace, &data);
        batch_losses(&fit(&mut learner, &data, 1, "1e-3", &CancelToken::new()).1)
    };
    let (first, second) = (run(), run());
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

#[test]
fn training_refuses_a_split_older_than_the_dataset() {
    let (_dir, workspace) = make_workspace(8);
    std::fs::copy(workspace.dataset_dir().join("vertical/000.png"), workspace.dataset_dir().join("vertical/new.png"))
        .unwrap();
    let error = TrainData::load(&workspace, SIDE, &|_| {}, &CancelToken::new()).unwrap_err();
    assert!(format!("{error:#}").contains("run `mednist split` again"), "{error:#}");
}
