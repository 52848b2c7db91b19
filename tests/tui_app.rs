//! The app without a terminal: keys and made-up job events drive its state, and every pane is
//! drawn on ratatui's TestBackend and compared with the accepted snapshot (tests/snapshots).
//! Images are half-blocks; nothing here depends on the clock, the machine or a model. A run
//! "trained" by another process is an event log written here, followed as the app follows one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use image::{GrayImage, Luma};
use mednist::data::fetch::{ClassFolder, DatasetInfo};
use mednist::data::scan::{ClassSummary, DicomSummary, Item, UnreadableFile};
use mednist::data::settings::{DatasetSettings, Frames};
use mednist::data::split::{ClassCounts, GroupBy, SplitOptions};
use mednist::data::window::Window;
use mednist::event::Emit;
use mednist::event::{BatchEnd, EpochRow, Event, Level, LrStep, Stage, TrainStart};
use mednist::job::CancelToken;
use mednist::learn::calibration::Reliability;
use mednist::learn::cam::Heatmap;
use mednist::learn::clinical::{Bootstrap, ClinicalMetrics};
use mednist::learn::evaluate::{Calibration, Evaluation};
use mednist::learn::inference::Predictions;
use mednist::learn::interpret::Interpretation;
use mednist::learn::lr_find::{LrFindOptions, LrFindResult, LrRecorder};
use mednist::learn::pretrained::Pretrained;
use mednist::model::Arch;
use mednist::render::theme::Theme;
use mednist::runs::event_log::{self, EventLog};
use mednist::runs::{RunRecord, RunStatus, RunSummary, Runs};
use mednist::system::{Cuda, LibTorch, SystemReport};
use mednist::tui::app::{Action, AfterExit, App, Overlay};
use mednist::tui::attach;
use mednist::tui::jobs::{
    ClassesInfo, Continuation, InterpretInfo, JobMessage, JobRequest, LearnerInfo, Outcome, Output, PredictInfo,
    PreviewInfo, PreviewView, RunsListing, SavedLearner, SetupInfo, SplitInfo,
};
use mednist::tui::keys;
use mednist::tui::lesson;
use mednist::tui::panes::{PaneId, Status};
use mednist::workspace::Workspace;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui_image::picker::Picker;

const CLASSES: [&str; 6] = ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"];

fn app() -> App {
    App::new(Theme::built_in("dark").unwrap(), Picker::halfblocks())
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) -> Option<Action> {
    keys.chars().fold(None, |_, c| app.handle_key(key(KeyCode::Char(c))))
}

fn screen(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| app.render(frame)).unwrap();
    terminal
}

