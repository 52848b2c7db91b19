//! Opens the learner a training run continues: the one saved in the workspace's current run,
//! or a new one, with the data it trains on. `mednist train` and the TUI's Learner and Train
//! panes share this flow.

use anyhow::Result;

use super::data::TrainData;
use super::device::DeviceChoice;
use super::learner::{Learner, LearnerSettings};
use super::pretrained::{self, Pretrained};
use crate::data::settings::DatasetSettings;
use crate::data::window::Window;
use crate::event::Emit;
use crate::job::CancelToken;
use crate::learn::checkpoint::Which;
use crate::model::Arch;
use crate::remedy::{Remedy, fixable};
use crate::workspace::Workspace;

/// What to open.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenOptions {
    /// Architecture of a new learner [default: resnet34]; when resuming, a saved learner of
    /// another architecture is an error. `None` resumes whatever was saved.
    pub arch: Option<Arch>,
    /// Start a new learner even when one was saved.
    pub fresh: bool,
    /// Image side of a new learner (a resumed one keeps its own).
    pub image_size: usize,
    /// Window of a new learner [default: the dataset's, `data::settings`]; when resuming, a
    /// saved learner with another window is an error.
    pub window: Option<Window>,
    pub settings: LearnerSettings,
    pub device: DeviceChoice,
    /// Start a new learner from these weights, body frozen (fastai's pretrained default).
    pub pretrained: Option<Pretrained>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            arch: None,
            fresh: false,
            image_size: 64,
            window: None,
            settings: LearnerSettings::default(),
            device: DeviceChoice::Auto,
            pretrained: None,
        }
    }
}

/// A learner ready for `fit_one_cycle`, and its data.
pub struct Opened {
    pub learner: Learner,
    pub data: TrainData,
    /// Whether the learner continues a saved one.
    pub resumed: bool,
    /// Where it trains, for the user (`cpu (2 threads)`, `cuda:0`).
    pub device: String,
}

/// Resumes the learner saved in `workspace.current_run_dir()` (unless `options.fresh`) or
/// makes a new one, and loads the recorded split's images at the learner's size.
pub fn open_learner(
    workspace: &Workspace,
    options: &OpenOptions,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<Opened> {
    let run_dir = workspace.current_run_dir();
    let device = options.device.resolve()?;
    let previous = if options.fresh {
        None
    } else {
        Learner::resume(run_dir.clone(), device.clone(), options.settings.clone(), emit)?
    };
    if let (Some(learner), Some(arch)) = (&previous, options.arch)
        && learner.arch != arch
    {
        return Err(fixable(
            format!("the learner saved in {} is a {}, not a {arch}", run_dir.display(), learner.arch),
            [Remedy::StartFresh, Remedy::KeepArch(learner.arch)],
        ));
    }
    if let (Some(learner), Some(pretrained)) = (&previous, &options.pretrained) {
        return Err(fixable(
            format!(
                "a {} trained for {} epoch(s) is saved in {}: pretrained weights ({pretrained}) start a new learner",
                learner.arch,
                learner.epochs_done(),
                run_dir.display()
            ),
            [Remedy::StartFresh],
        ));
    }
    let arch = options.arch.unwrap_or_default();
    let weights = match (&previous, &options.pretrained) {
        (None, Some(source)) => Some(pretrained::resolve(source, arch, workspace, emit, cancel)?),
        _ => None,
    };
    if let (Some(learner), Some(window)) = (&previous, options.window)
        && learner.window != window
    {
        return Err(fixable(
            format!(
                "the learner saved in {} was trained on images in window {}, not {window}",
                run_dir.display(),
                learner.window
            ),
            [Remedy::StartFresh, Remedy::Window(learner.window)],
        ));
    }
    let dataset_window = DatasetSettings::load(workspace)?.window;
    let window = match &previous {
        Some(learner) => {
            if learner.window != dataset_window {
                emit.info(format!(
                    "the learner keeps the window it was trained with, {}, not the dataset's {dataset_window} \
                     (a fresh start takes the dataset's)",
                    learner.window
                ));
            }
            learner.window
        }
        None => options.window.unwrap_or(dataset_window),
    };
    let size = previous.as_ref().map_or(options.image_size, |learner| learner.image_size);
    let data = TrainData::load(workspace, size, &window, emit, cancel)?;
    let device_label = device.1.clone();
    let (learner, resumed) = match previous {
        Some(learner) => {
            emit.info(format!(
                "continuing the {} trained for {} epoch(s) (a fresh start makes a new one)",
                learner.arch,
                learner.epochs_done()
            ));
            (learner, true)
        }
        None => {
            let mut learner = Learner::new(arch, &data, device, run_dir, options.settings.clone());
            if let Some(weights) = weights {
                learner.load_pretrained(&weights)?;
                emit.info(format!(
                    "loaded {} into the {arch} body; the body is frozen (`mednist unfreeze` trains it too)",
                    weights.display()
                ));
            }
            (learner, false)
        }
    };
    Ok(Opened { learner, data, resumed, device: device_label })
}

/// The learner saved in the workspace's current run at checkpoint `which`, for the steps that
/// need a trained one.
pub fn open_saved(workspace: &Workspace, which: Which, device: DeviceChoice, emit: &dyn Emit) -> Result<Learner> {
    let run_dir = workspace.current_run_dir();
    let resumed = Learner::open_at(run_dir.clone(), which, device.resolve()?, LearnerSettings::default(), emit)?;
    resumed.ok_or_else(|| anyhow::anyhow!("no learner is saved in {}: run `mednist train` first", run_dir.display()))
}
