//! `mednist train`: the lesson's `fit_one_cycle` cell, headless. Prints the table row by row,
//! a batch progress line on stderr when it is a terminal, or JSON lines with `--json`.

use std::io::Write;
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::train_rank;
use crate::cli::progress::StderrProgress;
use crate::data::window::Window;
use crate::dist::Launch;
use crate::event::{Emit, Event, kept_after_cancel};
use crate::job::{CancelToken, is_cancelled};
use crate::learn::callbacks::Monitor;
use crate::learn::checkpoint;
use crate::learn::device::DeviceChoice;
use crate::learn::learner::LearnerSettings;
use crate::learn::open::{OpenOptions, Opened, open_learner};
use crate::learn::precision::Precision;
use crate::learn::pretrained::Pretrained;
use crate::learn::schedule::MaxLr;
use crate::model::Arch;
use crate::render::epochs::{format_row, header};
use crate::runs::lock::TrainLock;
use crate::runs::recording::{Ended, Recording};
use crate::runs::{Runs, RunsError};
use crate::workspace::Workspace;

/// How to open the learner: shared by `train` and `lr-find`.
#[derive(Debug, clap::Args)]
pub struct LearnerArgs {
    /// Model architecture for a new learner [default: resnet34]
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Start a new learner from pretrained weights (body frozen): imagenet (torchvision's, downloaded once), a URL, or a .pth file
    #[arg(long, value_name = "imagenet|URL|PATH")]
    pub pretrained: Option<Pretrained>,
    /// Batch size
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Where to train: auto (CUDA when available), cpu, cuda, cuda:N
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Image side in pixels (images of other sizes are resized)
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Window of a new learner for DICOM and 16-bit images: file, file:N, minmax, percentile:LO,HI, LEVEL,WIDTH or a preset [default: the dataset's, see `classes --window`]
    #[arg(long, value_name = "WINDOW", allow_hyphen_values = true)]
    pub window: Option<Window>,
    /// Seed for weights, shuffling and augmentation
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Start a new learner instead of continuing the last one
    #[arg(long)]
    pub fresh: bool,
    /// Threads preparing batches [default: 1 on the CPU, 2 on a GPU, capped by the cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Batches each worker keeps ready [default: 2 on the CPU, 4 on a GPU]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: Option<u16>,
    /// What training steps compute in: fp32, bf16 or fp16 (weights and checkpoints stay fp32) [default: fp32 on the CPU, bf16 on GPUs that have it]
    #[arg(long, value_name = "fp32|bf16|fp16")]
    pub precision: Option<Precision>,
    /// Reproducible GPU runs: cuDNN's deterministic algorithms, no autotuner (slower)
    #[arg(long)]
    pub deterministic: bool,
}

impl LearnerArgs {
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            arch: self.arch,
            fresh: self.fresh,
            image_size: self.size,
            window: self.window,
            settings: LearnerSettings {
                batch_size: self.bs,
                seed: self.seed,
                workers: self.workers.map(usize::from),
                prefetch: self.prefetch.map(usize::from),
                precision: self.precision,
                deterministic: self.deterministic,
                ..LearnerSettings::default()
            },
            device: self.device,
            pretrained: self.pretrained.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub learner: LearnerArgs,
    /// Epochs in this one-cycle fit
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Peak learning rate: one for all layer groups, or LO..HI (fastai's slice) spread from body to head
    #[arg(long, default_value = "1e-3", allow_hyphen_values = true)]
    pub max_lr: MaxLr,
    /// Continue from the checkpoint saved under NAME (the lesson's learn.load), in a new run
    #[arg(long, value_name = "NAME", conflicts_with = "fresh")]
    pub load: Option<String>,
    /// After training, keep the checkpoint under NAME (the lesson's learn.save)
    #[arg(long, value_name = "NAME")]
    pub save: Option<String>,
    /// The validation figure that picks the best checkpoint (kept beside the latest) and drives --patience
    #[arg(long, default_value_t = Monitor::ValidLoss, value_name = "valid_loss|error_rate")]
    pub monitor: Monitor,
    /// Stop early once the monitored figure has not improved for N epochs (fastai's EarlyStoppingCallback)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub patience: Option<u16>,
    /// Train in a background process that outlives this terminal; `mednist logs -f` follows it
    #[arg(long)]
    pub detach: bool,
    /// Start a new run named NAME (letters, digits, '-', '_'), from the current learner unless --fresh [default: a new run only with --fresh or --load, named after the time]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The run a `--detach` parent prepared, and whose lock it handed over
    #[arg(long, hide = true, value_name = "NAME", conflicts_with = "detach")]
    pub detached_run: Option<String>,
    /// Under torchrun: BatchNorm statistics over every process's batch (PyTorch's SyncBatchNorm), not each process's own
    #[arg(long)]
    pub sync_bn: bool,
    /// Under torchrun: seconds a process waits for the others (to start, at each all-reduce) before it fails
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub dist_timeout: u64,
}

/// The learner `train` opens, with the fit's own settings.
pub(super) fn open_options(args: &TrainArgs) -> OpenOptions {
    let mut options = args.learner.open_options();
    options.settings.monitor = args.monitor;
    options.settings.patience = args.patience.map(usize::from);
    options
}

pub fn run(workspace: &Workspace, args: &TrainArgs, json: bool) -> Result<()> {
    let launch = Launch::from_env()?;
    if let Some(launch) = &launch {
        if args.detach {
            bail!(
                "--detach starts one background process: under torchrun, keep torchrun itself running in the background (tmux, nohup)"
            );
        }
        if !launch.is_root() {
            return super::train_rank::run(workspace, args, launch);
        }
    }
    let render = TrainRender::new(json);
    let runs = Runs::open(workspace, &render)?;
    let (lock, name) = match &args.detached_run {
        Some(name) => (runs.adopt_lock(name)?, name.clone()),
        None => {
            let lock = take_lock(&runs, &render)?;
            (lock, prepare_run(workspace, &runs, args, &render)?)
        }
    };
    let recording = Recording::begin(&runs, lock, &name, settings(args, launch.as_ref()))?;
    if args.detach {
        return super::detach::launch(&runs, recording, json);
    }
    render.info(format!("training in run {name} ({})", recording.dir().display()));
    let cancel = CancelToken::new();
    crate::cli::cancel_on_interrupt(&cancel, "stopping after this batch");
    let log = match recording.event_log(&render, cancel.clone()) {
        Ok(log) => log,
        Err(error) => return Err(recording.fail(error, super::errors::describe)),
    };
    let trained = train(workspace, args, launch.as_ref(), &log, &cancel, &recording);
    render.finish();
    let ended = match &trained {
        Ok(()) => Ended::Finished,
        Err(Failure::Stopped(_)) => Ended::Stopped,
        Err(Failure::Error(error)) => Ended::Failed(super::errors::describe(error)),
    };
    let record = recording.end(ended, &log)?;
    match trained {
        Ok(()) => Ok(()),
        Err(Failure::Stopped(kept)) => match record.message {
            Some(failure) => Err(anyhow!("{failure}; {kept}")),
            None => Err(anyhow!("training interrupted; {kept}")),
        },
        Err(Failure::Error(error)) => Err(error),
    }
}

/// The workspace's training lock, or an error naming the run that holds it.
fn take_lock(runs: &Runs, emit: &dyn Emit) -> Result<TrainLock> {
    runs.lock_for_training(emit).map_err(|error| match error.downcast::<RunsError>() {
        Ok(RunsError::Running { name, pid }) => anyhow!(
            "run {name} is training in this workspace (pid {pid}): wait for it (`mednist logs -f {name}`) or stop it (kill {pid})"
        ),
        Ok(other) => other.into(),
        Err(error) => error,
    })
}

/// The run to train in: the current one, or a new one (`--fresh`, `--name`, `--load`, or
/// none yet), which starts from the current learner or the loaded one and becomes current.
fn prepare_run(workspace: &Workspace, runs: &Runs, args: &TrainArgs, emit: &dyn Emit) -> Result<String> {
    let current = runs.current();
    let continuing = !args.learner.fresh && args.name.is_none() && args.load.is_none();
    if let (true, Some(current)) = (continuing, &current) {
        return Ok(current.clone());
    }
    let start_from = match (&args.load, &current) {
        (Some(saved), _) => Some(workspace.saved_model_dir(saved)?),
        (None, Some(current)) if !args.learner.fresh && checkpoint::load(&runs.run_dir(current))?.is_some() => {
            Some(runs.run_dir(current))
        }
        _ => None,
    };
    let name = runs.new_current(args.name.as_deref(), start_from.as_deref())?;
    match (&args.load, start_from) {
        (Some(saved), _) => emit.info(format!("loaded the checkpoint saved as {saved}")),
        (None, Some(_)) => {
            emit.info(format!("run {name} starts from the learner of run {}", current.unwrap_or_default()))
        }
        (None, None) => {}
    }
    Ok(name)
}

/// How a run was started, as its record keeps it.
fn settings(args: &TrainArgs, launch: Option<&Launch>) -> serde_json::Value {
    let learner = &args.learner;
    serde_json::json!({
        "command": std::env::args().skip(1).collect::<Vec<_>>(),
        "arch": learner.arch.map(|arch| arch.to_string()),
        "pretrained": learner.pretrained.as_ref().map(ToString::to_string),
        "epochs": args.epochs,
        "max_lr": args.max_lr.to_string(),
        "bs": learner.bs,
        "size": learner.size,
        "seed": learner.seed,
        "device": learner.device.to_string(),
        "window": learner.window.map(|window| window.to_string()),
        "precision": learner.precision.map(|precision| precision.to_string()),
        "fresh": learner.fresh,
        "load": args.load,
        "world_size": launch.map_or(1, |launch| launch.world_size),
        "sync_bn": args.sync_bn,
    })
}

/// Why a training ended early.
enum Failure {
    /// Asked to stop; what the last finished epoch left.
    Stopped(String),
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Error(error)
    }
}

/// Trains alone, or as rank 0 of a torchrun launch (`launch`).
fn train(
    workspace: &Workspace,
    args: &TrainArgs,
    launch: Option<&Launch>,
    emit: &dyn Emit,
    cancel: &CancelToken,
    recording: &Recording,
) -> Result<(), Failure> {
    let options = open_options(args);
    let Opened { mut learner, data, device, .. } = match launch {
        None => open_learner(workspace, &options, emit, cancel)?,
        Some(launch) => {
            let (options, group) = train_rank::join(launch, args, options)?;
            emit.info(format!("{} processes train together, collectives on {}", group.size(), group.backend()));
            train_rank::open(workspace, &options, group, args, emit, cancel)?
        }
    };
    recording.describe(learner.arch.to_string(), device, data.split_fingerprint.clone())?;
    let fitted = learner.fit_one_cycle(&data, args.epochs, args.max_lr, emit, cancel);
    let interrupted = matches!(&fitted, Err(error) if is_cancelled(error));
    if !interrupted {
        fitted?;
    }
    // An interrupted fit is saved too: its last finished epoch is what --save keeps.
    if let Some(saved) = &args.save {
        checkpoint::copy(learner.run_dir(), &workspace.saved_model_dir(saved)?)?;
        emit.info(format!("saved the checkpoint as {saved}"));
    }
    if interrupted {
        return Err(Failure::Stopped(kept_after_cancel(learner.epochs_done())));
    }
    Ok(())
}

/// Renders training events: rows on stdout, a batch bar on stderr, other events via
/// [`StderrProgress`]. `mednist logs` renders a run's event log with it too.
pub(crate) struct TrainRender {
    json: bool,
    bar: Mutex<Option<ProgressBar>>,
    other: StderrProgress,
}

impl TrainRender {
    pub(crate) fn new(json: bool) -> Self {
        Self { json, bar: Mutex::new(None), other: if json { StderrProgress::quiet() } else { StderrProgress::new() } }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
    }

    fn print_stdout(&self, line: &str) {
        let print = || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        match self.bar.lock().expect("bar lock").as_ref() {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

impl Emit for TrainRender {
    fn emit(&self, event: Event) {
        if self.json {
            self.print_stdout(&serde_json::to_string(&event).expect("events serialise"));
            if let Event::Log { .. } = event {
                self.other.emit(event);
            }
            return;
        }
        match event {
            Event::TrainStarted(start) => {
                let processes = match start.world_size {
                    1 => String::new(),
                    n => format!(" x {n} processes (--bs is per process: each step trains on {n} batches, one a process)"),
                };
                eprintln!(
                    "training {} on {}{processes}: {} train / {} valid images, {} batches per epoch, max_lr {}",
                    start.arch,
                    start.device,
                    start.train_images,
                    start.valid_images,
                    start.batches_per_epoch,
                    start.max_lrs.iter().map(|lr| format!("{lr:.0e}")).collect::<Vec<_>>().join(" / ")
                );
                // Under torchrun the table itself says a batch is per process, wherever stdout goes.
                match start.world_size {
                    1 => self.print_stdout(&header()),
                    n => self.print_stdout(&format!("{}  ({n} processes, --bs each)", header())),
                }
                let bar =
                    ProgressBar::with_draw_target(Some(start.batches_per_epoch as u64), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                *self.bar.lock().expect("bar lock") = Some(bar);
            }
            Event::Batch(batch) => {
                if let Some(bar) = self.bar.lock().expect("bar lock").as_ref() {
                    if batch.batch == 1 {
                        bar.reset();
                        bar.set_prefix(batch.epoch.to_string());
                    }
                    bar.set_position(batch.batch as u64);
                    bar.set_message(format!("loss {:.4}", batch.smooth_loss));
                }
            }
            Event::Epoch(row) => self.print_stdout(&format_row(&row)),
            Event::EarlyStopped { monitor, best_epoch, best, patience, .. } => self.print_stdout(&format!(
                "early stopping: {monitor} has not improved for {patience} epoch(s); the best, {best:.6} at epoch {best_epoch}, is kept (--epoch best)"
            )),
            Event::CheckpointSaved { .. } | Event::TrainFinished { .. } | Event::TrainCancelled { .. } => {}
            other => match self.bar.lock().expect("bar lock").as_ref() {
                Some(bar) => bar.suspend(|| self.other.emit(other)),
                None => self.other.emit(other),
            },
        }
    }
}
