//! Batches on the model's device. Uploads come from pinned host memory without blocking the
//! host on CUDA; a [`BatchImages::Raw`] batch is augmented and normalised there with LibTorch
//! ops, as fastai runs its batch transforms on the GPU: one perspective grid per image from
//! the host's draw ([`Draw::sampling_matrix`]), `grid_sample` (bilinear, reflection padding,
//! `align_corners`), lighting in logit space, three channels, ImageNet statistics. The same
//! formulas as the host's [`super::augment::Sampler`], in LibTorch's f32.

use tch::{Device, Kind, Tensor};

use super::augment::Draw;
use super::batches::{Batch, BatchImages, IMAGENET_MEAN, IMAGENET_STD};

/// A batch on its device: images `[len, 3, side, side]`, labels `[len]` (i64).
#[derive(Debug)]
pub struct DeviceBatch {
    pub images: Tensor,
    pub labels: Tensor,
}

/// `batch` on `device`, its images in `kind` (the step's compute precision).
pub fn upload(batch: &Batch, device: Device, kind: Kind) -> DeviceBatch {
    let (len, side) = (batch.len() as i64, batch.side as i64);
    let images = match &batch.images {
        BatchImages::Normalised(images) => to_device(&Tensor::from_slice(images), device).view([len, 3, side, side]),
        BatchImages::Raw { pixels, draws } => {
            augment(&to_device(&Tensor::from_slice(pixels), device).view([len, side, side]), draws)
        }
    };
    DeviceBatch { images: images.to_kind(kind), labels: to_device(&Tensor::from_slice(&batch.labels), device) }
}

/// A host tensor on `device`. On CUDA through pinned memory and a non-blocking copy, so the
/// host goes on queueing work; LibTorch's pinned-memory cache keeps the buffer until the copy
/// has run.
fn to_device(host: &Tensor, device: Device) -> Tensor {
    match device {
        Device::Cpu => host.shallow_clone(),
        _ => host.pin_memory(device).to_device_(device, host.kind(), true, false),
    }
}

/// Per image: the 3x3 sampling matrix, the brightness logit and contrast, and whether the
/// lighting applies (1 or 0), one row of [`PARAMETERS`] floats.
const PARAMETERS: usize = 12;

/// Augments and normalises `pixels` (`[len, side, side]` u8, on its device) under `draws`:
/// `[len, 3, side, side]` f32 on the same device.
pub fn augment(pixels: &Tensor, draws: &[Draw]) -> Tensor {
    let device = pixels.device();
    let size = pixels.size();
    let (len, side) = (size[0], size[1]);
    assert_eq!(draws.len() as i64, len, "one draw per image");
    let mut gray = pixels.to_kind(Kind::Float).unsqueeze(1) / 255.0;
    if draws.iter().all(|draw| *draw == Draw::IDENTITY) {
        return normalise(&gray);
    }
    let mut parameters = Vec::with_capacity(draws.len() * PARAMETERS);
    for draw in draws {
        parameters.extend(draw.sampling_matrix().iter().flatten().map(|&v| v as f32));
        let (brightness_logit, contrast, lit) = match draw.lighting() {
            Some((brightness_logit, contrast)) => (brightness_logit, contrast, 1.0),
            None => (0.0, 1.0, 0.0),
        };
        parameters.extend([brightness_logit as f32, contrast as f32, lit]);
    }
    let parameters = to_device(&Tensor::from_slice(&parameters), device).view([len, PARAMETERS as i64]);
    gray = gray.grid_sampler_2d(&grid(&parameters.narrow(1, 0, 9).view([len, 3, 3]), side), BILINEAR, REFLECTION, true);
    let per_image = |column: i64| parameters.narrow(1, column, 1).view([len, 1, 1, 1]);
    let (brightness_logit, contrast, lit) = (per_image(9), per_image(10), per_image(11).gt(0.5));
    let lighted = ((gray.logit(LOGIT_EPS) + brightness_logit) * contrast).sigmoid();
    normalise(&lighted.where_self(&lit, &gray))
}

/// grid_sample's interpolation and padding modes.
const BILINEAR: i64 = 0;
const REFLECTION: i64 = 2;
/// The lighting's clamp before the logit, as fastai's.
const LOGIT_EPS: f64 = 1e-7;

