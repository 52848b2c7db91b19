//! The classifier fastai's `vision_learner` builds: a torchvision ResNet body and fastai's head.
//!
//! # Layer groups, freezing and discriminative learning rates (burn 0.22)
//!
//! fastai splits the model into two layer groups, the pretrained [`LayerGroup::Body`] and the
//! new [`LayerGroup::Head`]. [`Classifier::group`] turns each into a burn
//! [`ParamGroup`] that matches module paths (`body.layer1.0.conv1.weight`, relative to the
//! [`Classifier`]), so a group stays valid after loading a record, which replaces
//! [`ParamId`]s. burn's optimizer takes those groups directly; nothing splits gradients:
//!
//! - **Freezing** (`learn.freeze()`): [`Classifier::freeze_body`] stops gradients for the body's
//!   weights but keeps its BatchNorm parameters trainable and its BatchNorm layers in training
//!   mode, as fastai's `train_bn=True` does. Frozen weights get no gradient, so
//!   `ModuleOptimizer::step` leaves them (and their weight decay) alone, and the backward pass
//!   skips their weight gradients. [`Classifier::unfreeze_body`] undoes it. (burn's
//!   `Module::freeze_group` would also switch BatchNorm to inference mode: not what fastai does.)
//! - **Discriminative learning rates** (`lr_max=slice(lo, hi)`): one scheduler per group,
//!   `ModuleLrScheduler::new(head_schedule).with_group(Classifier::group(LayerGroup::Body),
//!   body_schedule)`; each `scheduler.step()` yields a `ModuleLearningRate` to pass to
//!   `optimizer.step(lr, model, grads)`. The first scheduler must cover every parameter; the
//!   last group that matches a parameter wins.
//! - **No weight decay on BatchNorm parameters and biases** (fastai's `wd_bn_bias=False`): a
//!   second optimizer for [`Classifier::no_weight_decay`],
//!   `AdamWConfig::new().with_weight_decay(wd).init().with_group(Classifier::no_weight_decay(),
//!   AdamWConfig::new().with_weight_decay(0.0).build(), None)`.
//!
//! - **Saving**: burn keeps a training pass's BatchNorm running-statistics update pending until
//!   the next pass or `valid()`; run `valid()` (a validation pass does) before `into_record()`,
//!   or the checkpoint misses the last batch's update.
//!
//! [`named_tensors`] lists every tensor with its path and [`TensorKind`], for parameter counts
//! and for checking what a group matches.

mod conv_taps;
mod head;
mod kernels;
pub mod layout;
mod ops;
mod resnet;
mod sync_batch_norm;

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use head::Head;
pub use kernels::{AdamW, amp_unscale, fused_adamw};
pub use resnet::{Block, ResNet};

/// The ResNet variants fastai's lesson offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Resnet18,
    #[default]
    Resnet34,
    Resnet50,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::Resnet18, Arch::Resnet34, Arch::Resnet50];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
        }
    }

    /// Channels of the body's last feature map.
    pub fn features(self) -> usize {
        if self.is_bottleneck() { 2048 } else { 512 }
    }

    fn is_bottleneck(self) -> bool {
        self == Arch::Resnet50
    }

    fn blocks_per_stage(self) -> [usize; 4] {
        match self {
            Arch::Resnet18 => [2, 2, 2, 2],
            Arch::Resnet34 | Arch::Resnet50 => [3, 4, 6, 3],
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|arch| arch.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownArch(name.to_string()))
    }
}

/// A name that is not one of [`Arch::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown architecture {0:?}: expected one of {names}", names = arch_names())]
pub struct UnknownArch(pub String);

fn arch_names() -> String {
    Arch::ALL.map(Arch::name).join(", ")
}

/// fastai's two layer groups, in the order its learning-rate slices address them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerGroup {
    Body,
    Head,
}

impl LayerGroup {
    /// The [`Classifier`] field holding the group.
    pub fn field(self) -> &'static str {
        match self {
            LayerGroup::Body => "body",
            LayerGroup::Head => "head",
        }
    }
}

