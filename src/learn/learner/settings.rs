//! What a learner is set up with, and how those settings play out on its device.

use burn::tensor::Device;

use crate::data::batches::Feed;
use crate::learn::callbacks::Monitor;
use crate::learn::cuda::CudaSettings;
use crate::learn::device::libtorch_device;
use crate::learn::distributed::Distributed;
use crate::learn::precision::{GradScaler, Precision};

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
pub(super) struct Runtime {
    pub(super) feed: Feed,
    pub(super) precision: Precision,
    /// fp16's loss scaling.
    pub(super) scaler: Option<GradScaler>,
    /// Its place in a data-parallel training, when it has one.
    pub(super) distributed: Option<Distributed>,
}

impl Runtime {
    /// Also sets LibTorch's CUDA flags when `device` is a GPU.
    pub(super) fn new(device: &Device, settings: &LearnerSettings) -> Self {
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
