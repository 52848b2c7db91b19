//! Batches cut from the [`ImageCache`] on worker threads ahead of the model, in a fixed order:
//! the same seed gives the same batches however threads run. A batch is augmented and
//! normalised either there, on the host, or later where the model runs ([`super::on_device`]);
//! both draw the same parameters from the same seed.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::augment::{Augment, Draw, Sampler};
use super::cache::ImageCache;

/// ImageNet statistics, as the lesson normalises its (gray, replicated) images.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One batch of images with their labels.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: BatchImages,
    pub labels: Vec<i64>,
    /// Positions in the cache, for interpretation (which image was this?).
    pub indices: Vec<usize>,
    pub side: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A batch's images as they leave the host.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchImages {
    /// Augmented and normalised: `[len, 3, side, side]` floats, ready for the model.
    Normalised(Vec<f32>),
    /// The cached pixels, `[len, side, side]`, and each image's draw: a twelfth of the bytes,
    /// augmented and normalised where the model runs.
    Raw { pixels: Vec<u8>, draws: Vec<Draw> },
}

/// Where batches are augmented and normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preparation {
    /// On the batch workers. The CPU's choice: there the model's own threads are the device's.
    #[default]
    Host,
    /// On the model's device, from [`BatchImages::Raw`]: a GPU's choice.
    Device,
}

impl Preparation {
    /// On the host for the CPU (its cores are the model's, and the host sampler is the faster
    /// there), on the device for a GPU.
    pub fn for_device(device: tch::Device) -> Self {
        if device == tch::Device::Cpu { Preparation::Host } else { Preparation::Device }
    }
}

/// How batches reach the model: threads preparing them, how many each keeps ready, and where
/// they are augmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    pub workers: usize,
    pub prefetch: usize,
    pub preparation: Preparation,
}

impl Feed {
    /// The defaults for `device`, with `workers` and `prefetch` when given. On the CPU one
    /// worker, two batches ahead: it prepares batches a hundred times faster than the model
    /// trains on them. On a GPU the workers only gather pixels, at gigabytes a second: two
    /// (capped by the cores, one left for the thread queueing the GPU's work) keep it fed,
    /// four batches ahead each to absorb hiccups.
    pub fn for_device(device: tch::Device, workers: Option<usize>, prefetch: Option<usize>) -> Self {
        let preparation = Preparation::for_device(device);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (default_workers, default_prefetch) = match preparation {
            Preparation::Host => (1, 2),
            Preparation::Device => (2.min(cores.saturating_sub(1)).max(1), 4),
        };
        Self {
            workers: workers.unwrap_or(default_workers).max(1),
            prefetch: prefetch.unwrap_or(default_prefetch).max(1),
            preparation,
        }
    }

    /// `plan`'s batches as this feed delivers them.
    pub fn batches(&self, cache: Arc<ImageCache>, plan: BatchPlan) -> Prefetcher {
        Prefetcher::new(cache, plan.prepared(self.preparation), self.workers, self.prefetch)
    }
}

/// What to cut: which cache entries in which order, how many a batch, and how to augment.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    pub order: Vec<usize>,
    pub batch_size: usize,
    /// Drop the last partial batch (fastai does for training).
    pub drop_last: bool,
    pub augment: Option<Augment>,
    /// Seeds each batch's augmentation (with the batch's number).
    pub seed: u64,
    pub preparation: Preparation,
}