fn text(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

fn event(pane: PaneId, event: Event) -> JobMessage {
    JobMessage::Event { pane, event }
}

fn output(pane: PaneId, output: Output) -> JobMessage {
    JobMessage::Output { pane, output }
}

fn finished(pane: PaneId, outcome: Outcome) -> JobMessage {
    JobMessage::Finished { pane, outcome }
}

/// Runs step `id` from the keyboard and feeds it `messages` as if from its job.
fn run(app: &mut App, id: PaneId, messages: Vec<JobMessage>) {
    press(app, &id.number().to_string());
    let action = app.handle_key(key(KeyCode::Enter));
    assert!(matches!(action, Some(Action::Run(ref request)) if request.pane() == id), "{action:?}");
    let now = Instant::now();
    for message in messages {
        app.apply(message, now);
    }
}

/// A 64x64 test card: a diagonal gradient with a bright disc whose place depends on `seed`.
fn image(seed: u32) -> GrayImage {
    GrayImage::from_fn(64, 64, |x, y| {
        let (cx, cy) = (16 + (seed * 11) % 32, 16 + (seed * 7) % 32);
        let inside = (x as i32 - cx as i32).pow(2) + (y as i32 - cy as i32).pow(2) < 100;
        Luma([if inside { 255 } else { ((x + y) * 2) as u8 }])
    })
}

fn setup_info() -> SetupInfo {
    SetupInfo {
        system: SystemReport {
            mednist_version: "0.1.0",
            burn_version: "0.22.1",
            libtorch: LibTorch { version: Some("2.9.0+cu128".into()), lib_dir: None, error: None },
            cuda: Cuda {
                available: false,
                cudnn: false,
                devices: Vec::new(),
                note: None,
                runtime: None,
                smoke_test: Vec::new(),
            },
            cpu_threads: Some(2),
            logical_cpus: 2,
            workspace: PathBuf::from("/home/user/.local/share/mednist"),
            distributed: None,
        },
        dataset: Some(lesson_dataset()),
    }
}

fn lesson_dataset() -> DatasetInfo {
    DatasetInfo {
        source: "the embedded lesson sample".into(),
        checksum: None,
        files: 1800,
        bytes: 4_200_000,
        classes: CLASSES.iter().map(|name| ClassFolder { name: name.to_string(), files: 300 }).collect(),
        fetched_at_unix_s: 0,
    }
}

fn classes_info() -> ClassesInfo {
    let summary = |(i, name): (usize, &&str)| ClassSummary {
        name: name.to_string(),
        images: 300 - 20 * i,
        formats: BTreeMap::from([("jpeg".to_string(), 300 - 20 * i)]),
        sizes: BTreeMap::from([("64x64".to_string(), 300 - 20 * i)]),
        modes: BTreeMap::from([("gray8".to_string(), 300 - 20 * i)]),
        ..ClassSummary::default()
    };
    ClassesInfo {
        classes: CLASSES.iter().enumerate().map(summary).collect(),
        thumbnails: (0..CLASSES.len() as u32).map(|i| Some(image(i))).collect(),
        unreadable: vec![UnreadableFile { path: "Hand/notes.txt".into(), reason: "not an image".into() }],
        unreadable_count: 1,
        empty_classes: Vec::new(),
        settings: DatasetSettings::default(),
    }
}

fn split_info() -> SplitInfo {
    SplitInfo {
        options: SplitOptions::default(),
        classes: CLASSES.iter().map(|c| c.to_string()).collect(),
        counts: (0..6).map(|i| ClassCounts { train: 240 + i, valid: 60 - i }).collect(),
        group: GroupBy::None,
        groups: ClassCounts { train: 1455, valid: 345 },
    }
}

fn learner_info() -> LearnerInfo {
    LearnerInfo {
        arch: Arch::Resnet34,
        parameters: 21_813_622,
        frozen: false,
        epochs_done: 0,
        resumed: false,
        device: "cpu (2 threads)".into(),
        image_size: 64,
        batch_size: 64,
        train_images: 1440,
        valid_images: 360,
    }
}

fn train_start(first_epoch: usize, cycle_epochs: usize) -> Event {
    Event::TrainStarted(TrainStart {
        arch: "resnet34".into(),
        device: "cpu (2 threads)".into(),
        precision: "fp32".into(),
        classes: CLASSES.iter().map(|c| c.to_string()).collect(),
        first_epoch,
        cycle_epochs,
        cycle_epochs_done: 0,
        batches_per_epoch: 4,
        world_size: 1,
        train_images: 1440,
        valid_images: 360,
        max_lrs: vec![1e-3, 1e-3],
    })
}

fn batch(epoch: usize, batch: usize, loss: f64) -> Event {
    Event::Batch(BatchEnd { epoch, batch, batches: 4, loss, smooth_loss: loss, lr: 1e-3, seconds: 2.5 * batch as f64 })
}

fn epoch_row(epoch: usize, valid_loss: f64) -> Event {
    Event::Epoch(EpochRow {
        epoch,
        train_loss: 1.0 / (epoch + 1) as f64,
        valid_loss,
        error_rate: valid_loss / 10.0,
        accuracy: 1.0 - valid_loss / 10.0,
        seconds: 12.0,
        train_images_per_second: 120.0,
        data_wait_seconds: 0.0,
    })
}

/// One epoch of four batches and its row.
fn epoch_events(epoch: usize, valid_loss: f64) -> Vec<JobMessage> {
    let mut events: Vec<JobMessage> =
        (1..=4).map(|b| event(PaneId::Train, batch(epoch, b, 1.5 / (epoch * 4 + b) as f64))).collect();
    events.push(event(PaneId::Train, epoch_row(epoch, valid_loss)));
    events
}

// Snapshots of every pane at 80x24 (the smallest supported terminal).

#[test]
fn setup_pane() {
    let mut app = app();
    run(
        &mut app,
        PaneId::Setup,
        vec![output(PaneId::Setup, Output::Setup(Box::new(setup_info()))), finished(PaneId::Setup, Outcome::Done)],
    );
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn fetch_pane_downloading() {
    let mut app = app();
    press(&mut app, "2");
    app.handle_key(key(KeyCode::Right));
    assert!(matches!(app.handle_key(key(KeyCode::Enter)), Some(Action::Run(JobRequest::Fetch(_)))));
    let start = Instant::now();
    let total = Some(60_000_000);
    app.apply(event(PaneId::Fetch, Event::StageStarted { stage: Stage::Download, total }), start);
    app.apply(
        event(PaneId::Fetch, Event::Progress { stage: Stage::Download, done: 12_000_000, total }),
        start + Duration::from_secs(3),
    );
    app.apply(
        event(PaneId::Fetch, Event::Log { level: Level::Warn, message: "download resumed at 4.0 MB".into() }),
        start,
    );
    let terminal = screen(&mut app, 80, 24);
    // 12 MB in 3 s: 4 MB/s, and 48 MB to go take 12 s.
    assert!(text(&terminal).contains("ETA 00:12"), "{}", text(&terminal));
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn fetch_pane_done() {
    let mut app = app();
    run(
        &mut app,
        PaneId::Fetch,
        vec![output(PaneId::Fetch, Output::Fetched(lesson_dataset())), finished(PaneId::Fetch, Outcome::Done)],
    );
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn classes_pane() {
    let mut app = app();
    run(
        &mut app,
        PaneId::Classes,
        vec![output(PaneId::Classes, Output::Classes(classes_info())), finished(PaneId::Classes, Outcome::Done)],
    );
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn split_pane() {
    let mut app = app();
    run(
        &mut app,
        PaneId::Split,
        vec![output(PaneId::Split, Output::Split(split_info())), finished(PaneId::Split, Outcome::Done)],
    );
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn preview_pane() {
    let mut app = app();
    let tiles = (0..9).map(|i| (image(i), CLASSES[i as usize % 6].to_string())).collect();
    run(
        &mut app,
        PaneId::Preview,
        vec![
            output(
                PaneId::Preview,
                Output::Preview(PreviewInfo { view: PreviewView::Batch, seed: 0, window: Window::default(), tiles }),
            ),
            finished(PaneId::Preview, Outcome::Done),
        ],
    );
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn images_are_encoded_off_the_ui_thread_and_drawn_once_back() {
    let preview = || {
        let tiles = (0..9).map(|i| (image(i), CLASSES[i as usize % 6].to_string())).collect();
        output(
            PaneId::Preview,
            Output::Preview(PreviewInfo { view: PreviewView::Batch, seed: 0, window: Window::default(), tiles }),
        )
    };
    let mut inline = app();
    run(&mut inline, PaneId::Preview, vec![preview()]);
    let mut threaded = app();
    let (done, mut encoded) = tokio::sync::mpsc::unbounded_channel();
    threaded.encode_images_on_worker(done).unwrap();
    run(&mut threaded, PaneId::Preview, vec![preview()]);

    let before = text(&screen(&mut threaded, 80, 24));
    assert!(!before.contains(['▀', '▄']), "drawn before it was encoded:\n{before}");
    for _ in 0..9 {
        threaded.image_encoded(encoded.blocking_recv().unwrap());
    }
    assert_eq!(screen(&mut threaded, 80, 24).backend().buffer(), screen(&mut inline, 80, 24).backend().buffer());
    assert!(encoded.try_recv().is_err(), "a drawn image is not encoded again");
}

#[test]
fn learner_pane() {
    let mut app = app();
    run(
        &mut app,
        PaneId::Learner,
        vec![output(PaneId::Learner, Output::Learner(learner_info())), finished(PaneId::Learner, Outcome::Done)],
    );
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn train_pane_running() {
    let mut app = app();
    let mut messages =
        vec![output(PaneId::Train, Output::TrainHistory(Vec::new())), event(PaneId::Train, train_start(0, 3))];
    messages.extend(epoch_events(0, 0.9));
    messages.extend(epoch_events(1, 0.5));
    messages.push(event(PaneId::Train, batch(2, 1, 0.2)));
    run(&mut app, PaneId::Train, messages);
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn train_pane_wide_puts_table_and_chart_side_by_side() {
    let mut app = app();
    let mut messages = vec![event(PaneId::Train, train_start(0, 3))];
    messages.extend(epoch_events(0, 0.9));
    messages.extend(epoch_events(1, 0.5));
    messages.push(finished(PaneId::Train, Outcome::Cancelled));
    run(&mut app, PaneId::Train, messages);
    insta::assert_snapshot!(screen(&mut app, 140, 30).backend());
}

/// A finished (or failed) run of `arch` with one epoch per valid_loss.
fn made_up_run(name: &str, arch: &str, status: RunStatus, valid_losses: &[f64]) -> RunSummary {
    let rows: Vec<EpochRow> = valid_losses
        .iter()
        .enumerate()
        .map(|(epoch, loss)| match epoch_row(epoch, *loss) {
            Event::Epoch(row) => row,
            _ => unreachable!("epoch_row makes rows"),
        })
        .collect();
    let mut record = RunRecord { arch: Some(arch.into()), ..RunRecord::starting(name, serde_json::Value::Null) };
    record.end(status, None);
    let best = rows.iter().min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss)).cloned();
    RunSummary { record, rows, best }
}

/// Three runs, oldest first; `unfrozen`, the latest, is the current one.
fn made_up_runs() -> RunsListing {
    RunsListing {
        runs: vec![
            made_up_run("baseline", "resnet18", RunStatus::Finished, &[0.9, 0.6, 0.4]),
            made_up_run("lr-high", "resnet34", RunStatus::Failed, &[0.7, 0.9]),
            made_up_run("unfrozen", "resnet34", RunStatus::Finished, &[0.5, 0.3, 0.2, 0.1]),
        ],
        current: Some("unfrozen".into()),
    }
}

/// The Train pane's runs view, opened with `r` and fed `listing` as if read in the background.
fn runs_view(listing: RunsListing) -> App {
    let mut app = app();
    press(&mut app, "7");
    assert!(matches!(press(&mut app, "r"), Some(Action::ReadRuns)), "opening the view reads the runs");
    assert!(text(&screen(&mut app, 80, 24)).contains("reading the runs…"));
    app.apply(output(PaneId::Train, Output::Runs(Ok(listing))), Instant::now());
    app
}

#[test]
fn train_pane_runs_view() {
    let mut app = runs_view(made_up_runs());
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn the_runs_view_lists_the_runs_and_overlays_the_compared_ones_curves() {
    let mut app = runs_view(made_up_runs());
    let terminal = screen(&mut app, 130, 40);
    let shown = text(&terminal);
    // Listed as `mednist runs` lists them: the current one starred, the best epoch's figures.
    for cells in [
        ["baseline ", "finished", "resnet18", "3", "2", "0.400000", "0.040000"],
        ["lr-high ", "failed", "resnet34", "2", "0", "0.700000", "0.070000"],
        ["unfrozen*", "finished", "resnet34", "4", "3", "0.100000", "0.010000"],
    ] {
        let listed = format!("] {}", cells[0]);
        let line = shown.lines().find(|line| line.contains(&listed)).unwrap_or_else(|| panic!("{shown}"));
        let mut rest = line;
        for cell in cells {
            let at = rest.find(cell).unwrap_or_else(|| panic!("{cell} missing in order: {line}"));
            rest = &rest[at + cell.len()..];
        }
    }
    // The current run and the latest other one are compared at first, each with its marker.
    assert!(shown.contains("!mednist runs compare lr-high unfrozen"), "{shown}");
    assert!(shown.contains("3 run(s), 2 compared"), "{shown}");
    for legend in ["⣿ lr-high", "• unfrozen"] {
        assert_eq!(shown.matches(legend).count(), 2, "both charts name {legend}:\n{shown}");
    }
    assert!(!shown.contains("⣿ baseline") && !shown.contains("• baseline"), "{shown}");
    assert!(shown.contains("valid_loss") && shown.contains("error_rate") && shown.contains("epoch"), "{shown}");
    let braille = |cell: &&ratatui::buffer::Cell| cell.symbol().chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c));
    let theme = Theme::built_in("dark").unwrap();
    let lr_high_curve = terminal.backend().buffer().content.iter().filter(braille);
    assert!(
        lr_high_curve.filter(|cell| Some(cell.fg) == theme.series(0).fg).count() > 10,
        "lr-high's curve is drawn in its colour"
    );
    assert!(!shown.contains("⣿ valid_loss"), "no room for the epochs beside the charts and the lesson");
    // Without the lesson's note there is: unfrozen's 4th epoch, which lr-high does not have.
    press(&mut app, "l");
    let shown = text(&screen(&mut app, 130, 40));
    assert!(shown.contains("epoch ⣿ valid_loss ⣿ error_rate • valid_loss • error_rate"), "{shown}");
    let epoch_3 = shown.lines().find(|line| line.contains(" 3     -            -            0.100000     0.010000"));
    assert!(epoch_3.is_some(), "{shown}");
    for legend in ["⣿ lr-high", "• unfrozen"] {
        assert_eq!(shown.matches(legend).count(), 2, "both charts name {legend}:\n{shown}");
    }
    // The footer names the view's keys; the settings are not shown (↑ ↓ pick runs here).
    let footer = shown.lines().last().unwrap_or_default();
    assert!(footer.contains("Space compare") && footer.contains("r runs/live"), "{footer}");
    assert!(!shown.contains("max_lr") && !footer.contains("settings"), "{shown}");

    // r goes back to the live training, its settings and its keys.
    press(&mut app, "r");
    let live = text(&screen(&mut app, 130, 40));
    assert!(live.contains("max_lr") && live.contains("learn.fit_one_cycle(3, 1e-3)"), "{live}");
    assert!(!live.contains("unfrozen"), "{live}");
}

#[test]
fn space_puts_the_picked_run_in_or_out_of_the_comparison() {
    let mut app = runs_view(made_up_runs());
    let code = |app: &mut App| {
        let shown = text(&screen(app, 130, 40));
        let line = shown.lines().find(|line| line.contains("In [")).unwrap_or_default().to_string();
        line[line.find("!mednist").expect("the command")..].split("  ").next().unwrap().trim().to_string()
    };
    // The pick starts on the first run: Space compares baseline too.
    press(&mut app, " ");
    assert_eq!(code(&mut app), "!mednist runs compare baseline lr-high unfrozen");
    assert!(text(&screen(&mut app, 130, 40)).contains("⣿ baseline"), "the oldest takes the first marker");
    // ↓ to lr-high and out of the comparison; ↓ past the end stays on the last run.
    app.handle_key(key(KeyCode::Down));
    press(&mut app, " ");
    assert_eq!(code(&mut app), "!mednist runs compare baseline unfrozen");
    for _ in 0..5 {
        app.handle_key(key(KeyCode::Down));
    }
    press(&mut app, " ");
    assert_eq!(code(&mut app), "!mednist runs compare baseline");
    let shown = text(&screen(&mut app, 130, 40));
    assert!(!shown.contains("• unfrozen") && !shown.contains("⣿ unfrozen"), "{shown}");
    app.handle_key(key(KeyCode::Up));
    app.handle_key(key(KeyCode::Up));
    press(&mut app, " ");
    assert_eq!(code(&mut app), "!mednist runs", "none compared");
    assert!(text(&screen(&mut app, 130, 40)).contains("Space on a run compares its curves"));
    press(&mut app, " ");

    // Opened again, the runs are read again and what was compared stays so.
    press(&mut app, "r");
    assert!(matches!(press(&mut app, "r"), Some(Action::ReadRuns)));
    app.apply(output(PaneId::Train, Output::Runs(Ok(made_up_runs()))), Instant::now());
    assert_eq!(code(&mut app), "!mednist runs compare baseline");
    // The arrows picked runs, not settings; Enter still trains.
    press(&mut app, "r");
    assert!(matches!(app.handle_key(key(KeyCode::Enter)), Some(Action::Run(JobRequest::Train { epochs: 3, .. }))));
}

#[test]
fn the_runs_view_says_when_there_are_no_runs_or_they_cannot_be_read() {
    let mut app = runs_view(RunsListing { runs: Vec::new(), current: None });
    assert!(text(&screen(&mut app, 80, 24)).contains("no runs in this workspace yet"));
    press(&mut app, " ");
    assert!(app.notice().is_some_and(|notice| notice.contains("no run to compare yet")), "{:?}", app.notice());
    app.apply(output(PaneId::Train, Output::Runs(Err("runs/x/run.json is not valid".into()))), Instant::now());
    assert!(text(&screen(&mut app, 80, 24)).contains("cannot read the runs: runs/x/run.json is not valid"));
}

#[test]
fn the_runs_are_read_from_the_workspace_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Runs::open(&Workspace::at(dir.path()), &|_| {}).unwrap();
    for (name, losses) in [("first", [0.8, 0.4]), ("second", [0.6, 0.3])] {
        runs.create(Some(name)).unwrap();
        let mut record = RunRecord::starting(name, serde_json::Value::Null);
        record.end(RunStatus::Finished, None);
        runs.write_record(&record).unwrap();
        let rows = losses.iter().enumerate().map(|(epoch, loss)| epoch_row(epoch, *loss));
        event_log::write_all(&runs.run_dir(name).join(event_log::EVENTS_FILE), rows).unwrap();
        runs.set_current(name).unwrap();
    }
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    mednist::tui::jobs::runs::read_in_background(runs, sender).unwrap();
    let messages = receive_until(&mut receiver, |message| matches!(message, JobMessage::Output { .. }));
    let Some(JobMessage::Output { pane: PaneId::Train, output: Output::Runs(Ok(listing)) }) = messages.last() else {
        panic!("{messages:?}")
    };
    let names: Vec<&str> = listing.runs.iter().map(|run| run.record.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(listing.current.as_deref(), Some("second"));
    assert_eq!(listing.runs[1].best.as_ref().map(|row| row.valid_loss), Some(0.3));
    let mut app = runs_view(listing.clone());
    let shown = text(&screen(&mut app, 130, 40));
    assert!(shown.contains("!mednist runs compare first second") && shown.contains("0.300000"), "{shown}");
}

/// A 64x64 Grad-CAM map, hottest around a point that depends on `seed`.
fn heatmap(seed: u32) -> Heatmap {
    let (cx, cy) = (16.0 + (seed * 5 % 32) as f32, 40.0 - (seed * 3 % 24) as f32);
    let values = (0..64 * 64)
        .map(|at| {
            let (x, y) = ((at % 64) as f32, (at / 64) as f32);
            (1.0 - ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() / 64.0).max(0.0)
        })
        .collect();
    Heatmap { grid: 2, side: 64, values }
}

/// The made-up validation predictions, their images and the class names.
fn interpret_predictions() -> (Predictions, Vec<Item>, Vec<String>) {
    // Six classes, ten validation images each; a few mistakes, the worst first in `rows`.
    let mut log_probs = Vec::new();
    let mut labels = Vec::new();
    for class in 0..6 {
        for i in 0..10 {
            let predicted = match (class, i) {
                (0, 0..=2) => 3,
                (4, 0) => 0,
                _ => class,
            };
            let sure = if predicted == class { 0.9 } else { 0.6 - i as f32 * 0.1 };
            let row: Vec<f32> = (0..6)
                .map(|c| {
                    if c == predicted {
                        sure
                    } else if c == class {
                        0.05 + i as f32 * 0.01
                    } else {
                        0.01
                    }
                })
                .collect();
            let total: f32 = row.iter().sum();
            log_probs.extend(row.iter().map(|p| (p / total).ln()));
            labels.push(class);
        }
    }
    let predictions = Predictions { classes: 6, log_probs, labels, items: (0..60).collect() };
    let images: Vec<Item> = (0..60).map(|i| Item::new(format!("{}/{i:06}.jpeg", CLASSES[i / 10]), i / 10)).collect();
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    (predictions, images, classes)
}

fn interpret_info() -> InterpretInfo {
    let (predictions, items, classes) = interpret_predictions();
    let reliability = Reliability::new(&predictions);
    let evaluation = Evaluation {
        interpretation: Interpretation::new(&classes, &predictions, &items, 6, |item| item.path.clone()),
        metrics: ClinicalMetrics::new(&classes, &predictions, Bootstrap { resamples: 200, seed: 3 }),
        calibration: Calibration {
            temperature: None,
            fitted_now: false,
            ece: reliability.ece,
            bins: reliability.bins,
            uncalibrated: None,
        },
        tta: None,
        top_loss_cams: (0..6).map(heatmap).collect(),
    };
    let images = (0..6).map(|i| Some(image(i as u32))).collect();
    InterpretInfo { evaluation, images }
}

/// The app after an Interpret run on `interpret_info`.
fn interpreted() -> App {
    let mut app = app();
    run(
        &mut app,
        PaneId::Interpret,
        vec![
            output(PaneId::Interpret, Output::Interpret(Box::new(interpret_info()))),
            finished(PaneId::Interpret, Outcome::Done),
        ],
    );
    app
}

#[test]
fn interpret_pane() {
    let mut app = interpreted();
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn interpret_pane_wide_shows_fractions_beside_the_top_losses() {
    let mut app = interpreted();
    press(&mut app, "v");
    let screen = screen(&mut app, 130, 34);
    assert!(text(&screen).contains("fraction of each actual class"));
    insta::assert_snapshot!(screen.backend());
}

/// Cells drawn in a colour that is not a gray: red, green and blue apart.
fn coloured_cells(terminal: &Terminal<TestBackend>) -> usize {
    let colourful = |color: Color| matches!(color, Color::Rgb(r, g, b) if r.abs_diff(g) > 8 || g.abs_diff(b) > 8);
    terminal.backend().buffer().content.iter().filter(|cell| colourful(cell.fg) || colourful(cell.bg)).count()
}

#[test]
fn m_cycles_the_clinical_table_the_roc_curves_and_the_calibration() {
    let mut app = interpreted();
    let metrics = interpret_info().evaluation.metrics;
    let default = text(&screen(&mut app, 130, 40));
    assert!(default.contains("confusion matrix") && default.contains("most confused"), "{default}");

    press(&mut app, "m");
    let table = text(&screen(&mut app, 130, 40));
    assert!(table.contains("95% intervals from 200 bootstrap resamples"), "{table}");
    for name in ["sensitivity", "specificity", "PPV", "NPV", "AUC", "macro avg", "weighted avg"] {
        assert!(table.contains(name), "{name} missing:\n{table}");
    }
    let abdomen = &metrics.per_class[0];
    assert_eq!((abdomen.class.as_str(), abdomen.support), ("AbdomenCT", 10));
    // AbdomenCT is found 7 times in 10: its sensitivity and interval are on the screen.
    assert_eq!(abdomen.metrics.sensitivity.value_text(), "0.700");
    assert!(table.contains(&abdomen.metrics.sensitivity.interval_text()), "{table}");
    let weighted_auc = metrics.weighted_average.auc;
    assert!(table.contains(&weighted_auc.value_text()) && table.contains(&weighted_auc.interval_text()), "{table}");
    assert!(!table.contains("error_rate"), "one view at a time:\n{table}");

    press(&mut app, "m");
    let roc_screen = screen(&mut app, 130, 40);
    let roc = text(&roc_screen);
    assert!(roc.contains("ROC curves: each class against the rest") && roc.contains("chance"), "{roc}");
    for class in &metrics.per_class {
        let legend = format!("{} AUC {}", class.class, class.metrics.auc.value_text());
        assert!(roc.contains(&legend), "{legend} missing:\n{roc}");
    }
    let braille = |cell: &&ratatui::buffer::Cell| cell.symbol().chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c));
    let line_colours: std::collections::HashSet<Color> =
        roc_screen.backend().buffer().content.iter().filter(braille).map(|cell| cell.fg).collect();
    assert!(line_colours.len() >= 3, "the diagonal and the classes in colours of their own: {line_colours:?}");

    press(&mut app, "m");
    let calibration = text(&screen(&mut app, 130, 40));
    let ece = format!("ECE {:.4} over 15 bins", interpret_info().evaluation.calibration.ece);
    assert!(calibration.contains("reliability diagram") && calibration.contains(&ece), "{ece}:\n{calibration}");
    assert!(calibration.contains("perfect") && calibration.contains("accuracy"), "{calibration}");

    press(&mut app, "m");
    assert!(text(&screen(&mut app, 130, 40)).contains("learn.predict"));
    press(&mut app, "m");
    assert_eq!(text(&screen(&mut app, 130, 40)), default, "back to the matrix");
}

#[test]
fn c_shows_the_top_losses_grad_cam_in_colour_and_back() {
    let mut app = interpreted();
    let plain = screen(&mut app, 130, 40);
    assert!(text(&plain).contains('▀') || text(&plain).contains('▄'), "the top losses are drawn");
    assert_eq!(coloured_cells(&plain), 0, "the plain images are gray");
    press(&mut app, "c");
    let cams = screen(&mut app, 130, 40);
    assert!(coloured_cells(&cams) > 100, "the heatmaps are in colour: {}", coloured_cells(&cams));
    let captions = |terminal: &Terminal<TestBackend>| -> Vec<String> {
        text(terminal).lines().filter(|line| line.contains("ChestCT/Abdome")).map(String::from).collect()
    };
    assert_eq!((captions(&cams).len(), captions(&cams)), (2, captions(&plain)), "the same tiles and captions");
    press(&mut app, "c");
    assert_eq!(screen(&mut app, 130, 40).backend().buffer(), plain.backend().buffer());
}

#[test]
fn c_without_heatmaps_says_why() {
    let mut info = interpret_info();
    info.evaluation.top_loss_cams.clear();
    let mut app = app();
    run(&mut app, PaneId::Interpret, vec![output(PaneId::Interpret, Output::Interpret(Box::new(info)))]);
    press(&mut app, "c");
    assert!(app.notice().is_some_and(|notice| notice.contains("no Grad-CAM heatmaps")), "{:?}", app.notice());
    assert_eq!(coloured_cells(&screen(&mut app, 130, 40)), 0);
}

/// Types `path` into the Interpret pane's image file setting, in its Predict view.
fn type_image_file(app: &mut App, path: &str) {
    press(app, "8mmmm");
    app.handle_key(key(KeyCode::Down));
    press(app, "e");
    press(app, path);
    app.handle_key(key(KeyCode::Enter));
}

#[test]
fn the_predict_view_predicts_the_typed_file_and_shows_its_classes_and_grad_cam() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("hand.png");
    image(2).save(&file).unwrap();
    let mut app = app();
    type_image_file(&mut app, file.to_str().unwrap());
    let Some(Action::Run(JobRequest::Predict { file: asked, .. })) = app.handle_key(key(KeyCode::Enter)) else {
        panic!("no prediction asked for")
    };
    assert_eq!(asked, file);
    let classes = vec![("Hand".to_string(), 0.91), ("CXR".to_string(), 0.06), ("HeadCT".to_string(), 0.03)];
    let info = PredictInfo { file: file.clone(), frame: None, classes, image: image(2), heatmap: Some(heatmap(2)) };
    let now = Instant::now();
    app.apply(output(PaneId::Interpret, Output::Predicted(Box::new(info))), now);
    app.apply(finished(PaneId::Interpret, Outcome::Done), now);
    let predicted = screen(&mut app, 130, 40);
    let shown = text(&predicted);
    assert!(shown.contains(&format!("learn.predict: {}", file.display())), "{shown}");
    let hand = shown.lines().find(|line| line.contains("Hand ") && line.contains("0.9100")).expect("the top class");
    let cxr = shown.lines().find(|line| line.contains("CXR ") && line.contains("0.0600")).expect("the second");
    assert!(hand.matches('█').count() > 10 * cxr.matches('█').count().max(1), "bars as long as p:\n{hand}\n{cxr}");
    assert_eq!(coloured_cells(&predicted), 0);
    press(&mut app, "c");
    let cam = screen(&mut app, 130, 40);
    assert!(coloured_cells(&cam) > 100 && text(&cam).contains("Grad-CAM for Hand 0.9100"), "{}", text(&cam));
    press(&mut app, "m");
    assert!(matches!(app.handle_key(key(KeyCode::Enter)), Some(Action::Run(JobRequest::Interpret { .. }))));
}

#[test]
fn a_missing_image_file_is_refused_with_its_name() {
    let mut app = app();
    type_image_file(&mut app, "/no/such/scan.dcm");
    let shown = text(&screen(&mut app, 130, 40));
    assert!(shown.contains("image file: no file at /no/such/scan.dcm"), "{shown}");
    app.handle_key(key(KeyCode::Esc));
    assert!(app.handle_key(key(KeyCode::Enter)).is_none(), "the Predict view predicts nothing without a file");
    assert!(app.notice().is_some_and(|n| n.contains("image file: type the path")), "{:?}", app.notice());
}

fn lr_steps(count: usize) -> Vec<JobMessage> {
    let options = LrFindOptions { iterations: 40, ..LrFindOptions::default() };
    (0..count)
        .map(|i| {
            let lr = options.lr_at(i);
            // Flat, then falling from 1e-5, then blowing up past 1e-1.
            let x = lr.log10();
            let loss = if x < -5.0 {
                1.8
            } else if x < -1.5 {
                1.8 - (x + 5.0) * 0.45
            } else {
                0.2 + (x + 1.5) * 3.0
            };
            event(
                PaneId::LrFind,
                Event::LrFindStep(LrStep { iteration: i + 1, iterations: 40, lr, loss, smooth_loss: loss }),
            )
        })
        .collect()
}

/// What the finder makes of the sweep in `steps`.
fn lr_result(steps: &[JobMessage]) -> LrFindResult {
    let mut recorder =
        LrRecorder::new(LrFindOptions { iterations: 40, stop_on_divergence: false, ..LrFindOptions::default() });
    for message in steps {
        if let JobMessage::Event { event: Event::LrFindStep(step), .. } = message {
            recorder.record(step.lr, step.loss);
        }
    }
    recorder.finish()
}

#[test]
fn lr_find_pane() {
    let mut app = app();
    let mut messages = lr_steps(40);
    let result = lr_result(&messages);
    assert!(result.suggestions.is_some());
    messages.push(output(PaneId::LrFind, Output::LrFind(result)));
    messages.push(finished(PaneId::LrFind, Outcome::Done));
    run(&mut app, PaneId::LrFind, messages);
    let screen = screen(&mut app, 80, 24);
    assert!(text(&screen).contains("suggested max_lr: valley"));
    insta::assert_snapshot!(screen.backend());
}

#[test]
fn a_puts_the_suggested_rate_into_the_train_pane() {
    let mut app = app();
    press(&mut app, "9");
    assert!(press(&mut app, "a").is_none());
    assert!(app.notice().unwrap().contains("no suggestion yet"), "{:?}", app.notice());
    let result = lr_result(&lr_steps(40));
    let valley = result.suggestions.unwrap().valley.lr;
    run(
        &mut app,
        PaneId::LrFind,
        vec![output(PaneId::LrFind, Output::LrFind(result)), finished(PaneId::LrFind, Outcome::Done)],
    );
    press(&mut app, "a");
    assert_eq!(app.notice(), Some(format!("max_lr {valley:.1e} set in 7 Train").as_str()));
    press(&mut app, "7");
    let Some(Action::Run(JobRequest::Train { max_lr, .. })) = app.handle_key(key(KeyCode::Enter)) else {
        panic!("no training")
    };
    assert_eq!(max_lr.per_group(2), vec![format!("{valley:.1e}").parse::<f64>().unwrap(); 2]);
}

#[test]
fn the_lr_find_curve_grows_as_steps_arrive_and_a_new_sweep_starts_over() {
    let mut app = app();
    run(&mut app, PaneId::LrFind, lr_steps(10));
    assert_eq!(app.panes.lr_find.curve().len(), 10);
    assert!(app.panes.lr_find.result().is_none());
    assert!(text(&screen(&mut app, 80, 24)).contains("10 batches so far"));
    let now = Instant::now();
    for message in lr_steps(15).into_iter().skip(10) {
        app.apply(message, now);
    }
    assert_eq!(app.panes.lr_find.curve().len(), 15);
    app.apply(finished(PaneId::LrFind, Outcome::Cancelled), now);
    run(&mut app, PaneId::LrFind, lr_steps(3));
    assert_eq!(app.panes.lr_find.curve().len(), 3, "a new sweep starts a new curve");
}

#[test]
fn u_freezes_or_unfreezes_the_open_learner() {
    let mut app = app();
    press(&mut app, "6");
    assert!(press(&mut app, "u").is_none());
    assert!(app.notice().unwrap().contains("open the learner first"), "{:?}", app.notice());
    run(
        &mut app,
        PaneId::Learner,
        vec![output(PaneId::Learner, Output::Learner(learner_info())), finished(PaneId::Learner, Outcome::Done)],
    );
    let Some(Action::Run(JobRequest::SetFrozen { frozen, .. })) = press(&mut app, "u") else {
        panic!("no freeze request")
    };
    assert!(frozen, "the open learner is unfrozen, so u freezes it");
}

#[test]
fn the_pretrained_setting_reaches_the_learner_options() {
    let mut app = app();
    press(&mut app, "6");
    for _ in 0..4 {
        app.handle_key(key(KeyCode::Down));
    }
    app.handle_key(key(KeyCode::Right)); // none -> imagenet
    let Some(Action::Run(JobRequest::Learner(open))) = app.handle_key(key(KeyCode::Enter)) else {
        panic!("no learner request")
    };
    assert_eq!(open.pretrained, Some(Pretrained::Imagenet));
    app.apply(finished(PaneId::Learner, Outcome::Done), Instant::now());
    press(&mut app, "e");
    for _ in 0.."imagenet".len() {
        app.handle_key(key(KeyCode::Backspace));
    }
    press(&mut app, "/weights/r34.pth");
    app.handle_key(key(KeyCode::Enter));
    let Some(Action::Run(JobRequest::Interpret { open, top })) = ({
        press(&mut app, "8");
        app.handle_key(key(KeyCode::Enter))
    }) else {
        panic!("no interpret request")
    };
    assert_eq!(open.pretrained, Some(Pretrained::File("/weights/r34.pth".into())));
    assert_eq!(top, 9);
}

#[test]
fn help_overlay_lists_every_key() {
    let mut app = app();
    press(&mut app, "?");
    assert_eq!(app.overlay(), Some(Overlay::Help));
    let terminal = screen(&mut app, 80, 24);
    let shown = text(&terminal);
    let pane_keys = PaneId::ALL.iter().flat_map(|id| app.panes.get(*id).help_keys().iter());
    for key in keys::APP.iter().chain(keys::FORM).chain(keys::EDITING).chain(pane_keys) {
        assert!(
            shown.contains(key.label) && shown.contains(key.help),
            "help lacks {} ({}):\n{shown}",
            key.label,
            key.help
        );
    }
    // Train's runs view has keys of its own, listed whichever view is shown.
    for row in [" r            Train: the live training", " ↑  ↓         Train: in the runs", " Space        Train"]
    {
        assert!(shown.contains(row), "{row} missing:\n{shown}");
    }
    insta::assert_snapshot!(terminal.backend());
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.overlay(), None);
}

#[test]
fn the_footer_names_the_pane_s_own_keys_and_keeps_quit_and_help_when_narrow() {
    let mut app = app();
    press(&mut app, "5");
    let footer = |app: &mut App, width| text(&screen(app, width, 24)).lines().last().unwrap_or_default().to_string();
    let wide = footer(&mut app, 130);
    assert!(wide.contains("n new sample") && wide.contains("Enter run") && wide.contains("l lesson"), "{wide}");
    assert!(wide.contains("e type"), "the Preview pane's window is typed: {wide}");
    press(&mut app, "1");
    let setup = footer(&mut app, 130);
    assert!(!setup.contains("e type") && !setup.contains("n new sample"), "Setup has no settings: {setup}");
    press(&mut app, "5");
    let narrow = footer(&mut app, 60);
    assert!(narrow.contains("q quit") && narrow.contains("? keys"), "{narrow}");
    press(&mut app, "9");
    assert!(footer(&mut app, 130).contains("a use suggestion"));
}

/// Lines of `screen` that are lesson prose: inside the note's box, and words of `note`.
fn prose_lines(screen: &str, note: &str) -> usize {
    // TestBackend quotes each row; quotes are dropped from the note alike, box lines too.
    let words = |text: &str| {
        let kept: String =
            text.chars().map(|c| if c == '"' || ('\u{2500}'..='\u{257f}').contains(&c) { ' ' } else { c }).collect();
        kept.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let note = words(note);
    screen.lines().map(words).filter(|line| line.len() > 30 && note.contains(line.as_str())).count()
}

#[test]
fn every_step_shows_its_lesson_note_at_130x40_before_it_runs() {
    let mut app = app();
    for id in PaneId::ALL {
        press(&mut app, &id.number().to_string());
        let shown = text(&screen(&mut app, 130, 40));
        let lines = prose_lines(&shown, &lesson::note(id));
        assert!(lines >= 4, "{}: {lines} lines of the lesson shown:\n{shown}", id.title());
        assert!(shown.contains("the lesson · l hides"), "{shown}");
    }
}

#[test]
fn l_hides_the_note_where_it_fits_and_opens_it_where_it_does_not() {
    let mut app = app();
    press(&mut app, "7");
    let note = &lesson::note(PaneId::Train);
    assert!(prose_lines(&text(&screen(&mut app, 130, 40)), note) >= 4);
    press(&mut app, "l");
    assert_eq!(prose_lines(&text(&screen(&mut app, 130, 40)), note), 0, "l hides the note");
    press(&mut app, "l");
    assert!(prose_lines(&text(&screen(&mut app, 130, 40)), note) >= 4, "l shows it again");

    // At 80x24 there is no room below the cell: l opens the note over the screen.
    assert_eq!(prose_lines(&text(&screen(&mut app, 80, 24)), note), 0);
    press(&mut app, "l");
    assert_eq!(app.overlay(), Some(Overlay::Lesson));
    let terminal = screen(&mut app, 80, 24);
    assert!(prose_lines(&text(&terminal), note) >= 10, "{}", text(&terminal));
    insta::assert_snapshot!(terminal.backend());
    press(&mut app, "l");
    assert_eq!(app.overlay(), None);
}

#[test]
fn leaving_without_being_asked_waits_for_the_running_step() {
    let mut app = app();
    press(&mut app, "3");
    assert!(matches!(app.handle_key(key(KeyCode::Enter)), Some(Action::Run(JobRequest::Classes(_)))));
    app.shut_down();
    assert!(!app.should_exit(), "the step still runs");
    assert!(press(&mut app, "4").is_none(), "keys are ignored once leaving");
    assert_eq!(app.active(), PaneId::Classes);
    app.apply(finished(PaneId::Classes, Outcome::Cancelled), Instant::now());
    assert!(app.should_exit());
}

// The update logic, driven by keys and made-up events.

#[test]
fn number_keys_switch_panes_and_enter_runs_the_shown_one() {
    let mut app = app();
    assert_eq!(app.active(), PaneId::Setup);
    for id in PaneId::ALL {
        press(&mut app, &id.number().to_string());
        assert_eq!(app.active(), id);
    }
    press(&mut app, "3");
    assert!(matches!(app.handle_key(key(KeyCode::Enter)), Some(Action::Run(JobRequest::Classes(_)))));
    assert_eq!(app.running(), Some(PaneId::Classes));
    assert_eq!(app.panes.get(PaneId::Classes).cell().execution, Some(1));
}

#[test]
fn run_counters_count_app_wide_and_reruns_take_a_new_number() {
    let mut app = app();
    for (id, expected) in [(PaneId::Setup, 1), (PaneId::Classes, 2), (PaneId::Setup, 3)] {
        run(&mut app, id, vec![finished(id, Outcome::Done)]);
        assert_eq!(app.panes.get(id).cell().execution, Some(expected));
        assert_eq!(app.panes.get(id).cell().status, Status::Done);
    }
    let sidebar = text(&screen(&mut app, 80, 24));
    assert!(sidebar.contains("1 Setup") && sidebar.contains("[3]✓"), "{sidebar}");
    assert!(sidebar.contains("[2]✓"), "{sidebar}");
}

#[test]
fn settings_change_with_arrows_and_typing_and_reach_the_request() {
    let mut app = app();
    press(&mut app, "4");
    app.handle_key(key(KeyCode::Right)); // valid % 20 -> 25
    app.handle_key(key(KeyCode::Down));
    press(&mut app, "e"); // seed: type 7 over 42
    app.handle_key(key(KeyCode::Backspace));
    app.handle_key(key(KeyCode::Backspace));
    press(&mut app, "7");
    assert_eq!(app.active(), PaneId::Split, "digits typed into a field do not switch panes");
    app.handle_key(key(KeyCode::Enter));
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Right)); // stratify
    let Some(Action::Run(JobRequest::Split(options))) = app.handle_key(key(KeyCode::Enter)) else { panic!("no split") };
    assert_eq!(options, SplitOptions { valid_pct: 0.25, seed: 7, stratify: true, group: None });
    app.apply(finished(PaneId::Split, Outcome::Done), Instant::now());
    app.handle_key(key(KeyCode::Down));
    for (presses, group) in [(1, GroupBy::Patient), (1, GroupBy::Study), (1, GroupBy::None)] {
        for _ in 0..presses {
            app.handle_key(key(KeyCode::Right));
        }
        let Some(Action::Run(JobRequest::Split(options))) = app.handle_key(key(KeyCode::Enter)) else { panic!() };
        assert_eq!(options.group, Some(group));
        app.apply(finished(PaneId::Split, Outcome::Done), Instant::now());
    }
}

#[test]
fn a_grouped_split_says_how_many_patients_each_side_has() {
    let mut app = app();
    let info = SplitInfo { group: GroupBy::Patient, groups: ClassCounts { train: 41, valid: 10 }, ..split_info() };
    run(
        &mut app,
        PaneId::Split,
        vec![output(PaneId::Split, Output::Split(info)), finished(PaneId::Split, Outcome::Done)],
    );
    let screen = text(&screen(&mut app, 130, 40));
    assert!(screen.contains("whole patients on one side: 41 train, 10 valid"), "{screen}");
}

/// A class of 16-bit CT in DICOM, as the scan reports it.
fn dicom_class() -> ClassSummary {
    ClassSummary {
        name: "HeadCT".into(),
        images: 40,
        formats: BTreeMap::from([("dicom".to_string(), 40)]),
        sizes: BTreeMap::from([("512x512".to_string(), 40)]),
        modes: BTreeMap::from([("gray16".to_string(), 40)]),
        windows: BTreeMap::from([("file".to_string(), 30), ("minmax".to_string(), 10)]),
        dicom: DicomSummary {
            modalities: BTreeMap::from([("CT".to_string(), 40)]),
            transfer_syntaxes: BTreeMap::from([("Explicit VR Little Endian".to_string(), 40)]),
            bits_stored: BTreeMap::from([(12, 40)]),
            photometric_interpretations: BTreeMap::from([("MONOCHROME2".to_string(), 40)]),
            frames: BTreeMap::from([(1, 10), (3, 10)]),
            with_patient: 40,
        },
    }
}

#[test]
fn classes_pane_shows_what_dicom_pixels_are_and_records_the_window_chosen() {
    let mut app = app();
    let lungs: Window = "lungs".parse().unwrap();
    let recorded = DatasetSettings { window: lungs, frames: Frames::Middle };
    app.apply(output(PaneId::Classes, Output::DatasetSettings(recorded)), Instant::now());
    let info = ClassesInfo {
        classes: vec![dicom_class()],
        thumbnails: vec![Some(image(0))],
        unreadable: vec![UnreadableFile { path: "HeadCT/a/b.dcm".into(), reason: "no pixel data: SR document".into() }],
        unreadable_count: 5,
        settings: recorded,
        ..classes_info()
    };
    run(
        &mut app,
        PaneId::Classes,
        vec![output(PaneId::Classes, Output::Classes(info)), finished(PaneId::Classes, Outcome::Done)],
    );
    let shown = text(&screen(&mut app, 130, 40));
    assert!(
        shown.contains("HeadCT       CT, 12 bits, MONOCHROME2, 10 multi-frame file(s), window file (30), minmax (10)"),
        "{shown}"
    );
    assert!(shown.contains("HeadCT/a/b.dcm: no pixel data: SR document") && shown.contains("and 4 more"), "{shown}");
    assert!(shown.contains("window") && shown.contains("lungs") && shown.contains("middle frame"), "{shown}");

    // ←/→ step through the offered windows; the run asks for the one shown.
    app.handle_key(key(KeyCode::Right));
    let Some(Action::Run(JobRequest::Classes(settings))) = app.handle_key(key(KeyCode::Enter)) else { panic!() };
    assert_eq!(settings, DatasetSettings { window: "mediastinum".parse().unwrap(), frames: Frames::Middle });
    app.apply(finished(PaneId::Classes, Outcome::Done), Instant::now());

    // A typed window is checked; a bad one is refused naming the presets.
    press(&mut app, "e");
    for _ in 0.."mediastinum".len() {
        app.handle_key(key(KeyCode::Backspace));
    }
    press(&mut app, "bone");
    app.handle_key(key(KeyCode::Enter));
    let refused = text(&screen(&mut app, 130, 40));
    assert!(refused.contains("window \"bone\""), "{refused}");
    app.handle_key(key(KeyCode::Esc));
    press(&mut app, "e");
    for _ in 0.."mediastinum".len() {
        app.handle_key(key(KeyCode::Backspace));
    }
    press(&mut app, "40,400");
    app.handle_key(key(KeyCode::Enter));
    let Some(Action::Run(JobRequest::Classes(settings))) = app.handle_key(key(KeyCode::Enter)) else { panic!() };
    assert_eq!(settings.window, Window::Custom { level: 40.0, width: 400.0 });
}

#[test]
fn the_recorded_window_reaches_the_preview_and_its_run() {
    let mut app = app();
    let brain: Window = "brain".parse().unwrap();
    app.apply(
        output(PaneId::Preview, Output::DatasetSettings(DatasetSettings { window: brain, ..Default::default() })),
        Instant::now(),
    );
    press(&mut app, "5");
    let Some(Action::Run(JobRequest::Preview { window, .. })) = press(&mut app, "n") else { panic!("no preview") };
    assert_eq!(window, brain);
}

#[test]
fn a_bad_typed_value_is_refused_with_the_reason_and_esc_keeps_the_old_one() {
    let mut app = app();
    press(&mut app, "7");
    app.handle_key(key(KeyCode::Down)); // max_lr
    press(&mut app, "e");
    for _ in 0.."1e-3".len() {
        app.handle_key(key(KeyCode::Backspace));
    }
    press(&mut app, "fast");
    app.handle_key(key(KeyCode::Enter));
    let shown = text(&screen(&mut app, 80, 24));
    assert!(shown.contains("max_lr: 'fast' is not a positive learning rate"), "{shown}");
    app.handle_key(key(KeyCode::Esc));
    let Some(Action::Run(JobRequest::Train { max_lr, epochs, .. })) = app.handle_key(key(KeyCode::Enter)) else {
        panic!("no training")
    };
    assert_eq!((max_lr.to_string(), epochs), ("1e-3".to_string(), 3));
}

#[test]
fn the_learner_settings_feed_the_training_request() {
    let mut app = app();
    press(&mut app, "6");
    app.handle_key(key(KeyCode::Left)); // resnet34 -> resnet18
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Left)); // batch size 64 -> 32
    press(&mut app, "7");
    app.handle_key(key(KeyCode::Left)); // 3 -> 2 epochs
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Right)); // max_lr 1e-3 -> 2e-3
    let Some(Action::Run(JobRequest::Train { open, epochs, max_lr })) = app.handle_key(key(KeyCode::Enter)) else {
        panic!("no training")
    };
    assert_eq!((open.arch, open.fresh, open.settings.batch_size), (Some(Arch::Resnet18), false, 32));
    assert_eq!((epochs, max_lr.to_string()), (2, "2e-3".to_string()));
}

