//! The learner: a classifier, its optimizer and where it stands, trained with
//! `fit_one_cycle` as fastai's `Learner` does. It reports through events and knows
//! nothing of terminals.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::module::{Module, ParamGroup};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};

use super::callbacks::{
    BatchEvents, EarlyStopping, EpochRecord, LrSweep, Monitor, OneCycleSchedule, SaveCheckpoints, TerminateOnNan,
};
use super::cam::{self, Heatmap};
use super::checkpoint::{self, Checkpoint, CheckpointState, CyclePosition, Which};
use super::cuda::CudaSettings;
use super::data::TrainData;
use super::device::libtorch_device;
use super::distributed::{Distributed, SharedState};
use super::export::{self, ExportHeader};
use super::fit::{self, Callback, LoopEnd, LoopPlan};
use super::inference::{self, Pass, Predictions, Tta};
use super::lr_find::{LrFindOptions, LrFindResult, LrRecorder};
use super::metrics::Tally;
use super::onnx::{self, OnnxSummary};
use super::optimizer::{CycledAdamW, Hypers};
use super::precision::{GradScaler, Precision, gradient_tensors};
use super::pretrained;
use super::schedule::{MaxLr, OneCycle};
use super::step::PendingLoss;
use crate::data::augment::Augment;
use crate::data::batches::{Batch, BatchPlan, Feed, Prefetcher};
use crate::data::cache::ImageCache;
use crate::data::window::Window;
use crate::event::{Emit, EpochRow, Event, Stage, TrainStart};
use crate::job::{CancelToken, Cancelled};
use crate::model::{Arch, Classifier, LayerGroup, layout};
use crate::remedy::{Remedy, fixable};

/// Layer groups in the order learning-rate slices address them.
const GROUPS: [LayerGroup; 2] = [LayerGroup::Body, LayerGroup::Head];

/// Settings that stay with a learner for its life.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerSettings {
    pub batch_size: usize,
    pub weight_decay: f64,
    pub seed: u64,
    /// Threads preparing batches ahead of the model; `None`: the device's default
    /// ([`Feed::for_device`]).
    pub workers: Option<usize>,
    /// Batches each worker keeps ready; `None`: the device's default.
    pub prefetch: Option<usize>,
    /// What training steps compute in; `None`: the device's default ([`Precision::default_for`]).
    pub precision: Option<Precision>,
    /// cuDNN's deterministic algorithms, without its autotuner: reproducible GPU runs, slower.
    pub deterministic: bool,
    /// The validation figure that picks the best checkpoint and drives early stopping.
    pub monitor: Monitor,
    /// Stop a fit once `monitor` has not improved for this many epochs (fastai's
    /// `EarlyStoppingCallback`); `None`: train every epoch asked for.
    pub patience: Option<usize>,
}

impl Default for LearnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 64,
            weight_decay: 0.01,
            seed: 42,
            workers: None,
            prefetch: None,
            precision: None,
            deterministic: false,
            monitor: Monitor::default(),
            patience: None,
        }
    }
}

/// How a learner's settings play out on its device.
struct Runtime {
    feed: Feed,
    precision: Precision,
    /// fp16's loss scaling.
    scaler: Option<GradScaler>,
    /// Its place in a data-parallel training, when it has one.
    distributed: Option<Distributed>,
}

impl Runtime {
    /// Also sets LibTorch's CUDA flags when `device` is a GPU.
    fn new(device: &Device, settings: &LearnerSettings) -> Self {
        let device = libtorch_device(device);
        if device.is_cuda() {
            CudaSettings::for_training(settings.deterministic).apply();
        }
        let precision = settings.precision.unwrap_or_else(|| Precision::default_for(device));
        Self {
            feed: Feed::for_device(device, settings.workers, settings.prefetch),
            precision,
            scaler: (precision == Precision::Fp16).then(GradScaler::new),
            distributed: None,
        }
    }
}

