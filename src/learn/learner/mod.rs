//! The learner: a classifier, its optimizer and where it stands, trained with
//! `fit_one_cycle` as fastai's `Learner` does. It reports through events and knows
//! nothing of terminals.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use burn::module::ParamGroup;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;

use super::callbacks::LrSweep;
use super::checkpoint::{self, Checkpoint, CyclePosition, Which};
use super::data::TrainData;
use super::distributed::Distributed;
use super::fit::{self, LoopEnd, LoopPlan};
use super::inference;
use super::lr_find::{LrFindOptions, LrFindResult, LrRecorder};
use super::optimizer::{CycledAdamW, Hypers};
use super::precision::{GradScaler, Precision, gradient_tensors};
use super::pretrained;
use super::step::PendingLoss;
use crate::data::batches::Batch;
use crate::data::window::Window;
use crate::event::{Emit, EpochRow, Event, Stage};
use crate::job::{CancelToken, Cancelled};
use crate::model::{Arch, Classifier, LayerGroup, layout};
use crate::remedy::{Remedy, fixable};

mod fitting;
mod looking;
mod saved;
mod settings;

pub use settings::LearnerSettings;

use saved::{Saved, load_state};
use settings::Runtime;

/// Layer groups in the order learning-rate slices address them.
const GROUPS: [LayerGroup; 2] = [LayerGroup::Body, LayerGroup::Head];

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
}

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

/// One optimizer per (layer group, weight decay or not); the last matching group wins.
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
