//! fastai's classification head (`create_head` with its defaults).

use burn::module::Module;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{DType, Device, FloatDType, Tensor};

use super::ops;

/// Width of the hidden layer fastai puts between the pooled features and the classes.
const HIDDEN: usize = 512;

/// AdaptiveConcatPool2d, flatten, BatchNorm1d, Dropout(0.25), Linear(features*2 → 512, no
/// bias), ReLU, BatchNorm1d(512), Dropout(0.5), Linear(512 → classes, no bias).
#[derive(Module, Debug)]
pub struct Head {
    pub avgpool: AdaptiveAvgPool2d,
    pub bn1: BatchNorm,
    pub drop1: Dropout,
    pub fc1: Linear,
    pub bn2: BatchNorm,
    pub drop2: Dropout,
    pub fc2: Linear,
}

impl Head {
    /// A head for a body that outputs `features` channels.
    pub fn new(features: usize, num_classes: usize, device: &Device) -> Self {
        let pooled = 2 * features;
        Self {
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            bn1: batch_norm(pooled, device),
            drop1: DropoutConfig::new(0.25).init(),
            fc1: linear(pooled, HIDDEN, device),
            bn2: batch_norm(HIDDEN, device),
            drop2: DropoutConfig::new(0.5).init(),
            fc2: linear(HIDDEN, num_classes, device),
        }
    }

    /// `[batch, features, h, w]` feature maps to `[batch, classes]` logits, in f32 whatever the
    /// body computed in (mixed precision: the head's matmuls are a sliver of the work, and
    /// its BatchNorm, linear layers and the loss are simplest and safest in f32).
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        let features = if features.dtype() == DType::F32 { features } else { features.cast(FloatDType::F32) };
        // AdaptiveConcatPool2d: max pool first, then average pool, as fastai concatenates them.
        let max = features.clone().flatten::<3>(2, 3).max_dim(2);
        let avg = self.avgpool.forward(features).flatten::<3>(2, 3);
        let x = Tensor::cat(vec![max, avg], 1).flatten::<2>(1, 2);
        let x = self.fc1.forward(self.drop1.forward(ops::batch_norm(&self.bn1, x)));
        let x = ops::relu(x);
        self.fc2.forward(self.drop2.forward(ops::batch_norm(&self.bn2, x)))
    }
}

/// fastai's `BatchNorm(nf, ndim=1)`: weight 1 and a small positive bias (1e-3).
fn batch_norm(features: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(features).init(device);
    bn.beta = Initializer::Constant { value: 1e-3 }.init([features], device);
    bn
}

/// fastai initialises the head's linear layers with `nn.init.kaiming_normal_` (fan-in, ReLU
/// gain); they have no bias because a BatchNorm precedes each.
fn linear(d_input: usize, d_output: usize, device: &Device) -> Linear {
    LinearConfig::new(d_input, d_output)
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: false })
        .init(device)
}