/// Images `[batch, 3, h, w]` in, class logits `[batch, classes]` out.
#[derive(Module, Debug)]
pub struct Classifier {
    pub body: ResNet,
    pub head: Head,
}

impl Classifier {
    /// A freshly initialised model (torchvision's init for the body, fastai's for the head).
    /// Parameters are created lazily, on first use.
    pub fn new(arch: Arch, num_classes: usize, device: &Device) -> Self {
        Self { body: ResNet::new(arch, device), head: Head::new(arch.features(), num_classes, device) }
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.body.forward(images))
    }

    /// Learnable parameters (as PyTorch's `parameters()` counts them: no BatchNorm running
    /// statistics).
    pub fn parameter_count(&self) -> usize {
        parameter_count(self)
    }

    /// The parameters of one layer group, matched by module path.
    pub fn group(group: LayerGroup) -> ParamGroup {
        path_group(&format!(r"^{}\.", group.field()))
    }

    /// BatchNorm weights and biases (burn's `gamma`/`beta`) and every other bias: the
    /// parameters fastai trains without weight decay, and the BatchNorm ones stay trainable
    /// when the body is frozen.
    pub fn no_weight_decay() -> ParamGroup {
        path_group(r"\.(gamma|beta|bias)$")
    }

    /// fastai's `freeze()`: only the head and the body's BatchNorm parameters train.
    pub fn freeze_body(self) -> Self {
        self.set_require_grad_group(Self::frozen_when_body_frozen(), false)
    }

    /// fastai's `unfreeze()`: every parameter trains again.
    pub fn unfreeze_body(self) -> Self {
        self.set_require_grad_group(Self::frozen_when_body_frozen(), true)
    }

    fn frozen_when_body_frozen() -> ParamGroup {
        Self::group(LayerGroup::Body).exclude(path_group(r"\.(gamma|beta)$"))
    }
}

fn path_group(pattern: &str) -> ParamGroup {
    ParamGroup::from_regex(pattern).expect("layer group patterns are valid regexes")
}

/// What a float tensor of a module is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorKind {
    /// A convolution or linear weight.
    Weight,
    /// A convolution or linear bias.
    Bias,
    /// A BatchNorm's learnable scale or shift (`gamma`/`beta`).
    Norm,
    /// A BatchNorm's running mean or variance: state, not a parameter.
    RunningStat,
}

impl TensorKind {
    pub fn is_learnable(self) -> bool {
        self != TensorKind::RunningStat
    }
}

/// One float tensor of a module: its module path, id, shape and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub path: String,
    pub id: ParamId,
    pub shape: Vec<usize>,
    pub kind: TensorKind,
}

impl NamedTensor {
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every float tensor of `module` (parameters and BatchNorm running statistics), in module
/// order, without initialising lazy parameters.
pub fn named_tensors<M: Module>(module: &M) -> Vec<NamedTensor> {
    let mut lister = TensorLister::default();
    module.visit(&mut lister);
    lister.tensors
}

/// Learnable parameters of `module` (no BatchNorm running statistics, unlike
/// `Module::num_params`).
pub fn parameter_count<M: Module>(module: &M) -> usize {
    named_tensors(module).iter().filter(|tensor| tensor.kind.is_learnable()).map(NamedTensor::num_elements).sum()
}

#[derive(Default)]
struct TensorLister {
    /// Module path so far, with the container type each name was entered from.
    path: Vec<(String, String)>,
    tensors: Vec<NamedTensor>,
}

impl ModuleVisitor for TensorLister {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some((name, owner)) = self.path.last() else {
            return;
        };
        let kind = match (owner.as_str(), name.as_str()) {
            ("Struct:BatchNorm", "running_mean" | "running_var") => TensorKind::RunningStat,
            ("Struct:BatchNorm", _) => TensorKind::Norm,
            (_, "bias") => TensorKind::Bias,
            _ => TensorKind::Weight,
        };
        let path = self.path.iter().map(|(name, _)| name.as_str());
        self.tensors.push(NamedTensor {
            path: path.collect::<Vec<_>>().join("."),
            id: param.id,
            shape: param.lazy_shape().to_vec(),
            kind,
        });
    }
}