#[test]
fn one_step_runs_at_a_time() {
    let mut app = app();
    run(&mut app, PaneId::Setup, Vec::new());
    press(&mut app, "3");
    assert!(app.handle_key(key(KeyCode::Enter)).is_none());
    assert!(app.notice().unwrap().contains("Setup is running"), "{:?}", app.notice());
    assert_eq!(app.panes.get(PaneId::Classes).cell().status, Status::NotRun);
}

#[test]
fn the_training_table_and_chart_grow_as_events_arrive() {
    let mut app = app();
    run(
        &mut app,
        PaneId::Train,
        vec![output(PaneId::Train, Output::TrainHistory(Vec::new())), event(PaneId::Train, train_start(0, 2))],
    );
    let now = Instant::now();
    let train = |app: &App| (app.panes.train.rows().len(), app.panes.train.batch_losses().len());
    assert_eq!(train(&app), (0, 0));
    for (index, message) in epoch_events(0, 0.8).into_iter().enumerate() {
        app.apply(message, now);
        assert_eq!(train(&app), (usize::from(index == 4), (index + 1).min(4)));
    }
    for message in epoch_events(1, 0.4) {
        app.apply(message, now);
    }
    assert_eq!(train(&app), (2, 8));
    let shown = text(&screen(&mut app, 80, 24));
    assert!(shown.contains("epoch  train_loss  valid_loss  error_rate   time"), "{shown}");
    assert!(shown.contains("    1    0.500000    0.400000    0.040000  00:12"), "{shown}");
    app.apply(event(PaneId::Train, Event::TrainFinished { epochs: 2 }), now);
    app.apply(finished(PaneId::Train, Outcome::Done), now);
    assert_eq!(app.panes.get(PaneId::Train).cell().status, Status::Done);
}

