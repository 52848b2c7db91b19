//! Grad-CAM (Selvaraju et al., 2017): where the model looked when it scored a class. The
//! ResNet's last convolutional stage (`layer4`) is the layer hooked: its feature maps `A` are
//! kept, the class's logit is differentiated with respect to them, each channel is weighted by
//! its mean gradient, and `relu(sum_k w_k A_k)` is the map, upsampled to the image and scaled
//! to [0, 1].

use std::sync::Arc;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use super::inference::batch_tensors;
use crate::data::batches::{BatchPlan, Prefetcher};
use crate::data::cache::ImageCache;
use crate::model::{Arch, Classifier, ResNet};
use crate::remedy::{Remedy, fixable};

/// One image's map for the class it was asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heatmap {
    /// Side of the feature map it was computed at (the image side / 32).
    pub grid: usize,
    /// Side of the image, and of `values`.
    pub side: usize,
    /// `side` x `side`, row-major, in [0, 1] (1 where the model looked hardest; all 0 when no
    /// region spoke for the class).
    pub values: Vec<f32>,
}

impl Heatmap {
    /// The share of the map's mass inside the rectangle `[x0, x1) x [y0, y1)` (pixels).
    pub fn mass_inside(&self, (x0, x1): (usize, usize), (y0, y1): (usize, usize)) -> f64 {
        let total: f64 = self.values.iter().map(|&v| f64::from(v)).sum();
        let inside: f64 = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| f64::from(self.values[y * self.side + x]))
            .sum();
        if total > 0.0 { inside / total } else { 0.0 }
    }
}

/// The smallest image side whose last stage (1/32 of it) is 2x2 or finer.
pub const CAM_MIN_SIZE: usize = 64;

/// Grad-CAM needs a last stage with more than one position to tell regions apart.
pub fn check(arch: Arch, image_size: usize) -> Result<()> {
    let grid = ResNet::output_side(image_size);
    if grid < 2 {
        return Err(fixable(
            format!(
                "Grad-CAM cannot locate anything at {image_size}px: the {arch}'s last convolutional stage (layer4) \
                 is {grid}x{grid} there, and a 2x2 map or finer needs {CAM_MIN_SIZE}px"
            ),
            [Remedy::MinImageSize(CAM_MIN_SIZE)],
        ));
    }
    Ok(())
}

/// The Grad-CAM of image `items[i]` of `cache` for class `classes[i]`, with `model` on an
/// autodiff `device` (its training state is left alone: a frozen copy is run).
pub fn grad_cam(
    model: &Classifier,
    device: &Device,
    cache: Arc<ImageCache>,
    items: &[usize],
    classes: &[usize],
    batch_size: usize,
) -> Result<Vec<Heatmap>> {
    assert_eq!(items.len(), classes.len(), "one class per image");
    assert!(device.is_autodiff(), "Grad-CAM differentiates: the model must be on an autodiff device");
    // Frozen: BatchNorm on its running statistics and no dropout, as in inference, and no
    // parameter gradients; only the feature maps' gradients are kept.
    let model = model.clone().freeze();
    let side = cache.side();
    let grid = ResNet::output_side(side);
    let plan = BatchPlan::evaluation(items, batch_size);
    let mut heatmaps = Vec::with_capacity(items.len());
    for (batch, wanted) in Prefetcher::new(cache, plan, 1, 1).zip(classes.chunks(batch_size.max(1))) {
        let (images, _) = batch_tensors(&batch, device, tch::Kind::Float);
        let features = model.body.forward(images).detach().require_grad();
        let [count, channels, height, width] = features.dims();
        assert_eq!((height, width), (grid, grid), "ResNet::output_side({side})");
        let logits = model.head.forward(features.clone());
        let classes_count = logits.dims()[1];
        let mut mask = vec![0f32; count * classes_count];
        for (row, &class) in wanted.iter().enumerate() {
            mask[row * classes_count + class] = 1.0;
        }
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [count, classes_count]), device);
        // The images do not interact in inference mode: one backward gives each its own gradient.
        let gradients = (logits * mask).sum().backward();
        let gradient = features.grad(&gradients).context("the feature maps got no gradient")?;
        let (features, gradient) = (host(features), host(gradient));
        let plane = channels * height * width;
        for row in 0..count {
            let at = row * plane..(row + 1) * plane;
            let coarse = combine(&features[at.clone()], &gradient[at], channels, height * width);
            let values = normalise(upsample(&coarse, grid, side));
            heatmaps.push(Heatmap { grid, side, values });
        }
    }
    Ok(heatmaps)
}