/// Each output pixel's input coordinates, `[len, side, side, 2]` in [-1, 1]: the homogeneous
/// `matrices` (`[len, 3, 3]`) applied to the output grid, divided by the third coordinate (by 1
/// where it is 0, as the host does). Broadcast multiply-adds: a batched 3-wide matmul is far
/// slower on the CPU and no faster on a GPU.
fn grid(matrices: &Tensor, side: i64) -> Tensor {
    let len = matrices.size()[0];
    let axis = Tensor::linspace(-1.0, 1.0, side, (Kind::Float, matrices.device()));
    let (xs, ys) = (axis.view([1, 1, side]), axis.view([1, side, 1]));
    let entry = |row: i64, column: i64| matrices.select(1, row).select(1, column).view([len, 1, 1]);
    let coordinate = |row: i64| entry(row, 0) * &xs + entry(row, 1) * &ys + entry(row, 2);
    let w = coordinate(2);
    let w = w.ones_like().where_self(&w.eq(0.0), &w);
    Tensor::stack(&[coordinate(0) / &w, coordinate(1) / &w], 3)
}

/// Gray `[len, 1, side, side]` in [0, 1] to three channels normalised with ImageNet's
/// statistics (scalars: nothing to copy to the device).
fn normalise(gray: &Tensor) -> Tensor {
    let channels: Vec<Tensor> =
        IMAGENET_MEAN.iter().zip(IMAGENET_STD).map(|(&mean, std)| (gray - f64::from(mean)) / f64::from(std)).collect();
    Tensor::cat(&channels, 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::data::augment::{self, Augment, reference};
    use crate::data::batches::{BatchPlan, Preparation};
    use crate::data::cache::ImageCache;

    /// The device path on LibTorch's CPU, gray values back in [0, 1] (channel 0 un-normalised).
    fn on_device(pixels: &[u8], side: usize, draws: &[Draw]) -> Vec<f32> {
        let tensor = Tensor::from_slice(pixels).view([draws.len() as i64, side as i64, side as i64]);
        let channel =
            augment(&tensor, draws).narrow(1, 0, 1) * f64::from(IMAGENET_STD[0]) + f64::from(IMAGENET_MEAN[0]);
        Vec::<f32>::try_from(channel.flatten(0, -1)).unwrap()
    }

    fn max_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random::<u8>()).collect()
    }

    #[test]
    fn a_known_turn_and_zoom_match_the_host_and_the_formulas() {
        // A ramp along x, turned a quarter and zoomed about a corner, flipped, relit.
        let side = 9;
        let ramp: Vec<u8> = (0..side * side).map(|i| (i % side * 255 / (side - 1)) as u8).collect();
        let draw = Draw {
            flip: true,
            rotate_rad: std::f64::consts::FRAC_PI_2,
            zoom: 1.5,
            zoom_centre: (0.0, 1.0),
            brightness: 0.6,
            contrast: 1.2,
            ..Draw::IDENTITY
        };
        let (mut host, mut plain) = (vec![0.0; side * side], vec![0.0; side * side]);
        augment::apply(&draw, &ramp, side, &mut host);
        reference::apply(&draw, &ramp, side, &mut plain);
        let device = on_device(&ramp, side, &[draw]);
        assert!(max_difference(&device, &plain) < 1e-5, "device {device:?}\nformulas {plain:?}");
        assert!(max_difference(&device, &host) < 1e-5);
        // A quarter turn of an x-ramp: the output is constant along each row.
        let unlit = on_device(&ramp, side, &[Draw { brightness: 0.5, contrast: 1.0, ..draw }]);
        for row in unlit.chunks(side) {
            assert!(row.iter().all(|v| (v - row[0]).abs() < 1e-5), "{row:?}");
        }
    }

    #[test]
    fn random_draws_match_the_formulas_image_by_image() {
        let side = 32;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let draws: Vec<Draw> = (0..24).map(|_| Augment::default().draw(&mut rng)).collect();
        let pixels = noise(draws.len() * side * side, 2);
        let device = on_device(&pixels, side, &draws);
        for (index, draw) in draws.iter().enumerate() {
            let plane = index * side * side..(index + 1) * side * side;
            let mut plain = vec![0.0; side * side];
            reference::apply(draw, &pixels[plane.clone()], side, &mut plain);
            let difference = max_difference(&device[plane], &plain);
            assert!(difference < 1e-4, "{draw:?} differs by {difference}");
        }
    }

    #[test]
    fn identity_draws_only_normalise() {
        let pixels = noise(2 * 16, 4);
        let device = on_device(&pixels, 4, &[Draw::IDENTITY, Draw::IDENTITY]);
        let expected: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        assert!(max_difference(&device, &expected) < 1e-6);
    }

    #[test]
    fn uploads_give_the_hosts_images_either_way() {
        let side = 16;
        let cache =
            Arc::new(ImageCache::from_pixels(side, noise(10 * side * side, 9), (0..10).map(|i| i % 3).collect()));
        let items: Vec<usize> = (0..10).collect();
        let plan = BatchPlan::training(&items, 8, Augment::default(), 3, 0);
        let host = upload(&plan.build(&cache, 0), Device::Cpu, Kind::Float);
        let device = upload(&plan.clone().prepared(Preparation::Device).build(&cache, 0), Device::Cpu, Kind::Float);
        assert_eq!(host.images.size(), [8, 3, 16, 16]);
        assert_eq!(Vec::<i64>::try_from(&host.labels).unwrap(), Vec::<i64>::try_from(&device.labels).unwrap());
        let difference = (&host.images - &device.images).abs().max().double_value(&[]);
        assert!(difference < 1e-3, "normalised images differ by {difference}");
        assert_eq!(upload(&plan.build(&cache, 0), Device::Cpu, Kind::BFloat16).images.kind(), Kind::BFloat16);
    }

    /// Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs.
    fn ks_statistic(mut a: Vec<f64>, mut b: Vec<f64>) -> f64 {
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (mut i, mut j, mut gap) = (0, 0, 0.0f64);
        while i < a.len() && j < b.len() {
            let value = a[i].min(b[j]);
            while i < a.len() && a[i] <= value {
                i += 1;
            }
            while j < b.len() && b[j] <= value {
                j += 1;
            }
            gap = gap.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
        }
        gap
    }

    /// Mean brightness and centre of mass of each image of `images` (`side`x`side` gray).
    fn statistics(images: &[f32], side: usize) -> [Vec<f64>; 3] {
        let mut columns = [Vec::new(), Vec::new(), Vec::new()];
        for image in images.chunks(side * side) {
            let total: f64 = image.iter().map(|&v| v as f64).sum();
            let moment = |axis: fn(usize, usize) -> usize| {
                image.iter().enumerate().map(|(i, &v)| axis(i, side) as f64 * v as f64).sum::<f64>() / total
            };
            columns[0].push(total / image.len() as f64);
            columns[1].push(moment(|i, side| i % side));
            columns[2].push(moment(|i, side| i / side));
        }
        columns
    }

    #[test]
    fn host_and_device_augmentations_have_the_same_distribution() {
        // One bright off-centre blob: flips, turns, zooms and warps move its centre of mass,
        // lighting its brightness. Each path draws with its own seed, so only the
        // distributions can agree.
        let side = 24;
        let blob: Vec<u8> = (0..side * side)
            .map(|i| {
                let (x, y) = ((i % side) as f64 - 7.0, (i / side) as f64 - 9.0);
                (40.0 + 200.0 * (-(x * x + y * y) / 18.0).exp()) as u8
            })
            .collect();
        let count = 2000;
        let cache = Arc::new(ImageCache::from_pixels(side, blob.repeat(count), vec![0; count]));
        let items: Vec<usize> = (0..count).collect();
        let gray = |preparation, seed| -> Vec<f32> {
            let plan = BatchPlan::training(&items, 250, Augment::default(), seed, 0).prepared(preparation);
            (0..plan.batch_count())
                .flat_map(|index| {
                    let images = upload(&plan.build(&cache, index), Device::Cpu, Kind::Float).images.narrow(1, 0, 1);
                    let images = images * f64::from(IMAGENET_STD[0]) + f64::from(IMAGENET_MEAN[0]);
                    Vec::<f32>::try_from(images.flatten(0, -1)).unwrap()
                })
                .collect()
        };
        let (host, device) = (gray(Preparation::Host, 1), gray(Preparation::Device, 2));
        // The critical value at a 0.1% level for two samples of 2000 is 1.95 * sqrt(2 / 2000).
        let critical = 1.95 * (2.0 / count as f64).sqrt();
        for (name, (h, d)) in ["brightness", "centre x", "centre y"]
            .iter()
            .zip(statistics(&host, side).into_iter().zip(statistics(&device, side)))
        {
            let spread =
                h.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - h.iter().cloned().fold(f64::INFINITY, f64::min);
            assert!(spread > 0.01, "{name} varies under augmentation");
            let gap = ks_statistic(h, d);
            assert!(gap < critical, "{name}: KS statistic {gap:.4} over {critical:.4}");
        }
    }
}