pub struct Learner {
    pub arch: Arch,
    pub classes: Vec<String>,
    pub image_size: usize,
    /// The window its images are rendered with, for life: train, interpret and predict see
    /// the same pixels.
    pub window: Window,
    model: Slot<Classifier>,
    optimizer: ModuleOptimizer,
    hypers: Arc<Hypers>,
    device: Device,
    device_label: String,
    split_fingerprint: String,
    frozen: bool,
    epochs_done: usize,
    cycle: Option<CyclePosition>,
    history: Vec<EpochRow>,
    run_dir: PathBuf,
    settings: LearnerSettings,
    /// Temperature scaling fitted on the validation set, cleared when training changes the
    /// weights it was fitted to.
    temperature: Option<f32>,
    runtime: Runtime,
    /// The checkpoint it was opened from: only a learner at the latest one saves.
    opened_at: Which,
}

impl Learner {
    /// A new learner for `data`, with freshly initialised weights, checkpointing into `run_dir`.
    pub fn new(
        arch: Arch,
        data: &TrainData,
        device: (Device, String),
        run_dir: PathBuf,
        settings: LearnerSettings,
    ) -> Self {
        // Weight init and dropout draw from LibTorch's generator: seed it for reproducible runs.
        device.0.seed(settings.seed);
        let autodiff = device.0.clone().autodiff();
        let hypers = Hypers::new(GROUPS.len());
        let learner = Self {
            runtime: Runtime::new(&autodiff, &settings),
            arch,
            classes: data.classes.clone(),
            image_size: data.cache.side(),
            window: data.window,
            model: Slot(Some(Classifier::new(arch, data.classes.len(), &autodiff))),
            optimizer: build_optimizer(&hypers, settings.weight_decay),
            hypers,
            device: autodiff,
            device_label: device.1,
            split_fingerprint: data.split_fingerprint.clone(),
            frozen: false,
            epochs_done: 0,
            cycle: None,
            history: Vec::new(),
            run_dir,
            settings,
            temperature: None,
            opened_at: Which::Last,
        };
        learner.with_weights_laid_out()
    }

    /// The learner saved in `run_dir`, or `None` when nothing was saved there yet. A latest
    /// checkpoint that cannot be read gives way to the epoch before (a warning says so).
    pub fn resume(
        run_dir: PathBuf,
        device: (Device, String),
        settings: LearnerSettings,
        emit: &dyn Emit,
    ) -> Result<Option<Self>> {
        Self::open_at(run_dir, Which::Last, device, settings, emit)
    }

    /// The learner as the checkpoint `which` left it. One opened at an earlier epoch than the
    /// latest is for looking at (interpret, export): it refuses to save over the latest.
    pub fn open_at(
        run_dir: PathBuf,
        which: Which,
        device: (Device, String),
        settings: LearnerSettings,
        emit: &dyn Emit,
    ) -> Result<Option<Self>> {
        let autodiff = device.0.clone().autodiff();
        let hypers = Hypers::new(GROUPS.len());
        let open = |checkpoint: Checkpoint| {
            let state = checkpoint.state;
            let shape = (state.arch, state.classes.len(), state.frozen);
            let saved = Saved::Files(&checkpoint.model, &checkpoint.optimizer);
            let (model, optimizer) = load_state(shape, saved, &hypers, settings.weight_decay, &autodiff)?;
            Ok((state, model, optimizer))
        };
        let opened = match which {
            Which::Last => checkpoint::load_with_fallback(&run_dir, emit, open)?,
            earlier => checkpoint::load_which(&run_dir, earlier)?.map(open).transpose()?,
        };
        let Some((state, model, optimizer)) = opened else {
            return Ok(None);
        };
        let learner = Self {
            runtime: Runtime::new(&autodiff, &settings),
            arch: state.arch,
            classes: state.classes,
            image_size: state.image_size,
            window: state.window,
            model: Slot(Some(model)),
            optimizer,
            hypers,
            device: autodiff,
            device_label: device.1,
            split_fingerprint: state.split_fingerprint,
            frozen: state.frozen,
            epochs_done: state.epochs_done,
            cycle: Some(state.cycle),
            history: state.history,
            run_dir,
            settings,
            temperature: state.temperature,
            opened_at: which,
        };
        Ok(Some(learner.with_weights_laid_out()))
    }