impl BatchPlan {
    /// A training epoch: `items` shuffled by (`seed`, `epoch`), augmented, last partial batch dropped.
    pub fn training(items: &[usize], batch_size: usize, augment: Augment, seed: u64, epoch: usize) -> Self {
        let mut order = items.to_vec();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, epoch as u64, u64::MAX)));
        Self {
            order,
            batch_size,
            drop_last: true,
            augment: Some(augment),
            seed: mix(seed, epoch as u64, 0),
            preparation: Preparation::Host,
        }
    }

    /// Validation or prediction: in order, no augmentation, every item.
    pub fn evaluation(items: &[usize], batch_size: usize) -> Self {
        Self {
            order: items.to_vec(),
            batch_size,
            drop_last: false,
            augment: None,
            seed: 0,
            preparation: Preparation::Host,
        }
    }

    /// The same plan, prepared `where`.
    pub fn prepared(self, preparation: Preparation) -> Self {
        Self { preparation, ..self }
    }

    /// Rank `rank` of `ranks`'s share of this plan, as PyTorch's DistributedSampler deals it:
    /// every `ranks`-th item from the `rank`-th on, and for training (`drop_last`) the same count
    /// on every rank (up to `ranks - 1` items of the epoch's order left out) so that every rank
    /// runs as many batches. Each rank augments with draws of its own.
    pub fn shard(self, rank: usize, ranks: usize) -> Self {
        let ranks = ranks.max(1);
        let mut order = deal(&self.order, rank, ranks);
        if self.drop_last {
            order.truncate(self.order.len() / ranks);
        }
        let seed = if rank == 0 { self.seed } else { mix(self.seed, rank as u64, ranks as u64) };
        Self { order, seed, ..self }
    }

    /// Test-time augmentation: in order and every item, as [`BatchPlan::evaluation`], each
    /// image augmented as in training, seeded by `seed`.
    pub fn augmented(items: &[usize], batch_size: usize, augment: Augment, seed: u64) -> Self {
        Self { augment: Some(augment), seed, ..Self::evaluation(items, batch_size) }
    }

    pub fn batch_count(&self) -> usize {
        let bs = self.batch_size.max(1);
        if self.drop_last { self.order.len() / bs } else { self.order.len().div_ceil(bs) }
    }

    /// Builds batch number `index` of this plan.
    pub fn build(&self, cache: &ImageCache, index: usize) -> Batch {
        let bs = self.batch_size.max(1);
        let indices = self.order[index * bs..((index + 1) * bs).min(self.order.len())].to_vec();
        let side = cache.side();
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, index as u64, 1));
        let draws: Vec<Draw> = indices
            .iter()
            .map(|_| match &self.augment {
                Some(augment) => augment.draw(&mut rng),
                None => Draw::IDENTITY,
            })
            .collect();
        let images = match self.preparation {
            Preparation::Host => BatchImages::Normalised(normalised(cache, &indices, &draws)),
            Preparation::Device => BatchImages::Raw {
                pixels: indices.iter().flat_map(|&item| cache.image(item)).copied().collect(),
                draws,
            },
        };
        let labels = indices.iter().map(|&i| cache.label(i) as i64).collect();
        Batch { images, labels, indices, side }
    }
}

/// `[len, 3, side, side]`: each image resampled under its draw, its gray replicated into three
/// channels normalised with ImageNet's statistics.
fn normalised(cache: &ImageCache, indices: &[usize], draws: &[Draw]) -> Vec<f32> {
    let side = cache.side();
    let plane = side * side;
    let mut images = Vec::with_capacity(indices.len() * 3 * plane);
    let mut gray = vec![0.0f32; plane];
    for (&item, draw) in indices.iter().zip(draws) {
        let sampler = Sampler::new(draw, side);
        for (row, out) in gray.chunks_exact_mut(side).enumerate() {
            sampler.row(cache.image(item), row, out);
        }
        for (mean, std) in IMAGENET_MEAN.into_iter().zip(IMAGENET_STD) {
            images.extend(gray.iter().map(|g| (g - mean) / std));
        }
    }
    images
}

/// Rank `rank` of `ranks`'s share of `items`: every `ranks`-th from the `rank`-th on.
pub fn deal(items: &[usize], rank: usize, ranks: usize) -> Vec<usize> {
    items.iter().copied().skip(rank).step_by(ranks.max(1)).collect()
}