fn host(tensor: Tensor<4>) -> Vec<f32> {
    tensor.into_data().try_into_vec::<f32>().expect("feature maps are f32")
}

/// `relu(sum_k mean(g_k) * a_k)` over `channels` maps of `positions` values each.
fn combine(features: &[f32], gradients: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    let mut map = vec![0f32; positions];
    for channel in 0..channels {
        let at = channel * positions..(channel + 1) * positions;
        let weight = gradients[at.clone()].iter().sum::<f32>() / positions as f32;
        for (m, a) in map.iter_mut().zip(&features[at]) {
            *m += weight * a;
        }
    }
    map.iter().map(|v| v.max(0.0)).collect()
}

/// Bilinear resize of a `grid` x `grid` map to `side` x `side`, sampling pixel centres
/// (PyTorch's `interpolate(mode="bilinear", align_corners=False)`).
fn upsample(map: &[f32], grid: usize, side: usize) -> Vec<f32> {
    let scale = grid as f32 / side as f32;
    let source = |out: usize| {
        let at = ((out as f32 + 0.5) * scale - 0.5).clamp(0.0, (grid - 1) as f32);
        let low = at.floor() as usize;
        (low, (low + 1).min(grid - 1), at - low as f32)
    };
    let mut out = Vec::with_capacity(side * side);
    for y in 0..side {
        let (y0, y1, fy) = source(y);
        for x in 0..side {
            let (x0, x1, fx) = source(x);
            let top = map[y0 * grid + x0] * (1.0 - fx) + map[y0 * grid + x1] * fx;
            let bottom = map[y1 * grid + x0] * (1.0 - fx) + map[y1 * grid + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// Scaled so that the maximum is 1 (left at 0 when it is all 0).
fn normalise(mut values: Vec<f32>) -> Vec<f32> {
    let max = values.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        values.iter_mut().for_each(|v| *v /= max);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_weighted_by_their_mean_gradient_and_negatives_cut() {
        // Two channels of 2x2: the first's gradient averages 0.5, the second's -1.
        let features = [1.0, 0.0, 0.0, 2.0, /* second */ 0.0, 1.0, 0.0, 1.0];
        let gradients = [0.5, 0.5, 0.5, 0.5, /* second */ -1.0, -1.0, -2.0, 0.0];
        let map = combine(&features, &gradients, 2, 4);
        // 0.5 * [1, 0, 0, 2] - 1 * [0, 1, 0, 1] = [0.5, -1, 0, 0] -> relu.
        assert_eq!(map, [0.5, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn upsampling_matches_pytorch_bilinear_without_corner_alignment() {
        // torch.nn.functional.interpolate(torch.tensor([[[[1., 0.], [0., 0.]]]]), size=4,
        // mode="bilinear", align_corners=False) gives rows [1, .75, .25, 0], [.75, .5625,
        // .1875, 0], [.25, .1875, .0625, 0], [0, 0, 0, 0].
        let up = upsample(&[1.0, 0.0, 0.0, 0.0], 2, 4);
        let expected = [1.0, 0.75, 0.25, 0.0, 0.75, 0.5625, 0.1875, 0.0, 0.25, 0.1875, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(up.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{up:?}");
        assert_eq!(normalise(vec![0.0, 0.5, 0.25]), [0.0, 1.0, 0.5]);
        assert_eq!(normalise(vec![0.0, 0.0]), [0.0, 0.0]);
    }

    #[test]
    fn mass_inside_a_rectangle() {
        let heatmap = Heatmap { grid: 2, side: 2, values: vec![3.0, 1.0, 0.0, 0.0] };
        assert_eq!(heatmap.mass_inside((0, 1), (0, 1)), 0.75);
        assert_eq!(heatmap.mass_inside((0, 2), (0, 2)), 1.0);
    }

    #[test]
    fn a_1x1_last_stage_is_refused() {
        assert!(check(Arch::Resnet18, 64).is_ok());
        let error = check(Arch::Resnet34, 32).unwrap_err().to_string();
        assert!(error.contains("1x1") && error.contains("needs 64px"), "{error}");
    }
}