#[test]
fn running_training_again_continues_the_table_and_drops_the_interrupted_epoch() {
    let mut app = app();
    let mut messages = vec![event(PaneId::Train, train_start(0, 2))];
    messages.extend(epoch_events(0, 0.8));
    messages.push(event(PaneId::Train, batch(1, 1, 0.3)));
    messages.push(event(PaneId::Train, Event::TrainCancelled { completed_epochs: 1 }));
    messages.push(finished(PaneId::Train, Outcome::Cancelled));
    run(&mut app, PaneId::Train, messages);
    assert_eq!(app.panes.get(PaneId::Train).cell().status, Status::Cancelled);
    assert_eq!(app.panes.train.batch_losses().len(), 5);

    let history = match epoch_row(0, 0.8) {
        Event::Epoch(row) => vec![row],
        _ => unreachable!(),
    };
    run(
        &mut app,
        PaneId::Train,
        vec![output(PaneId::Train, Output::TrainHistory(history)), event(PaneId::Train, train_start(1, 2))],
    );
    assert_eq!(app.panes.train.rows().len(), 1);
    assert_eq!(app.panes.train.batch_losses().len(), 4, "the interrupted epoch's batch is trained again");
    app.apply(event(PaneId::Train, batch(1, 1, 0.25)), Instant::now());
    assert_eq!(app.panes.train.batch_losses().len(), 5);
}

