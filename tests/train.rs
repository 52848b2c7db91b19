//! The learner on tiny made-up datasets: it learns, its schedule, checkpoints and resume.

#[path = "common/stripes.rs"]
mod stripes;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;

use mednist::data::window::Window;
use mednist::event::{Event, TrainStart};
use mednist::job::{CancelToken, is_cancelled};
use mednist::learn::checkpoint;
use mednist::learn::data::TrainData;
use mednist::learn::learner::Learner;
use mednist::learn::schedule::{MaxLr, OneCycle};
use stripes::{
    BATCH_SIZE, SIDE, load, make_workspace, new_learner, new_learner_with_batches_of, one_at_a_time, resume,
};

/// Runs a fit to its end and returns its events.
fn fit(learner: &mut Learner, data: &TrainData, epochs: usize, max_lr: &str, cancel: &CancelToken) -> Vec<Event> {
    let events = Mutex::new(Vec::new());
    let outcome = learner.fit_one_cycle(
        data,
        epochs,
        max_lr.parse::<MaxLr>().unwrap(),
        &|e| events.lock().unwrap().push(e),
        cancel,
    );
    outcome.expect("the fit finishes");
    events.into_inner().unwrap()
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
    // Batches of 16: at 16px the last stages' feature maps are 1x1, and BatchNorm over 8 of
    // them made the loss jump by whole units near the peak rate (seen on an AVX-512 CPU, where
    // the last epoch's median loss ended at 0.11; with 16 it ends below 0.001).
    let batch_size = 16;
    let (_dir, workspace) = make_workspace(96);
    let data = load(&workspace);
    let mut learner = new_learner_with_batches_of(batch_size, &workspace, &data);
    let events = fit(&mut learner, &data, 8, "5e-3", &CancelToken::new());
    assert_eq!(epochs(&events), (0..8).collect::<Vec<_>>());
    // The median raw loss of the last epoch: fastai's smoothed column still remembers the first
    // epochs, and dropout makes single batches noisy.
    let losses = batch_losses(&events);
    let steps = data.train.len() / batch_size;
    let median = |losses: &[f64]| {
        let mut sorted = losses.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let (first, last) = (median(&losses[..steps]), median(&losses[losses.len() - steps..]));
    let history = learner.history();
    assert!(last < 0.1 && last < first / 5.0, "median batch loss {first} then {last}; losses {losses:?}");
    assert!(history.last().unwrap().train_loss < history[0].train_loss / 2.0, "{history:?}");
    // 48 validation images: allow one that dropout-noisy training has not got yet.
    assert!(history.last().unwrap().error_rate <= 1.0 / 48.0, "{history:?}");
}

#[test]
fn learning_rates_follow_the_one_cycle_formula() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let mut learner = new_learner(&workspace, &data);
    let events = fit(&mut learner, &data, 2, "3e-3", &CancelToken::new());
    let lrs = batch_lrs(&events);
    let steps_per_epoch = data.train.len() / BATCH_SIZE;
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
    let before = learner.validate(&data, &|_| {}, &CancelToken::new()).unwrap();
    let restored = resume(&workspace);
    let after = restored.validate(&data, &|_| {}, &CancelToken::new()).unwrap();
    assert_eq!(before, after);
    assert_eq!(restored.epochs_done(), 1);
    assert_eq!(restored.history(), learner.history());
}

#[test]
fn resuming_continues_the_epoch_numbers_and_the_schedule() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    let steps_per_epoch = data.train.len() / BATCH_SIZE;
    let mut learner = new_learner(&workspace, &data);
    // Stop a 3-epoch cycle once its first epoch is done.
    let cancel = CancelToken::new();
    let events = Mutex::new(Vec::new());
    let error = learner
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
        .unwrap_err();
    assert!(is_cancelled(&error), "{error:#}");
    assert_eq!(epochs(&events.into_inner().unwrap()), vec![0]);

    let mut resumed = resume(&workspace);
    let events = fit(&mut resumed, &data, 3, "2e-3", &CancelToken::new());
    let started = start(&events);
    assert_eq!((started.first_epoch, started.cycle_epochs, started.cycle_epochs_done), (1, 3, 1));
    assert_eq!(epochs(&events), vec![1, 2]);
    let schedule = OneCycle::new(3 * steps_per_epoch, vec![2e-3, 2e-3]);
    let lrs = batch_lrs(&events);
    assert!((lrs[0] - schedule.at(steps_per_epoch).lrs[1]).abs() < 1e-15, "the schedule goes on where it stopped");

    // Once a cycle is complete, training again starts a new cycle and the epochs go on.
    let mut again = resume(&workspace);
    let events = fit(&mut again, &data, 1, "1e-3", &CancelToken::new());
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
    let expected = learner.validate(&data, &|_| {}, &CancelToken::new()).unwrap();

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
    assert_eq!(restored.validate(&data, &|_| {}, &CancelToken::new()).unwrap(), expected);
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
        batch_losses(&fit(&mut learner, &data, 1, "1e-3", &CancelToken::new()))
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
    let error = TrainData::load(&workspace, SIDE, &Window::default(), &|_| {}, &CancelToken::new()).unwrap_err();
    assert!(format!("{error:#}").contains("run `mednist split` again"), "{error:#}");
}
