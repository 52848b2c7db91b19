//! Runs the library's steps for the app, one at a time, on a "kernel" thread that keeps what
//! later steps reuse (the class scan, the open learner and its data), as a notebook's kernel
//! keeps its variables. Progress comes back as [`JobMessage`]s tagged with the pane.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result};
use image::GrayImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc::UnboundedSender;

mod interpret;
pub mod runs;

pub use self::interpret::{InterpretInfo, PredictInfo};
pub use self::runs::RunsListing;
use super::log::LogFile;
use super::panes::PaneId;
use crate::data::augment::{self, Augment, Draw};
use crate::data::cache::decode_gray;
use crate::data::fetch::{self, DatasetInfo, FetchRequest};
use crate::data::scan::{self, ClassSummary, DatasetScan, EmptyClass, UnreadableFile};
use crate::data::settings::DatasetSettings;
use crate::data::split::{self, ClassCounts, GroupBy, Split, SplitOptions};
use crate::data::window::Window;
use crate::event::{Emit, EpochRow, Event, Level, kept_after_cancel};
use crate::job::{CancelToken, is_cancelled};
use crate::learn::checkpoint;
use crate::learn::data::TrainData;
use crate::learn::learner::Learner;
use crate::learn::lr_find::{LrFindOptions, LrFindResult};
use crate::learn::open::{OpenOptions, open_learner};
use crate::learn::schedule::MaxLr;
use crate::model::Arch;
use crate::runs::recording::{Ended, Recording};
use crate::runs::{Runs, RunsError};
use crate::system::SystemReport;
use crate::workspace::{self, Workspace};

/// Side of the images the Classes and Preview panes show: MedNIST's own size, and the
/// learner's default.
pub const IMAGE_SIDE: usize = 64;

/// Unreadable files the Classes pane lists by name (the count says how many in all).
const UNREADABLE_LISTED: usize = 20;

/// What a pane asks the kernel to run.
#[derive(Debug, Clone)]
pub enum JobRequest {
    Setup,
    Fetch(FetchRequest),
    /// Scan the classes, reading the images with these settings (recorded if they changed).
    Classes(DatasetSettings),
    Split(SplitOptions),
    /// Nine images windowed with `window` (recorded if it changed).
    Preview {
        view: PreviewView,
        seed: u64,
        window: Window,
    },
    /// Open (resume or create) the learner and load its data.
    Learner(OpenOptions),
    /// Continue the open learner, or open one with these options first.
    Train {
        open: OpenOptions,
        epochs: usize,
        max_lr: MaxLr,
    },
    /// Freeze or unfreeze the body of the open learner (opening one first if need be).
    SetFrozen {
        open: OpenOptions,
        frozen: bool,
    },
    /// Interpret the open learner's validation predictions, keeping the `top` worst, with
    /// the clinical figures and the calibration.
    Interpret {
        open: OpenOptions,
        top: usize,
    },
    /// Classify one image file with the open learner.
    Predict {
        open: OpenOptions,
        file: PathBuf,
    },
    /// The learning-rate finder on the open learner.
    LrFind {
        open: OpenOptions,
        options: LrFindOptions,
    },
}

