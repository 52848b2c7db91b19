//! The ResNet body (torchvision's `resnet18/34/50` without `avgpool` and `fc`).
//!
//! Field names follow torchvision's module names, so a parameter's module path is its
//! state-dict key: `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight` (the downsample is a
//! `(Conv2d, BatchNorm)` tuple, whose elements burn names `0` and `1` as torchvision's
//! `nn.Sequential` does). Only BatchNorm's affine parameters are named differently: burn's
//! `gamma`/`beta` are torchvision's `weight`/`bias`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::Arch;
use super::ops;

/// torchvision's ResNet up to and including `layer4`: 3-channel images in,
/// `[batch, arch.features(), h/32, w/32]` feature maps out.
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
}

/// A residual block: torchvision's `BasicBlock` (two 3x3 convolutions) or, when `conv3`/`bn3`
/// are present, its `Bottleneck` (1x1 reduce, 3x3, 1x1 expand). One type for both keeps the
/// module paths free of an enum variant name, which torchvision's keys do not have.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    /// Both `Some` in a bottleneck block, both `None` in a basic block.
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    /// Projects the input when the block changes resolution or width.
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

impl ResNet {
    pub fn new(arch: Arch, device: &Device) -> Self {
        let bottleneck = arch.is_bottleneck();
        let expansion = if bottleneck { 4 } else { 1 };
        let mut in_channels = 64;
        let mut stage = |planes: usize, blocks: usize, stride: usize| {
            (0..blocks)
                .map(|index| {
                    let stride = if index == 0 { stride } else { 1 };
                    let block = if bottleneck {
                        Block::bottleneck(in_channels, planes, stride, device)
                    } else {
                        Block::basic(in_channels, planes, stride, device)
                    };
                    in_channels = planes * expansion;
                    block
                })
                .collect::<Vec<_>>()
        };
        let [n1, n2, n3, n4] = arch.blocks_per_stage();
        let layer1 = stage(64, n1, 1);
        let layer2 = stage(128, n2, 2);
        let layer3 = stage(256, n3, 2);
        let layer4 = stage(512, n4, 2);
        Self {
            conv1: conv(3, 64, 7, 2, device),
            bn1: batch_norm(64, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    /// Side of the feature maps out of `layer4` for square images of side `image_side`: the
    /// stem's convolution and max pool and the first block of layers 2 to 4 each halve it,
    /// rounding up (`(s + 2 * pad - kernel) / 2 + 1` with their kernels and paddings).
    pub fn output_side(image_side: usize) -> usize {
        (0..5).fold(image_side, |side, _| side.div_ceil(2))
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let x = ops::relu(ops::batch_norm(&self.bn1, ops::conv2d(&self.conv1, images)));
        let x = self.maxpool.forward(x);
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x))
    }
}

impl Block {
    fn basic(in_channels: usize, planes: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv1: conv(in_channels, planes, 3, stride, device),
            bn1: batch_norm(planes, device),
            conv2: conv(planes, planes, 3, 1, device),
            bn2: batch_norm(planes, device),
            conv3: None,
            bn3: None,
            downsample: downsample(in_channels, planes, stride, device),
        }
    }

    /// torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution.
    fn bottleneck(in_channels: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let out_channels = planes * 4;
        Self {
            conv1: conv(in_channels, planes, 1, 1, device),
            bn1: batch_norm(planes, device),
            conv2: conv(planes, planes, 3, stride, device),
            bn2: batch_norm(planes, device),
            conv3: Some(conv(planes, out_channels, 1, 1, device)),
            bn3: Some(batch_norm(out_channels, device)),
            downsample: downsample(in_channels, out_channels, stride, device),
        }
    }

    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = ops::relu(ops::batch_norm(&self.bn1, ops::conv2d(&self.conv1, input.clone())));
        let mut x = ops::batch_norm(&self.bn2, ops::conv2d(&self.conv2, x));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            x = ops::batch_norm(bn3, ops::conv2d(conv3, ops::relu(x)));
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => ops::batch_norm(bn, ops::conv2d(conv, input)),
            None => input,
        };
        ops::relu(x + identity)
    }
}

/// The projection shortcut torchvision adds when a block's output differs from its input.
fn downsample(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Option<(Conv2d, BatchNorm)> {
    (stride != 1 || in_channels != out_channels)
        .then(|| (conv(in_channels, out_channels, 1, stride, device), batch_norm(out_channels, device)))
}

/// A bias-free square convolution with "same"-style padding (`kernel / 2`), initialised as
/// torchvision does: Kaiming normal, fan-out mode, ReLU gain.
fn conv(in_channels: usize, out_channels: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true })
        .init(device)
}

/// torchvision's BatchNorm2d: weight 1, bias 0 (burn's defaults), eps 1e-5, momentum 0.1.
fn batch_norm(features: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features).init(device)
}