#[test]
fn a_failure_shows_in_its_pane_and_the_sidebar() {
    let mut app = app();
    let message = "the training loss became NaN at epoch 0, batch 3: try a smaller --max-lr";
    let mut messages = vec![event(PaneId::Train, train_start(0, 1))];
    messages.push(event(PaneId::Train, batch(0, 1, 0.9)));
    messages.push(finished(PaneId::Train, Outcome::Failed(message.into())));
    run(&mut app, PaneId::Train, messages);
    assert_eq!(app.panes.get(PaneId::Train).cell().status, Status::Failed(message.into()));
    assert_eq!(app.running(), None);
    let terminal = screen(&mut app, 80, 24);
    let shown = text(&terminal);
    assert!(
        shown.contains("the training loss became NaN") && shown.contains("failed") && shown.contains("[1]✗"),
        "{shown}"
    );
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn esc_stops_the_running_step() {
    let mut app = app();
    run(&mut app, PaneId::Fetch, Vec::new());
    press(&mut app, "1");
    assert!(matches!(app.handle_key(key(KeyCode::Esc)), Some(Action::Cancel)), "Esc works from any pane");
    app.apply(finished(PaneId::Fetch, Outcome::Cancelled), Instant::now());
    assert_eq!(app.panes.get(PaneId::Fetch).cell().status, Status::Cancelled);
    assert!(app.handle_key(key(KeyCode::Esc)).is_none(), "nothing left to stop");
}

#[test]
fn quitting_asks_first_while_a_step_runs_and_waits_for_it_to_stop() {
    let mut app = app();
    run(&mut app, PaneId::Classes, Vec::new());
    assert!(press(&mut app, "q").is_none());
    assert_eq!(app.overlay(), Some(Overlay::ConfirmQuit));
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
    assert!(press(&mut app, "n").is_none(), "n keeps going");
    assert_eq!(app.overlay(), None);
    press(&mut app, "q");
    assert!(press(&mut app, "d").is_none(), "d is the training prompt's, not this one's");
    assert!(matches!(press(&mut app, "y"), Some(Action::Cancel)));
    assert!(!app.should_exit(), "the step still finishing");
    assert!(press(&mut app, "3").is_none(), "keys wait while stopping");
    app.apply(finished(PaneId::Classes, Outcome::Cancelled), Instant::now());
    assert!(app.should_exit());
    assert_eq!(app.after_exit(), AfterExit::Nothing);
}

fn continuation() -> Continuation {
    Continuation { run: "2026-12-03-1051-07".into(), flags: vec!["--epochs=3".into(), "--bs=16".into()] }
}

#[test]
fn q_while_training_offers_to_stop_or_to_continue_in_the_background() {
    let mut app = app();
    run(&mut app, PaneId::Train, vec![event(PaneId::Train, train_start(0, 3))]);
    assert!(press(&mut app, "q").is_none());
    assert_eq!(app.overlay(), Some(Overlay::ConfirmQuit));
    let terminal = screen(&mut app, 80, 24);
    let prompt = text(&terminal);
    assert!(prompt.contains("Train is training. Quit how?") && prompt.contains("keep training in the background"));
    insta::assert_snapshot!(terminal.backend());
    assert!(app.handle_key(key(KeyCode::Esc)).is_none());
    assert_eq!(app.overlay(), None, "Esc dismisses the prompt");
    assert!(!app.should_exit() && app.running() == Some(PaneId::Train), "and the training goes on");

    // d: stop here after the batch, then continue in the background.
    press(&mut app, "q");
    assert!(matches!(press(&mut app, "d"), Some(Action::Cancel)));
    assert!(text(&screen(&mut app, 80, 24)).contains("then it continues in the background"));
    assert!(!app.should_exit(), "waits for the batch");
    app.apply(output(PaneId::Train, Output::Continuable(continuation())), Instant::now());
    app.apply(finished(PaneId::Train, Outcome::Cancelled), Instant::now());
    assert!(app.should_exit());
    assert_eq!(app.after_exit(), AfterExit::ContinueInBackground(continuation()));

    // s: stop after the batch and quit; nothing continues.
    let mut app = self::app();
    run(&mut app, PaneId::Train, vec![event(PaneId::Train, train_start(0, 3))]);
    press(&mut app, "q");
    assert!(matches!(press(&mut app, "s"), Some(Action::Cancel)));
    app.apply(output(PaneId::Train, Output::Continuable(continuation())), Instant::now());
    app.apply(finished(PaneId::Train, Outcome::Cancelled), Instant::now());
    assert!(app.should_exit());
    assert_eq!(app.after_exit(), AfterExit::Nothing);

    // d, but the fit finished its cycle with that batch: there is nothing to continue.
    let mut app = self::app();
    run(&mut app, PaneId::Train, vec![event(PaneId::Train, train_start(0, 3))]);
    press(&mut app, "q");
    press(&mut app, "d");
    app.apply(finished(PaneId::Train, Outcome::Done), Instant::now());
    assert_eq!(app.after_exit(), AfterExit::NothingToContinue);
}

/// A live process that is not this one, to stand for a detached training; killed when dropped.
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The messages `receiver` gets until `done` says the last one has come (10 s at most).
fn receive_until(
    receiver: &mut tokio::sync::mpsc::UnboundedReceiver<JobMessage>,
    done: impl Fn(&JobMessage) -> bool,
) -> Vec<JobMessage> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut messages = Vec::new();
    loop {
        match receiver.try_recv() {
            Ok(message) => {
                let last = done(&message);
                messages.push(message);
                if last {
                    return messages;
                }
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "still waiting after {} messages", messages.len());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn is_row(message: &JobMessage, epoch: usize) -> bool {
    matches!(message, JobMessage::Event { event: Event::Epoch(row), .. } if row.epoch == epoch)
}

#[test]
fn the_train_pane_follows_a_detached_run_from_its_event_log_and_esc_asks_it_to_stop() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Runs::open(&Workspace::at(dir.path()), &|_| {}).unwrap();
    runs.create(Some("night")).unwrap();
    let sleeper = Sleeper(std::process::Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.0.id();
    let settings = serde_json::json!({ "command": ["train", "--detached-run", "night"] });
    runs.write_record(&RunRecord { pid: Some(pid), ..RunRecord::starting("night", settings) }).unwrap();
    let (mut lock, _) = runs.lock().unwrap();
    lock.set_run("night").unwrap();
    lock.hand_over(pid).unwrap();
    let events = runs.run_dir("night").join(event_log::EVENTS_FILE);
    let mut first_epoch = vec![train_start(0, 3)];
    first_epoch.extend((1..=4).map(|b| batch(0, b, 1.0 / b as f64)));
    first_epoch.push(epoch_row(0, 0.5));
    event_log::write_all(&events, first_epoch).unwrap();

    let run = attach::find(&runs).expect("the sleeper holds the workspace");
    assert_eq!(run.describe(), format!("run night, pid {pid}, detached"));
    let mut app = app();
    app.attach(run.clone());
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    attach::follow(runs.clone(), run, sender).unwrap();
    for message in receive_until(&mut receiver, |message| is_row(message, 0)) {
        app.apply(message, Instant::now());
    }
    press(&mut app, "7");
    let shown = text(&screen(&mut app, 100, 30));
    assert!(shown.contains(&format!("attached to run night, pid {pid}, detached")), "{shown}");
    assert!(shown.contains("    0    1.000000    0.500000"), "the row so far: {shown}");
    assert_eq!(app.panes.train.rows().len(), 1);

    // The run goes on: a batch of the next epoch, then its row.
    let log = EventLog::append(&events, &|_| {}, CancelToken::new()).unwrap();
    log.emit(batch(1, 2, 0.25));
    assert!(log.close().is_none());
    for message in receive_until(&mut receiver, |message| matches!(message, JobMessage::Event { .. })) {
        app.apply(message, Instant::now());
    }
    assert!(text(&screen(&mut app, 100, 30)).contains("epoch 1 · batch 2/4"), "the batch progress");
    log.emit(epoch_row(1, 0.25));
    for message in receive_until(&mut receiver, |message| is_row(message, 1)) {
        app.apply(message, Instant::now());
    }
    assert_eq!(app.panes.train.rows().len(), 2);

    // Esc asks the run's process to stop (once), and a new training is refused meanwhile.
    assert!(matches!(app.handle_key(key(KeyCode::Esc)), Some(Action::StopOtherRun(p)) if p == pid));
    assert!(app.handle_key(key(KeyCode::Esc)).is_none(), "asked once");
    assert!(app.handle_key(key(KeyCode::Enter)).is_none());
    assert!(app.notice().is_some_and(|notice| notice.contains(&format!("run night, pid {pid}"))), "{:?}", app.notice());
    // The run stops after its batch, as a detached training does on SIGINT.
    log.emit(Event::TrainCancelled { completed_epochs: 2 });
    assert!(log.close().is_none());
    runs.update("night", |record| record.end(RunStatus::Stopped, None)).unwrap();
    let finished = |message: &JobMessage| matches!(message, JobMessage::Finished { .. });
    let messages = receive_until(&mut receiver, finished);
    assert!(matches!(messages.last(), Some(JobMessage::Finished { outcome: Outcome::Cancelled, .. })), "{messages:?}");
    for message in messages {
        app.apply(message, Instant::now());
    }
    assert_eq!(app.panes.get(PaneId::Train).cell().status, Status::Cancelled);
    assert_eq!(app.attached(), None);
    let shown = text(&screen(&mut app, 100, 30));
    assert!(shown.contains(&format!("attached to run night, pid {pid}, detached · stopped")), "{shown}");
    assert!(matches!(app.handle_key(key(KeyCode::Enter)), Some(Action::Run(JobRequest::Train { .. }))), "free again");
}

#[test]
fn showing_the_train_pane_looks_for_another_process_s_training() {
    let mut app = app();
    assert!(matches!(press(&mut app, "7"), Some(Action::LookForOtherRun)));
    assert!(press(&mut app, "6").is_none());
    run(&mut app, PaneId::Train, Vec::new());
    assert!(press(&mut app, "7").is_none(), "not while the app trains itself");
}

#[test]
fn q_quits_at_once_when_idle_and_ctrl_c_always() {
    let mut app = app();
    assert!(matches!(press(&mut app, "q"), Some(Action::Quit)));
    run(&mut app, PaneId::Train, Vec::new());
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(matches!(app.handle_key(ctrl_c), Some(Action::Quit)));
}

#[test]
fn preview_n_draws_a_new_sample_each_time() {
    let mut app = app();
    press(&mut app, "5");
    let mut seeds = Vec::new();
    for _ in 0..2 {
        let Some(Action::Run(JobRequest::Preview { view, seed, .. })) = press(&mut app, "n") else {
            panic!("no preview")
        };
        assert_eq!(view, PreviewView::Batch);
        seeds.push(seed);
        app.apply(finished(PaneId::Preview, Outcome::Done), Instant::now());
    }
    assert_ne!(seeds[0], seeds[1]);
    app.handle_key(key(KeyCode::Right));
    let Some(Action::Run(JobRequest::Preview { view, .. })) = app.handle_key(key(KeyCode::Enter)) else { panic!() };
    assert_eq!(view, PreviewView::Augmentations);
}

#[test]
fn switching_panes_and_resizing_clear_the_screen_once() {
    let mut app = app();
    assert!(!app.take_needs_clear());
    press(&mut app, "5");
    assert!(app.take_needs_clear(), "old images must not stay behind");
    assert!(!app.take_needs_clear());
    press(&mut app, "5");
    assert!(!app.take_needs_clear(), "same pane, nothing to clear");
    app.resized();
    assert!(app.take_needs_clear());
}

#[test]
fn progress_rate_and_eta_come_from_the_event_times() {
    let mut app = app();
    run(&mut app, PaneId::Classes, Vec::new());
    let start = Instant::now();
    let total = Some(1000);
    app.apply(event(PaneId::Classes, Event::StageStarted { stage: Stage::Scan, total }), start);
    app.apply(
        event(PaneId::Classes, Event::Progress { stage: Stage::Scan, done: 250, total }),
        start + Duration::from_secs(5),
    );
    let stage = app.panes.get(PaneId::Classes).cell().stage.clone().unwrap();
    assert_eq!(stage.rate(), Some(50.0));
    assert_eq!(stage.eta_seconds(), Some(15.0));
    let shown = text(&screen(&mut app, 80, 24));
    assert!(shown.contains("scanning 250 / 1,000 · 50/s · ETA 00:15"), "{shown}");
    app.apply(event(PaneId::Classes, Event::StageFinished { stage: Stage::Scan }), start);
    assert!(app.panes.get(PaneId::Classes).cell().stage.is_none());
}

#[test]
fn fits_in_80x24_and_survives_tiny_terminals() {
    let mut app = app();
    run(&mut app, PaneId::Classes, vec![output(PaneId::Classes, Output::Classes(classes_info()))]);
    for (width, height) in [(80, 24), (40, 10), (20, 5), (1, 1), (0, 0)] {
        screen(&mut app, width, height);
    }
}

// Themes.

#[test]
fn a_broken_theme_file_names_the_key() {
    let dark = mednist::render::theme::BUILT_IN[0].1;
    let cases = [
        (dark.replace("accent = \"cyan\"", "accent = \"blurple\""), "accent", "\"blurple\" is not a colour"),
        (dark.replace("accent = \"cyan\"\n", ""), "accent", "missing field"),
        (dark.replace("accent = ", "acent = "), "acent", "unknown field"),
    ];
    for (text, key, why) in cases {
        let error = format!("{:#}", Theme::parse("mine.toml", &text).unwrap_err());
        assert!(error.contains("mine.toml") && error.contains(key) && error.contains(why), "{error}");
    }
}

#[test]
fn themes_load_by_name_or_path_and_no_color_gives_no_colours() {
    for name in ["dark", "light", "high-contrast"] {
        assert_eq!(Theme::load(Some(name), false).unwrap().name, name);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.toml");
    std::fs::write(&file, mednist::render::theme::BUILT_IN[1].1).unwrap();
    assert_eq!(
        Theme::load(Some(file.to_str().unwrap()), true).unwrap(),
        Theme::parse(&file.display().to_string(), mednist::render::theme::BUILT_IN[1].1).unwrap()
    );
    let error = Theme::load(Some("solarized"), false).unwrap_err().to_string();
    assert!(error.contains("solarized") && error.contains("dark, light, high-contrast"), "{error}");

    let plain = Theme::load(None, true).unwrap();
    assert_eq!(plain, Theme::monochrome());
    assert_eq!(
        plain.base(),
        ratatui::style::Style::new().fg(ratatui::style::Color::Reset).bg(ratatui::style::Color::Reset)
    );
    assert_eq!(Theme::load(None, false).unwrap().name, "dark");
}

#[test]
fn the_app_opens_on_the_saved_learner_and_its_history() {
    let mut app = app();
    let rows: Vec<EpochRow> = [0.5, 0.3]
        .into_iter()
        .enumerate()
        .map(|(epoch, valid_loss)| match epoch_row(epoch, valid_loss) {
            Event::Epoch(row) => row,
            _ => unreachable!(),
        })
        .collect();
    let saved = SavedLearner { arch: Arch::Resnet18, image_size: 32, frozen: false, epochs_done: 2 };
    app.apply(output(PaneId::Learner, Output::Saved(saved)), Instant::now());
    app.apply(output(PaneId::Train, Output::TrainHistory(rows)), Instant::now());

    press(&mut app, "7");
    let train = text(&screen(&mut app, 120, 40));
    assert!(train.contains("the saved learner's 2 epoch(s)"), "{train}");
    assert!(train.contains("0.300000"), "the saved rows are shown: {train}");
    press(&mut app, "6");
    let learner = text(&screen(&mut app, 120, 40));
    assert!(learner.contains("resnet18 at 32px trained 2 epoch(s)"), "{learner}");
    // Interpret opens the saved learner as it is, not a new resnet34 at 64px.
    press(&mut app, "8");
    let Some(Action::Run(JobRequest::Interpret { open, .. })) = app.handle_key(key(KeyCode::Enter)) else {
        panic!("no interpret request")
    };
    assert_eq!((open.arch, open.image_size, open.fresh), (Some(Arch::Resnet18), 32, false));
}