/// Mixes a seed with two counters into a new seed (splitmix64 finaliser).
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Iterates a plan's batches, prepared by `workers` threads up to `prefetch` batches ahead.
/// Worker `w` builds batches `w, w + workers, ...`; they are read back in order.
pub struct Prefetcher {
    receivers: Vec<Receiver<Batch>>,
    next: usize,
    count: usize,
    handles: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn new(cache: Arc<ImageCache>, plan: BatchPlan, workers: usize, prefetch: usize) -> Self {
        let workers = workers.max(1);
        let plan = Arc::new(plan);
        let count = plan.batch_count();
        let (mut receivers, mut handles) = (Vec::new(), Vec::new());
        for worker in 0..workers {
            let (sender, receiver) = sync_channel(prefetch.max(1));
            let (cache, plan) = (cache.clone(), plan.clone());
            handles.push(std::thread::spawn(move || {
                for index in (worker..count).step_by(workers) {
                    // A closed channel means the consumer stopped early (cancel): just end.
                    if sender.send(plan.build(&cache, index)).is_err() {
                        return;
                    }
                }
            }));
            receivers.push(receiver);
        }
        Self { receivers, next: 0, count, handles }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Iterator for Prefetcher {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.count {
            return None;
        }
        let batch = self.receivers[self.next % self.receivers.len()].recv().expect("batch worker panicked");
        self.next += 1;
        Some(batch)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.receivers.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_of_an_epoch_take_each_image_once_and_as_many_on_every_rank() {
        for (images, ranks) in [(24, 2), (25, 2), (26, 3), (7, 4)] {
            let items: Vec<usize> = (100..100 + images).collect();
            let plan = BatchPlan::training(&items, 2, Augment::default(), 42, 3);
            let shards: Vec<BatchPlan> = (0..ranks).map(|rank| plan.clone().shard(rank, ranks)).collect();
            let mut dealt: Vec<usize> = shards.iter().flat_map(|shard| shard.order.clone()).collect();
            assert!(shards.iter().all(|shard| shard.order.len() == images / ranks), "{images} images over {ranks}");
            dealt.sort_unstable();
            let before = dealt.len();
            dealt.dedup();
            assert_eq!(dealt.len(), before, "no image twice in an epoch");
            assert_eq!(dealt.len(), images - images % ranks, "every image but the remainder");
            let seeds: std::collections::HashSet<u64> = shards.iter().map(|shard| shard.seed).collect();
            assert_eq!(seeds.len(), ranks, "each rank draws its own augmentation");
        }
        let validation = BatchPlan::evaluation(&(0..7).collect::<Vec<_>>(), 2);
        let dealt: usize = (0..3).map(|rank| validation.clone().shard(rank, 3).order.len()).sum();
        assert_eq!(dealt, 7, "evaluation keeps every item");
    }

    fn normalised(batch: Batch) -> Vec<f32> {
        match batch.images {
            BatchImages::Normalised(images) => images,
            BatchImages::Raw { .. } => panic!("a batch prepared on the host"),
        }
    }

    fn cache(n: usize, side: usize) -> Arc<ImageCache> {
        let pixels = (0..n * side * side).map(|i| (i * 7 % 256) as u8).collect();
        Arc::new(ImageCache::from_pixels(side, pixels, (0..n as u32).map(|i| i % 3).collect()))
    }

    #[test]
    fn training_drops_the_partial_batch_and_covers_each_item_once() {
        let items: Vec<usize> = (0..10).collect();
        let plan = BatchPlan::training(&items, 4, Augment::default(), 1, 0);
        let batches: Vec<Batch> = Prefetcher::new(cache(10, 4), plan, 2, 1).collect();
        assert_eq!(batches.len(), 2);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8);
        assert_eq!(normalised(batches[0].clone()).len(), 4 * 3 * 16);
    }

    #[test]
    fn same_seed_same_batches_whatever_the_workers() {
        let items: Vec<usize> = (0..12).collect();
        let run = |workers| -> Vec<Vec<f32>> {
            let plan = BatchPlan::training(&items, 4, Augment::default(), 9, 2);
            Prefetcher::new(cache(12, 8), plan, workers, 2).map(normalised).collect()
        };
        assert_eq!(run(1), run(3));
        let other_epoch: Vec<Vec<f32>> = {
            let plan = BatchPlan::training(&items, 4, Augment::default(), 9, 3);
            Prefetcher::new(cache(12, 8), plan, 1, 2).map(normalised).collect()
        };
        assert_ne!(run(1), other_epoch);
    }

    #[test]
    fn evaluation_keeps_order_normalises_and_replicates_gray() {
        let cache = cache(5, 2);
        let plan = BatchPlan::evaluation(&[4, 0, 2], 2);
        let batches: Vec<Batch> = Prefetcher::new(cache.clone(), plan, 1, 1).collect();
        assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(batches[0].indices, vec![4, 0]);
        assert_eq!(batches[0].labels, vec![1, 0]);
        let raw = cache.image(4)[0] as f32 / 255.0;
        let images = normalised(batches[0].clone());
        for channel in 0..3 {
            let got = images[channel * 4];
            assert!((got - (raw - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]).abs() < 1e-5);
        }
    }

    #[test]
    fn a_batch_for_the_device_carries_the_pixels_and_the_hosts_draws() {
        let (cache, items): (_, Vec<usize>) = (cache(12, 8), (0..12).collect());
        let plan = BatchPlan::training(&items, 4, Augment::default(), 5, 1);
        let host = plan.build(&cache, 2);
        let device = plan.clone().prepared(Preparation::Device).build(&cache, 2);
        assert_eq!((&device.indices, &device.labels), (&host.indices, &host.labels));
        let BatchImages::Raw { pixels, draws } = device.images else { panic!("raw pixels for the device") };
        let expected: Vec<u8> = host.indices.iter().flat_map(|&i| cache.image(i)).copied().collect();
        assert_eq!(pixels, expected);
        // The host's images are these draws applied to these pixels.
        let mut gray = vec![0.0; 64];
        crate::data::augment::apply(&draws[1], cache.image(host.indices[1]), 8, &mut gray);
        let host_images = normalised(host);
        let second = &host_images[3 * 64..4 * 64];
        for (g, h) in gray.iter().zip(second) {
            assert!(((g - IMAGENET_MEAN[0]) / IMAGENET_STD[0] - h).abs() < 1e-6);
        }
    }

    #[test]
    fn stopping_early_does_not_hang() {
        let items: Vec<usize> = (0..64).collect();
        let mut batches = Prefetcher::new(cache(64, 4), BatchPlan::evaluation(&items, 2), 2, 1);
        assert!(batches.next().is_some());
        drop(batches);
    }
}