    /// The learner with its weights laid out as its training steps keep them
    /// ([`layout::for_training`]), however they were made.
    fn with_weights_laid_out(mut self) -> Self {
        self.lay_out_weights();
        self
    }

    fn lay_out_weights(&mut self) {
        let kind = self.runtime.precision.kind();
        self.model.update(|model| layout::for_training(model, kind));
    }

    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    pub fn history(&self) -> &[EpochRow] {
        &self.history
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    pub fn parameter_count(&self) -> usize {
        self.model.parameter_count()
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The calibration temperature, when the learner was calibrated since it last trained.
    pub fn temperature(&self) -> Option<f32> {
        self.temperature
    }

    /// Sets (or clears) the calibration temperature; kept by the next [`Learner::save`].
    pub fn set_temperature(&mut self, temperature: Option<f32>) {
        self.temperature = temperature;
    }

    /// Whether this learner was trained on the split that `data` holds.
    pub fn check_data(&self, data: &TrainData) -> Result<()> {
        if data.classes != self.classes {
            return Err(fixable(
                format!(
                    "the checkpoint in {} was trained on classes {:?}, the dataset now has {:?}",
                    self.run_dir.display(),
                    self.classes,
                    data.classes
                ),
                [Remedy::StartFresh],
            ));
        }
        if data.cache.side() != self.image_size {
            return Err(fixable(
                format!(
                    "the checkpoint in {} was trained on {}px images, not {}px",
                    self.run_dir.display(),
                    self.image_size,
                    data.cache.side()
                ),
                [Remedy::ImageSize(self.image_size), Remedy::StartFresh],
            ));
        }
        if data.window != self.window {
            return Err(fixable(
                format!(
                    "the checkpoint in {} was trained on images in window {}, not {}",
                    self.run_dir.display(),
                    self.window,
                    data.window
                ),
                [Remedy::Window(self.window), Remedy::StartFresh],
            ));
        }
        Ok(())
    }

    /// fastai's `fit_one_cycle(epochs, max_lr)`. An interrupted cycle is resumed where it
    /// stopped (its schedule kept); otherwise a new cycle starts, continuing the weights,
    /// the optimizer state and the epoch numbers. Stopped on request, it fails with
    /// [`Cancelled`] and the last completed epoch's checkpoint stands.
    pub fn fit_one_cycle(
        &mut self,
        data: &TrainData,
        epochs: usize,
        max_lr: MaxLr,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<()> {
        self.check_data(data)?;
        let (world_size, share) = match &self.runtime.distributed {
            Some(distributed) => (distributed.size(), distributed.training_share(data.train.len())),
            None => (1, data.train.len()),
        };
        let steps_per_epoch = share / self.settings.batch_size.max(1);
        if steps_per_epoch == 0 {
            let per_rank = if world_size > 1 { format!(" ({share} per process)") } else { String::new() };
            return Err(fixable(
                format!(
                    "{} training images{per_rank} make no full batch of {}",
                    data.train.len(),
                    self.settings.batch_size
                ),
                [Remedy::SmallerBatch],
            ));
        }
        let cycle = match self.cycle.take() {
            Some(mut cycle) if !cycle.is_complete() => {
                emit.info(format!(
                    "resuming the interrupted {}-epoch cycle at its epoch {} (a new learner starts over)",
                    cycle.epochs,
                    cycle.epochs_done + 1
                ));
                if cycle.steps_per_epoch != steps_per_epoch {
                    emit.info(format!(
                        "an epoch is now {steps_per_epoch} batches, not {} (another batch size or number of processes): the rest of the cycle keeps its shape",
                        cycle.steps_per_epoch
                    ));
                    cycle.rescale(steps_per_epoch);
                }
                cycle
            }
            _ => CyclePosition {
                schedule: OneCycle::new(epochs * steps_per_epoch, max_lr.per_group(GROUPS.len())),
                epochs,
                epochs_done: 0,
                steps_per_epoch,
            },
        };
        emit.emit(Event::TrainStarted(TrainStart {
            arch: self.arch.name().into(),
            device: self.device_label.clone(),
            precision: self.runtime.precision.name().into(),
            classes: self.classes.clone(),
            first_epoch: self.epochs_done,
            cycle_epochs: cycle.epochs,
            cycle_epochs_done: cycle.epochs_done,
            batches_per_epoch: steps_per_epoch,
            world_size,
            train_images: data.train.len(),
            valid_images: data.valid.len(),
            max_lrs: cycle.schedule.max_lrs.clone(),
        }));
        if self.temperature.take().is_some() {
            emit.info(
                "training changes the weights: the calibration temperature is dropped (calibrating again fits a new one)"
                    .into(),
            );
        }
        self.cycle = Some(cycle);
        let monitor = self.settings.monitor;
        let (mut schedule, mut nan, mut batches, mut record) =
            (OneCycleSchedule, TerminateOnNan, BatchEvents(emit), EpochRecord(emit));
        let mut early_stopping = self.settings.patience.map(|patience| EarlyStopping::new(monitor, patience, emit));
        let mut checkpoints = SaveCheckpoints { monitor, emit };
        let mut callbacks: Vec<&mut dyn Callback> = vec![&mut schedule, &mut nan, &mut batches, &mut record];
        if let Some(early_stopping) = early_stopping.as_mut() {
            callbacks.push(early_stopping);
        }
        // In a process group every rank holds the same learner: rank 0 writes it.
        if self.runtime.distributed.as_ref().is_none_or(|distributed| distributed.rank() == 0) {
            callbacks.push(&mut checkpoints);
        }
        let plan = LoopPlan { first_epoch: self.epochs_done, validate: true };
        match fit::run(self, data, plan, &mut callbacks, emit, cancel)? {
            LoopEnd::Stopped => {
                emit.emit(Event::TrainFinished { epochs: self.cycle.as_ref().map_or(0, |cycle| cycle.epochs_done) });
                Ok(())
            }
            LoopEnd::Cancelled => {
                emit.emit(Event::TrainCancelled { completed_epochs: self.epochs_done });
                Err(Cancelled.into())
            }
        }
    }

    pub(super) fn cycle(&self) -> Option<&CyclePosition> {
        self.cycle.as_ref()
    }

    pub(super) fn cycle_mut(&mut self) -> Option<&mut CyclePosition> {
        self.cycle.as_mut()
    }

    /// An epoch done: the next epoch's number moves on and its row joins the history.
    pub(super) fn record_epoch(&mut self, row: EpochRow) {
        self.epochs_done += 1;
        self.history.push(row);
    }

    /// Every layer group's learning rate and beta1 for the next step.
    pub(super) fn set_hypers(&self, lrs: &[f64], beta1: f64) {
        self.hypers.set(lrs, beta1);
    }

    /// The head group's learning rate for the next step (the one the tables show).
    pub(super) fn head_lr(&self) -> f64 {
        self.hypers.lr(GROUPS.len() - 1)
    }

    /// Epoch `epoch`'s training batches: shuffled and augmented by (seed, epoch); in a process
    /// group, this rank's share of them.
    pub(super) fn training_batches(&self, data: &TrainData, epoch: usize) -> Prefetcher {
        let plan =
            BatchPlan::training(&data.train, self.settings.batch_size, Augment::default(), self.settings.seed, epoch);
        let plan = match &self.runtime.distributed {
            Some(distributed) => distributed.shard(plan),
            None => plan,
        };
        self.runtime.feed.batches(data.cache.clone(), plan)
    }

    /// Whether the loop stops before its next batch: when `cancel` is set, or in a process group
    /// when the ranks agreed to (each rank's request travels with its gradients).
    pub(super) fn stop_requested(&self, cancel: &CancelToken) -> bool {
        match &self.runtime.distributed {
            Some(distributed) => distributed.stop_agreed(),
            None => cancel.is_cancelled(),
        }
    }

    /// Makes this learner a rank of a data-parallel training (see [`super::distributed`]); its
    /// state must be the same as every other rank's.
    pub(super) fn join(&mut self, distributed: Distributed) {
        self.runtime.distributed = Some(distributed);
    }

    /// Sets every layer group's learning rate (and beta1 0.9) for steps outside a one-cycle
    /// fit: benchmarks and the learning-rate finder.
    pub fn set_learning_rate(&self, lr: f64) {
        self.hypers.set(&vec![lr; GROUPS.len()], 0.9);
    }

    /// One optimizer step on `batch` at the current hyper-parameters; returns its mean loss,
    /// waiting for the device to have computed it (see [`Learner::train_step`]).
    pub fn train_batch(&mut self, batch: &Batch) -> f64 {
        self.train_step(batch).read()
    }

    /// One optimizer step on `batch` at the current hyper-parameters, queued without waiting
    /// for the device: its mean loss stays there until read. In fp16 an overflowing step is
    /// skipped (the loss is still the step's), and the step reads an overflow flag. A learner
    /// in a process group trains through [`Learner::fit_one_cycle`], which takes its errors.
    pub fn train_step(&mut self, batch: &Batch) -> PendingLoss {
        self.step(batch).expect("only a step in a process group fails")
    }

    /// [`Learner::train_step`]; in a process group the gradients are averaged over the ranks
    /// (which fails when a rank is lost).
    pub(super) fn step(&mut self, batch: &Batch) -> Result<PendingLoss> {
        let (pending, grads) = self.backward(batch)?;
        if let Some(scaler) = &mut self.runtime.scaler
            && !scaler.unscale(&*self.model, &grads)
        {
            return Ok(pending);
        }
        // burn's own learning rate is unused: CycledAdamW reads the group rates from `hypers`.
        let optimizer = &mut self.optimizer;
        self.model.update(|model| optimizer.step(1.0, model, grads));
        Ok(pending)
    }

    /// The gradients a training step on `batch` applies, one tensor per trainable parameter in
    /// the model's order (multiplied by the loss scale under fp16; in a process group, averaged
    /// over the ranks). The weights stay as they are; BatchNorm's running statistics move, as
    /// in any training pass.
    pub fn gradients(&mut self, batch: &Batch) -> Result<Vec<tch::Tensor>> {
        let (_, grads) = self.backward(batch)?;
        Ok(gradient_tensors(&*self.model, &grads))
    }

    /// A training step's forward and backward passes: its loss and gradients.
    fn backward(&mut self, batch: &Batch) -> Result<(PendingLoss, GradientsParams)> {
        let (images, targets) = inference::batch_tensors(batch, &self.device, self.runtime.precision.kind());
        let batch_norm_scope = self.runtime.distributed.as_ref().and_then(Distributed::batch_norm_scope);
        let logits = self.model.forward(images);
        let loss = CrossEntropyLossConfig::new().init(&self.device).forward(logits, targets);
        let mut pending = PendingLoss::new(&loss);
        let scale = self.runtime.scaler.as_ref().map(GradScaler::scale);
        let loss = match scale {
            Some(scale) => loss.mul_scalar(scale),
            None => loss,
        };
        let grads = GradientsParams::from_grads(loss.backward(), &*self.model);
        drop(batch_norm_scope);
        if let Some(distributed) = &mut self.runtime.distributed {
            distributed.average(&self.model, &grads, &mut pending)?;
        }
        Ok((pending, grads))
    }

    /// fastai's `ps`: the head's dropout, `ps / 2` before its first linear layer and `ps` before
    /// its last (0.5 unless changed; 0 turns it off, for steps that must not draw at random).
    pub fn set_head_dropout(&mut self, ps: f64) {
        self.model.head.drop1.prob = ps / 2.0;
        self.model.head.drop2.prob = ps;
    }

    /// What training steps compute in.
    pub fn precision(&self) -> Precision {
        self.runtime.precision
    }

    /// Loss, error rate and accuracy on the validation images.
    pub fn validate(&self, data: &TrainData, emit: &dyn Emit, cancel: &CancelToken) -> Result<Tally> {
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        let Some(distributed) = &self.runtime.distributed else {
            return Ok(self.pass(&model, &device, emit, cancel).tally(data.cache.clone(), &data.valid)?);
        };
        // Every rank validates its share to the end (a rank that stopped early would leave the
        // others waiting); a stop is agreed at the next step.
        let share = distributed.validation_share(&data.valid);
        let tally = self.pass(&model, &device, emit, &CancelToken::new()).tally(data.cache.clone(), &share)?;
        distributed.sum_tally(tally)
    }

    /// Log-probabilities of `items` (positions in `data.cache`).
    pub fn predict(
        &self,
        data: &TrainData,
        items: &[usize],
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Predictions, Cancelled> {
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        self.pass(&model, &device, emit, cancel).predict(data.cache.clone(), items)
    }

    /// A validation pass of `model` (this learner's, in inference mode) with its batches.
    fn pass<'a>(
        &self,
        model: &'a Classifier,
        device: &'a Device,
        emit: &'a dyn Emit,
        cancel: &'a CancelToken,
    ) -> Pass<'a> {
        let (batch_size, feed) = (self.settings.batch_size, self.runtime.feed);
        Pass { model, device, batch_size, feed, stage: Stage::Validate, emit, cancel }
    }

    /// The augmented passes of test-time augmentation over `items`, uncalibrated (combine them
    /// with the plain pass in [`inference::TtaPredictions::new`]).
    pub fn predict_augmented(
        &self,
        data: &TrainData,
        items: &[usize],
        tta: Tta,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Vec<Predictions>, Cancelled> {
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        self.pass(&model, &device, emit, cancel).predict_augmented(data.cache.clone(), items, tta)
    }

    /// Grad-CAM heatmaps of `items` (positions in `data.cache`), each for the class at the same
    /// position of `classes`.
    pub fn grad_cam(&self, data: &TrainData, items: &[usize], classes: &[usize]) -> Result<Vec<Heatmap>> {
        cam::check(self.arch, self.image_size)?;
        cam::grad_cam(&self.model, &self.device, data.cache.clone(), items, classes, self.settings.batch_size)
    }

    /// Scores gray `image_size`-square images (an image file's, not the dataset's), in order,
    /// the calibration temperature applied, as `learn.predict` does.
    pub fn predict_images(
        &self,
        images: Vec<Vec<u8>>,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Predictions, Cancelled> {
        let items: Vec<usize> = (0..images.len()).collect();
        let cache = Arc::new(ImageCache::unlabelled(self.image_size, images));
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        let predictions = self.pass(&model, &device, emit, cancel).predict(cache, &items)?;
        Ok(predictions.with_temperature(self.temperature()))
    }

    /// Grad-CAM heatmaps of gray `image_size`-square images, each for the class at the same
    /// position of `classes`.
    pub fn grad_cam_images(&self, images: Vec<Vec<u8>>, classes: &[usize]) -> Result<Vec<Heatmap>> {
        cam::check(self.arch, self.image_size)?;
        let items: Vec<usize> = (0..images.len()).collect();
        let cache = Arc::new(ImageCache::unlabelled(self.image_size, images));
        cam::grad_cam(&self.model, &self.device, cache, &items, classes, self.settings.batch_size)
    }

    /// fastai's `freeze()` / `unfreeze()`: with the body frozen only the head and the
    /// BatchNorm layers train. Kept by the next [`Learner::save`].
    pub fn set_frozen(&mut self, frozen: bool) {
        self.model.update(|model| if frozen { model.freeze_body() } else { model.unfreeze_body() });
        self.frozen = frozen;
    }

    /// Puts torchvision weights from `path` into the body and freezes it, as fastai's
    /// `vision_learner` does with a pretrained model.
    pub fn load_pretrained(&mut self, path: &Path) -> Result<()> {
        pretrained::load_body(&mut self.model.body, path)?;
        self.lay_out_weights();
        self.set_frozen(true);
        Ok(())
    }

    /// fastai's `lr_find()`: trains on batches at exponentially growing learning rates and
    /// records the smoothed loss, then puts the weights, BatchNorm statistics and optimizer
    /// state back exactly as they were, cancelled or not.
    pub fn lr_find(
        &mut self,
        data: &TrainData,
        options: &LrFindOptions,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<LrFindResult> {
        self.check_data(data)?;
        let batch_size = self.settings.batch_size.max(1);
        if data.train.len() < batch_size {
            return Err(fixable(
                format!("{} training images make no full batch of {batch_size}", data.train.len()),
                [Remedy::SmallerBatch],
            ));
        }
        let saved = self.snapshot()?;
        let total = Some(options.iterations as u64);
        emit.emit(Event::StageStarted { stage: Stage::LrFind, total });
        let mut sweep = LrSweep { options: *options, recorder: LrRecorder::new(*options), emit };
        let plan = LoopPlan { first_epoch: 0, validate: false };
        let end = fit::run(self, data, plan, &mut [&mut sweep], emit, cancel);
        emit.emit(Event::StageFinished { stage: Stage::LrFind });
        self.restore(saved)?;
        if end? == LoopEnd::Cancelled {
            return Err(Cancelled.into());
        }
        Ok(sweep.recorder.finish())
    }

    /// The weights (BatchNorm statistics included) and optimizer state, serialised.
    fn snapshot(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let optimizer = self.optimizer.into_bytes().context("cannot serialise the optimizer state")?;
        Ok((self.weight_bytes()?.to_vec(), optimizer.to_vec()))
    }

    /// What another rank needs to become this learner: its state, weights and optimizer state.
    pub(super) fn share(&self) -> Result<(SharedState, Vec<u8>, Vec<u8>)> {
        let (model, optimizer) = self.snapshot()?;
        let state = SharedState {
            arch: self.arch,
            image_size: self.image_size,
            window: self.window,
            split_fingerprint: self.split_fingerprint.clone(),
            frozen: self.frozen,
            epochs_done: self.epochs_done,
            cycle: self.cycle.clone(),
        };
        Ok((state, model, optimizer))
    }

    /// Becomes the learner another rank [`Learner::share`]d (of the same architecture).
    pub(super) fn adopt(&mut self, state: SharedState, model: Vec<u8>, optimizer: Vec<u8>) -> Result<()> {
        (self.frozen, self.epochs_done, self.cycle) = (state.frozen, state.epochs_done, state.cycle);
        self.restore((model, optimizer))
    }

    /// Back to a [`Learner::snapshot`], in fresh modules: training passes since may have left
    /// BatchNorm updates pending in the current ones.
    fn restore(&mut self, saved: (Vec<u8>, Vec<u8>)) -> Result<()> {
        let shape = (self.arch, self.classes.len(), self.frozen);
        let saved = Saved::Bytes(saved.0, saved.1);
        (*self.model, self.optimizer) =
            load_state(shape, saved, &self.hypers, self.settings.weight_decay, &self.device)
                .context("cannot restore the weights saved before the sweep")?;
        self.lay_out_weights();
        Ok(())
    }

    /// The weights, BatchNorm statistics included.
    fn weight_record(&self) -> ModuleRecord {
        // `valid()` folds a pending BatchNorm statistics update in before the record is taken.
        let _ = self.model.valid();
        self.model.clone().into_record()
    }

    /// The weights as a burnpack record in memory.
    fn weight_bytes(&self) -> Result<Bytes> {
        self.weight_record().into_bytes().context("cannot serialise the weights")
    }

    /// The lesson's `learn.export()`: one file with the weights and what prediction needs.
    pub fn export(&self, path: &Path) -> Result<()> {
        export::write(path, &self.export_header()?, &self.weight_bytes()?)
    }

    /// The model as a standard ONNX file (see [`onnx`]), for inference servers.
    pub fn export_onnx(&self, path: &Path) -> Result<OnnxSummary> {
        onnx::write(&self.model.valid(), &self.export_header()?, path)
    }

    fn export_header(&self) -> Result<ExportHeader> {
        if self.epochs_done == 0 {
            bail!(
                "the {} in {} is not trained yet: run `mednist train` before exporting it",
                self.arch,
                self.run_dir.display()
            );
        }
        let header = ExportHeader::new(self.arch, self.classes.clone(), self.image_size, self.window, self.epochs_done);
        Ok(header.with_temperature(self.temperature))
    }

    /// Writes the checkpoint for the epochs done so far into the run folder: a fit does after
    /// every epoch, `set_frozen` needs it to last. The records are streamed to their files
    /// one after the other, never held whole in memory beside the model.
    pub fn save(&self) -> Result<PathBuf> {
        if self.opened_at != Which::Last {
            bail!(
                "this learner was opened at an earlier epoch than the latest in {}: saving it would replace the latest checkpoint",
                self.run_dir.display()
            );
        }
        let state = CheckpointState {
            format: 0,
            arch: self.arch,
            classes: self.classes.clone(),
            image_size: self.image_size,
            window: self.window,
            split_fingerprint: self.split_fingerprint.clone(),
            frozen: self.frozen,
            epochs_done: self.epochs_done,
            cycle: self.cycle.clone().context("a checkpoint is written during a fit")?,
            history: self.history.clone(),
            model_file: String::new(),
            optimizer_file: String::new(),
            temperature: self.temperature,
        };
        checkpoint::save(
            &self.run_dir,
            &state,
            |path| Ok(self.weight_record().save(path)?),
            |path| Ok(self.optimizer.save(path)?),
        )
    }
}

/// One optimizer per (layer group, weight decay or not); the last matching group wins.
/// The learner's model, which a step moves out and back: the optimizer updates a parameter in
/// place only when nothing else holds it, and a clone passed in made it copy every weight (all
/// 21M of ResNet34's) on every step.
struct Slot<T>(Option<T>);

impl<T> Slot<T> {
    fn update(&mut self, step: impl FnOnce(T) -> T) {
        let value = self.0.take().expect("the model is away only during its own update");
        self.0 = Some(step(value));
    }
}

impl<T> Deref for Slot<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("the model is away only during its own update")
    }
}

impl<T> DerefMut for Slot<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("the model is away only during its own update")
    }
}

fn build_optimizer(hypers: &Arc<Hypers>, weight_decay: f64) -> ModuleOptimizer {
    let adam = |group: usize, weight_decay: f64| CycledAdamW {
        hypers: hypers.clone(),
        group,
        weight_decay,
        beta2: 0.99,
        eps: 1e-5,
    };
    let head = GROUPS.iter().position(|g| *g == LayerGroup::Head).expect("a head group");
    let mut optimizer = ModuleOptimizer::from(adam(head, weight_decay));
    for (index, group) in GROUPS.iter().enumerate() {
        if index != head {
            optimizer = optimizer.with_group(Classifier::group(*group), adam(index, weight_decay), None);
        }
        optimizer = optimizer.with_group(no_decay_in(*group), adam(index, 0.0), None);
    }
    optimizer
}

fn no_decay_in(group: LayerGroup) -> ParamGroup {
    ParamGroup::from_regex(format!(r"^{}\..*\.(gamma|beta|bias)$", group.field())).expect("a valid pattern")
}

/// Saved weights and optimizer state: a snapshot in memory, or a checkpoint's files.
enum Saved<'a> {
    Bytes(Vec<u8>, Vec<u8>),
    Files(&'a Path, &'a Path),
}

/// A model and its optimizer rebuilt from what was saved of them, for (architecture,
/// classes, frozen).
fn load_state(
    (arch, classes, frozen): (Arch, usize, bool),
    saved: Saved,
    hypers: &Arc<Hypers>,
    weight_decay: f64,
    device: &Device,
) -> Result<(Classifier, ModuleOptimizer)> {
    let optimizer = build_optimizer(hypers, weight_decay);
    let (record, optimizer): (Result<ModuleRecord>, Result<ModuleOptimizer>) = match saved {
        Saved::Bytes(model, state) => (
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(model)).context("the weights cannot be read"),
            optimizer.from_bytes(Bytes::from_bytes_vec(state)).context("the optimizer state cannot be read"),
        ),
        Saved::Files(model, state) => (
            ModuleRecord::load(model).with_context(|| format!("the weights in {} cannot be read", model.display())),
            optimizer.load(state).with_context(|| format!("the optimizer state in {} cannot be read", state.display())),
        ),
    };
    let model = Classifier::new(arch, classes, device)
        .try_load_record(record?)
        .with_context(|| format!("the weights do not fit a {arch}"))?;
    let optimizer = optimizer?;
    Ok((if frozen { model.freeze_body() } else { model }, optimizer))
}