impl JobRequest {
    pub fn pane(&self) -> PaneId {
        match self {
            JobRequest::Setup => PaneId::Setup,
            JobRequest::Fetch(_) => PaneId::Fetch,
            JobRequest::Classes(_) => PaneId::Classes,
            JobRequest::Split(_) => PaneId::Split,
            JobRequest::Preview { .. } => PaneId::Preview,
            JobRequest::Learner(_) | JobRequest::SetFrozen { .. } => PaneId::Learner,
            JobRequest::Train { .. } => PaneId::Train,
            JobRequest::Interpret { .. } | JobRequest::Predict { .. } => PaneId::Interpret,
            JobRequest::LrFind { .. } => PaneId::LrFind,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewView {
    /// The lesson's `show_batch`: nine augmented training images with their labels.
    Batch,
    /// One training image under several random augmentations.
    Augmentations,
}

/// From the kernel to the app.
#[derive(Debug)]
pub enum JobMessage {
    /// A library event of the job running for `pane`.
    Event { pane: PaneId, event: Event },
    /// A result for `pane` to show.
    Output { pane: PaneId, output: Output },
    /// The job ended.
    Finished { pane: PaneId, outcome: Outcome },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// Stopped on request (Esc, or quitting).
    Cancelled,
    Failed(String),
}

#[derive(Debug)]
pub enum Output {
    Setup(Box<SetupInfo>),
    Fetched(DatasetInfo),
    /// How the dataset's files become images, as recorded (to the Classes and Preview panes).
    DatasetSettings(DatasetSettings),
    Classes(ClassesInfo),
    Split(SplitInfo),
    Preview(PreviewInfo),
    Learner(LearnerInfo),
    /// The learner saved in the workspace, read when the app opens (its weights are not
    /// loaded until a step needs them).
    Saved(SavedLearner),
    /// The open learner's epochs so far, before a fit adds to them.
    TrainHistory(Vec<EpochRow>),
    /// A fit stopped before its cycle ended, and how another process would continue it.
    Continuable(Continuation),
    Interpret(Box<InterpretInfo>),
    Predicted(Box<PredictInfo>),
    LrFind(LrFindResult),
    /// The workspace's runs, for the Train pane's runs view; or why they could not be read.
    Runs(Result<RunsListing, String>),
}

#[derive(Debug, Clone)]
pub struct SetupInfo {
    pub system: SystemReport,
    /// The dataset in the workspace, if one was fetched.
    pub dataset: Option<DatasetInfo>,
}

#[derive(Debug, Clone)]
pub struct ClassesInfo {
    pub classes: Vec<ClassSummary>,
    /// One image per class (its first), `IMAGE_SIDE` square; `None` when it would not decode.
    pub thumbnails: Vec<Option<GrayImage>>,
    /// The first unreadable files, with their reasons.
    pub unreadable: Vec<UnreadableFile>,
    pub unreadable_count: usize,
    pub empty_classes: Vec<EmptyClass>,
    pub settings: DatasetSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitInfo {
    pub options: SplitOptions,
    pub classes: Vec<String>,
    pub counts: Vec<ClassCounts>,
    /// What was kept on one side, and how many of those groups each side has.
    pub group: GroupBy,
    pub groups: ClassCounts,
}

#[derive(Debug, Clone)]
pub struct PreviewInfo {
    pub view: PreviewView,
    pub seed: u64,
    pub window: Window,
    /// Images with their captions, in reading order.
    pub tiles: Vec<(GrayImage, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LearnerInfo {
    pub arch: Arch,
    pub parameters: usize,
    pub frozen: bool,
    pub epochs_done: usize,
    pub resumed: bool,
    pub device: String,
    pub image_size: usize,
    pub batch_size: usize,
    pub train_images: usize,
    pub valid_images: usize,
}

/// A stopped fit's run, and the `mednist train` flags that continue its cycle from the run's
/// checkpoint with the settings the app trained with.
#[derive(Debug, Clone, PartialEq)]
pub struct Continuation {
    pub run: String,
    pub flags: Vec<String>,
}

/// What the workspace's saved checkpoint says of its learner.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedLearner {
    pub arch: Arch,
    pub image_size: usize,
    pub frozen: bool,
    pub epochs_done: usize,
}

/// The app's handle on the kernel thread.
pub struct Jobs {
    requests: mpsc::Sender<(JobRequest, CancelToken)>,
    running: Option<CancelToken>,
}

impl Jobs {
    /// Starts the kernel thread; its messages go to `messages`.
    pub fn start(workspace: Workspace, messages: UnboundedSender<JobMessage>, log: Arc<LogFile>) -> Result<Self> {
        let (requests, queue) = mpsc::channel();
        let kernel = Kernel { workspace, messages, log, scan: None, trainer: None };
        thread::Builder::new()
            .name("mednist-kernel".into())
            .spawn(move || kernel.serve(queue))
            .context("cannot start the job thread")?;
        Ok(Self { requests, running: None })
    }

    pub fn submit(&mut self, request: JobRequest) {
        let cancel = CancelToken::new();
        self.running = Some(cancel.clone());
        // The kernel only stops when this handle is dropped, so the send cannot fail.
        let _ = self.requests.send((request, cancel));
    }

    /// Asks the running job to stop (training stops after the current batch).
    pub fn cancel(&self) {
        if let Some(cancel) = &self.running {
            cancel.cancel();
        }
    }
}

/// The learner the Train pane continues, and its data.
struct Trainer {
    learner: Learner,
    data: TrainData,
    device: String,
    resumed: bool,
    /// What it was opened with (the batch size, the seed, ... it trains with).
    options: OpenOptions,
    /// Where `runs/current` pointed when it was opened.
    run: Option<PathBuf>,
}

struct Kernel {
    workspace: Workspace,
    messages: UnboundedSender<JobMessage>,
    log: Arc<LogFile>,
    /// The last class scan, reused by the split.
    scan: Option<Arc<DatasetScan>>,
    trainer: Option<Trainer>,
}

/// Forwards a job's events to the app (and its log lines to the log file).
struct Forward<'a> {
    pane: PaneId,
    messages: &'a UnboundedSender<JobMessage>,
    log: &'a LogFile,
}

impl Emit for Forward<'_> {
    fn emit(&self, event: Event) {
        match &event {
            Event::Log { level: Level::Info, message } => {
                self.log.line(format_args!("{}: {message}", self.pane.title()))
            }
            Event::Log { level: Level::Warn, message } => {
                self.log.line(format_args!("{}: warning: {message}", self.pane.title()))
            }
            Event::TrainStarted(start) => self.log.line(format_args!("train: {start:?}")),
            Event::Epoch(row) => self.log.line(format_args!("train: epoch row {}", serde_json::json!(row))),
            Event::TrainCancelled { completed_epochs } => {
                self.log.line(format_args!("train: stopped; {}", kept_after_cancel(*completed_epochs)))
            }
            _ => {}
        }
        let _ = self.messages.send(JobMessage::Event { pane: self.pane, event });
    }
}

impl Kernel {
    fn serve(mut self, queue: mpsc::Receiver<(JobRequest, CancelToken)>) {
        for (request, cancel) in queue {
            let pane = request.pane();
            self.log.line(format_args!("{}: run {request:?}", pane.title()));
            let outcome = match catch_unwind(AssertUnwindSafe(|| self.run(request, &cancel))) {
                Ok(Ok(())) if cancel.is_cancelled() => Outcome::Cancelled,
                Ok(Ok(())) => Outcome::Done,
                Ok(Err(error)) if is_cancelled(&error) => Outcome::Cancelled,
                Ok(Err(error)) => Outcome::Failed(super::errors::describe(&error)),
                Err(panic) => {
                    // A panic may leave the learner half-updated: drop it; the checkpoint stands.
                    self.trainer = None;
                    Outcome::Failed(format!("the step crashed: {}", panic_message(&panic)))
                }
            };
            self.log.line(format_args!("{}: {outcome:?}", pane.title()));
            if self.messages.send(JobMessage::Finished { pane, outcome }).is_err() {
                return;
            }
        }
    }

    fn send(&self, pane: PaneId, output: Output) {
        let _ = self.messages.send(JobMessage::Output { pane, output });
    }

    fn run(&mut self, request: JobRequest, cancel: &CancelToken) -> Result<()> {
        let pane = request.pane();
        let messages = self.messages.clone();
        let log = self.log.clone();
        let emit = Forward { pane, messages: &messages, log: &log };
        match request {
            JobRequest::Setup => {
                let system = SystemReport::probe(self.workspace.root());
                let info_file = self.workspace.dataset_info_file();
                let dataset = info_file.exists().then(|| workspace::read_json(&info_file)).transpose()?;
                self.send(pane, Output::Setup(Box::new(SetupInfo { system, dataset })));
                self.send_settings(DatasetSettings::load(&self.workspace)?);
                // The app opens on the workspace as it is, like a notebook with its outputs:
                // the Learner step takes the saved learner's shape, Train shows its epochs.
                if let Ok(Some(saved)) = checkpoint::load(&self.workspace.current_run_dir()) {
                    let state = saved.state;
                    self.send(
                        PaneId::Learner,
                        Output::Saved(SavedLearner {
                            arch: state.arch,
                            image_size: state.image_size,
                            frozen: state.frozen,
                            epochs_done: state.epochs_done,
                        }),
                    );
                    self.send(PaneId::Train, Output::TrainHistory(state.history));
                }
            }
            JobRequest::Fetch(request) => {
                let info = fetch::fetch(&self.workspace, &request, &emit, cancel)?;
                // The data changed: what was derived from the old data is gone.
                self.scan = None;
                self.trainer = None;
                self.send(pane, Output::Fetched(info));
            }
            JobRequest::Classes(settings) => {
                self.record_settings(settings, &emit)?;
                let scan = self.scan(&emit, cancel)?;
                for file in &scan.unreadable {
                    self.log.line(format_args!("classes: skipped {}: {}", file.path, file.reason));
                }
                let thumbnails = scan
                    .classes
                    .iter()
                    .enumerate()
                    .map(|(class, _)| {
                        let first = scan.items.iter().find(|item| item.class == class)?;
                        decode_gray(&scan.path_of(first), first.frame_index(), IMAGE_SIDE, &scan.settings.window)
                            .ok()
                            .and_then(|pixels| gray_image(pixels, IMAGE_SIDE))
                    })
                    .collect();
                self.send(
                    pane,
                    Output::Classes(ClassesInfo {
                        classes: scan.classes.clone(),
                        thumbnails,
                        unreadable: scan.unreadable.iter().take(UNREADABLE_LISTED).cloned().collect(),
                        unreadable_count: scan.unreadable.len(),
                        empty_classes: scan.empty_classes.clone(),
                        settings: scan.settings,
                    }),
                );
            }
            JobRequest::Split(options) => {
                let scan = match self.scan.clone() {
                    Some(scan) => scan,
                    None => self.scan(&emit, cancel)?,
                };
                let split = split::split(&scan, &options)?;
                split.save(&self.workspace)?;
                self.trainer = None;
                let counts = split.class_counts();
                let (group, groups) = (split.group, split.group_counts());
                self.send(pane, Output::Split(SplitInfo { options, classes: split.classes, counts, group, groups }));
            }
            JobRequest::Preview { view, seed, window } => {
                let recorded = DatasetSettings::load(&self.workspace)?;
                self.record_settings(DatasetSettings { window, ..recorded }, &emit)?;
                let tiles = self.preview(view, seed)?;
                self.send(pane, Output::Preview(PreviewInfo { view, seed, window, tiles }));
            }
            JobRequest::Learner(options) => {
                self.trainer = None;
                let trainer = self.open(&options, &emit, cancel)?;
                self.send(pane, Output::Learner(learner_info(&trainer)));
                self.trainer = Some(trainer);
            }
            JobRequest::Train { open, epochs, max_lr } => self.train(&open, epochs, max_lr, &emit, cancel)?,
            JobRequest::SetFrozen { open, frozen } => {
                let mut trainer = self.take_trainer(&open, &emit, cancel)?;
                trainer.learner.set_frozen(frozen);
                // A learner that has trained keeps the change in its checkpoint; a new one
                // records it with its first epoch.
                let saved = if trainer.learner.epochs_done() > 0 { trainer.learner.save().map(drop) } else { Ok(()) };
                self.send(pane, Output::Learner(learner_info(&trainer)));
                self.trainer = Some(trainer);
                saved?;
                emit.info(
                    if frozen {
                        "body frozen: the head and BatchNorm train"
                    } else {
                        "body unfrozen: every layer trains"
                    }
                    .into(),
                );
            }
            JobRequest::Interpret { open, top } => {
                let mut trainer = self.take_trainer(&open, &emit, cancel)?;
                if trainer.learner.epochs_done() == 0 {
                    emit.warn("the learner has not been trained yet: its predictions are guesses".into());
                }
                let info = interpret::evaluate_validation(&mut trainer, top, &emit, cancel);
                self.trainer = Some(trainer);
                self.send(pane, Output::Interpret(Box::new(info?)));
            }
            JobRequest::Predict { open, file } => {
                let trainer = self.take_trainer(&open, &emit, cancel)?;
                let predicted = interpret::predict_file(&trainer.learner, &file, &emit, cancel);
                self.trainer = Some(trainer);
                self.send(pane, Output::Predicted(Box::new(predicted?)));
            }
            JobRequest::LrFind { open, options } => {
                let mut trainer = self.take_trainer(&open, &emit, cancel)?;
                let result = trainer.learner.lr_find(&trainer.data, &options, &emit, cancel);
                self.trainer = Some(trainer);
                self.send(pane, Output::LrFind(result?));
            }
        }
        Ok(())
    }

    /// Records `settings` when they differ from the workspace's: what was read with the old
    /// ones (the scan, the open learner's images) is dropped, and both panes that offer them
    /// are told.
    fn record_settings(&mut self, settings: DatasetSettings, emit: &dyn Emit) -> Result<()> {
        if settings == DatasetSettings::load(&self.workspace)? {
            return Ok(());
        }
        settings.save(&self.workspace)?;
        self.scan = None;
        self.trainer = None;
        emit.info(format!(
            "recorded window {}, frames {}: every step reads the images so",
            settings.window, settings.frames
        ));
        self.send_settings(settings);
        Ok(())
    }

    fn send_settings(&self, settings: DatasetSettings) {
        self.send(PaneId::Classes, Output::DatasetSettings(settings));
        self.send(PaneId::Preview, Output::DatasetSettings(settings));
    }

    /// Trains the open learner (opening one first) as a recorded run, as `mednist train` does:
    /// the workspace lock held, `run.json` and `events.jsonl` written.
    fn train(
        &mut self,
        open: &OpenOptions,
        epochs: usize,
        max_lr: MaxLr,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<()> {
        let runs = Runs::open(&self.workspace, emit)?;
        // Before the learner opens, so that no other process starts training meanwhile.
        let lock = runs.lock_for_training(emit).map_err(|error| match error.downcast::<RunsError>() {
            Ok(RunsError::Running { name, pid }) => anyhow::anyhow!(
                "run {name} is training in this workspace (pid {pid}): wait for it, or show it here (7 Train) and stop it with Esc"
            ),
            Ok(other) => other.into(),
            Err(error) => error,
        })?;
        let mut trainer = self.take_trainer(open, emit, cancel)?;
        let recording = run_to_train_in(&runs, &trainer.learner)
            .and_then(|name| Recording::begin(&runs, lock, &name, settings(&trainer, epochs, max_lr)));
        let recording = match recording {
            Ok(recording) => recording,
            Err(error) => {
                self.trainer = Some(trainer);
                return Err(error);
            }
        };
        let described = recording.describe(
            trainer.learner.arch.to_string(),
            trainer.device.clone(),
            trainer.data.split_fingerprint.clone(),
        );
        let log = match described.and_then(|()| recording.event_log(emit, cancel.clone())) {
            Ok(log) => log,
            Err(error) => {
                self.trainer = Some(trainer);
                return Err(recording.fail(error, super::errors::describe));
            }
        };
        self.send(PaneId::Train, Output::TrainHistory(trainer.learner.history().to_vec()));
        let fitted = trainer.learner.fit_one_cycle(&trainer.data, epochs, max_lr, &log, cancel);
        self.send(PaneId::Learner, Output::Learner(learner_info(&trainer)));
        let ended = match &fitted {
            Ok(()) => Ended::Finished,
            Err(error) if is_cancelled(error) => Ended::Stopped,
            Err(error) => Ended::Failed(super::errors::describe(error)),
        };
        let run = recording.name().to_string();
        let saved = checkpoint::load(&recording.dir()).ok().flatten().is_some();
        let continuation = (ended == Ended::Stopped)
            .then(|| Continuation { run, flags: continue_flags(&trainer, epochs, max_lr, saved) });
        // Kept even after a failure: the weights are those of the last finished batch.
        self.trainer = Some(trainer);
        recording.end(ended, &log)?;
        if let Some(continuation) = continuation {
            self.send(PaneId::Train, Output::Continuable(continuation));
        }
        fitted
    }

    /// The workspace's dataset folder, or an error saying which step makes it.
    fn require_dataset(&self) -> Result<PathBuf> {
        let dataset = self.workspace.dataset_dir();
        if !dataset.is_dir() {
            anyhow::bail!("no dataset in the workspace yet: run the Fetch step (2) first");
        }
        Ok(dataset)
    }

    fn scan(&mut self, emit: &dyn Emit, cancel: &CancelToken) -> Result<Arc<DatasetScan>> {
        let dataset = self.require_dataset()?;
        let scan = Arc::new(scan::scan(&dataset, &DatasetSettings::load(&self.workspace)?, emit, cancel)?);
        self.scan = Some(scan.clone());
        Ok(scan)
    }

    /// The open learner, or one opened with `options` (the Learner pane is told).
    fn take_trainer(&mut self, options: &OpenOptions, emit: &dyn Emit, cancel: &CancelToken) -> Result<Trainer> {
        if let Some(trainer) = self.trainer.take()
            && self.is_saved_learner(&trainer)
        {
            return Ok(trainer);
        }
        let trainer = self.open(options, emit, cancel)?;
        self.send(PaneId::Learner, Output::Learner(learner_info(&trainer)));
        Ok(trainer)
    }

    fn open(&self, options: &OpenOptions, emit: &dyn Emit, cancel: &CancelToken) -> Result<Trainer> {
        self.require_dataset()?;
        let opened = open_learner(&self.workspace, options, emit, cancel)?;
        Ok(Trainer {
            learner: opened.learner,
            data: opened.data,
            device: opened.device,
            resumed: opened.resumed,
            options: options.clone(),
            run: self.current_run(),
        })
    }

    fn current_run(&self) -> Option<PathBuf> {
        std::fs::read_link(self.workspace.current_run_dir()).ok()
    }

    /// Whether the open learner is still the one in the current run: a training in another
    /// process (a detached one) may have moved the run on, or made another run current.
    fn is_saved_learner(&self, trainer: &Trainer) -> bool {
        let saved = checkpoint::load(&self.workspace.current_run_dir()).ok().flatten();
        self.current_run() == trainer.run
            && saved.is_none_or(|saved| saved.state.epochs_done == trainer.learner.epochs_done())
    }

    /// Nine captioned images from the recorded split's training set.
    fn preview(&self, view: PreviewView, seed: u64) -> Result<Vec<(GrayImage, String)>> {
        let dataset = self.require_dataset()?;
        let split_file = self.workspace.split_file();
        if !split_file.exists() {
            anyhow::bail!("no split recorded yet: run the Split step (4) first");
        }
        let split: Split = workspace::read_json(&split_file)?;
        if split.train.is_empty() {
            anyhow::bail!("the recorded split has no training image: run the Split step (4) again");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let augment = Augment::default();
        let window = DatasetSettings::load(&self.workspace)?.window;
        let decode = |index: usize| -> Result<Vec<u8>> {
            let item = &split.train[index];
            decode_gray(&dataset.join(&item.path), item.frame_index(), IMAGE_SIDE, &window)
        };
        let render = |pixels: &[u8], draw: &Draw| -> Result<GrayImage> {
            let mut out = vec![0.0f32; IMAGE_SIDE * IMAGE_SIDE];
            augment::apply(draw, pixels, IMAGE_SIDE, &mut out);
            let bytes = out.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
            gray_image(bytes, IMAGE_SIDE).context("augmented image has the wrong size")
        };
        const TILES: usize = 9;
        match view {
            PreviewView::Batch => {
                let picks = rand::seq::index::sample(&mut rng, split.train.len(), TILES.min(split.train.len()));
                picks
                    .into_iter()
                    .map(|index| {
                        let draw = augment.draw(&mut rng);
                        let label = split.classes[split.train[index].class].clone();
                        Ok((render(&decode(index)?, &draw)?, label))
                    })
                    .collect()
            }
            PreviewView::Augmentations => {
                let index = rand::Rng::random_range(&mut rng, 0..split.train.len());
                let pixels = decode(index)?;
                let class = &split.classes[split.train[index].class];
                let mut tiles = vec![(render(&pixels, &Draw::IDENTITY)?, format!("{class} (original)"))];
                for _ in 1..TILES {
                    let draw = augment.draw(&mut rng);
                    tiles.push((render(&pixels, &draw)?, describe(&draw)));
                }
                Ok(tiles)
            }
        }
    }
}

fn learner_info(trainer: &Trainer) -> LearnerInfo {
    let learner = &trainer.learner;
    LearnerInfo {
        arch: learner.arch,
        parameters: learner.parameter_count(),
        frozen: learner.is_frozen(),
        epochs_done: learner.epochs_done(),
        resumed: trainer.resumed,
        device: trainer.device.clone(),
        image_size: learner.image_size,
        batch_size: trainer.options.settings.batch_size,
        train_images: trainer.data.train.len(),
        valid_images: trainer.data.valid.len(),
    }
}

/// The run a fit in the app records itself in: the current one, unless the learner is new and
/// the current run holds another learner's checkpoint (or there is no run yet).
fn run_to_train_in(runs: &Runs, learner: &Learner) -> Result<String> {
    match runs.current() {
        Some(current) if learner.epochs_done() > 0 || checkpoint::load(&runs.run_dir(&current))?.is_none() => {
            Ok(current)
        }
        _ => runs.new_current(None, None),
    }
}

/// How a fit in the app was started, as its run record keeps it.
fn settings(trainer: &Trainer, epochs: usize, max_lr: MaxLr) -> serde_json::Value {
    let options = &trainer.options;
    serde_json::json!({
        "front_end": "app",
        "arch": trainer.learner.arch.to_string(),
        "pretrained": options.pretrained.as_ref().map(ToString::to_string),
        "epochs": epochs,
        "max_lr": max_lr.to_string(),
        "bs": options.settings.batch_size,
        "size": trainer.learner.image_size,
        "seed": options.settings.seed,
        "device": options.device.to_string(),
        "window": trainer.learner.window.to_string(),
        "precision": options.settings.precision.map(|precision| precision.to_string()),
        "fresh": options.fresh,
    })
}

/// `mednist train` flags that continue the stopped fit in another process: resuming the run's
/// checkpoint, whose one-cycle position carries the schedule, with the batch size (which the
/// cycle's steps depend on), seed and device the app trained with. A learner that has no
/// checkpoint yet is made there as it was made here.
fn continue_flags(trainer: &Trainer, epochs: usize, max_lr: MaxLr, saved: bool) -> Vec<String> {
    let (options, settings) = (&trainer.options, &trainer.options.settings);
    let mut flags = vec![
        format!("--epochs={epochs}"),
        format!("--max-lr={max_lr}"),
        format!("--bs={}", settings.batch_size),
        format!("--seed={}", settings.seed),
        format!("--device={}", options.device),
        format!("--monitor={}", settings.monitor),
    ];
    let optional = [
        settings.workers.map(|workers| format!("--workers={workers}")),
        settings.prefetch.map(|prefetch| format!("--prefetch={prefetch}")),
        settings.precision.map(|precision| format!("--precision={precision}")),
        settings.patience.map(|patience| format!("--patience={patience}")),
        settings.deterministic.then(|| "--deterministic".to_string()),
    ];
    flags.extend(optional.into_iter().flatten());
    if !saved {
        let learner = &trainer.learner;
        flags.extend([
            format!("--arch={}", learner.arch),
            format!("--size={}", learner.image_size),
            format!("--window={}", learner.window),
        ]);
        flags.extend(options.pretrained.as_ref().map(|pretrained| format!("--pretrained={pretrained}")));
    }
    flags
}

fn gray_image(pixels: Vec<u8>, side: usize) -> Option<GrayImage> {
    GrayImage::from_raw(side as u32, side as u32, pixels)
}

/// A short caption for an augmentation: what it did.
pub fn describe(draw: &Draw) -> String {
    let mut parts = Vec::new();
    if draw.flip {
        parts.push("flip".to_string());
    }
    if draw.rotate_rad != 0.0 {
        parts.push(format!("{:+.0}°", draw.rotate_rad.to_degrees()));
    }
    if draw.zoom != 1.0 {
        parts.push(format!("zoom {:.2}", draw.zoom));
    }
    if draw.warp != (0.0, 0.0) {
        parts.push("warp".to_string());
    }
    if draw.brightness != 0.5 || draw.contrast != 1.0 {
        parts.push("light".to_string());
    }
    if parts.is_empty() { "unchanged".to_string() } else { parts.join(" ") }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
