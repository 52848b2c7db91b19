//! Batches cut from the [`ImageCache`], augmented and normalised on worker threads ahead of
//! the model, in a fixed order: the same seed gives the same batches however threads run.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::augment::{self, Augment, Draw};
use super::cache::ImageCache;

/// ImageNet statistics, as the lesson normalises its (gray, replicated) images.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One batch ready for the model: `[len, 3, side, side]` normalised floats.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
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
}

impl BatchPlan {
    /// A training epoch: `items` shuffled by (`seed`, `epoch`), augmented, last partial batch dropped.
    pub fn training(items: &[usize], batch_size: usize, augment: Augment, seed: u64, epoch: usize) -> Self {
        let mut order = items.to_vec();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, epoch as u64, u64::MAX)));
        Self { order, batch_size, drop_last: true, augment: Some(augment), seed: mix(seed, epoch as u64, 0) }
    }

    /// Validation or prediction: in order, no augmentation, every item.
    pub fn evaluation(items: &[usize], batch_size: usize) -> Self {
        Self { order: items.to_vec(), batch_size, drop_last: false, augment: None, seed: 0 }
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
        let plane = side * side;
        let mut images = vec![0.0f32; indices.len() * 3 * plane];
        let mut gray = vec![0.0f32; plane];
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, index as u64, 1));
        for (slot, &item) in indices.iter().enumerate() {
            let draw = match &self.augment {
                Some(augment) => augment.draw(&mut rng),
                None => Draw::IDENTITY,
            };
            augment::apply(&draw, cache.image(item), side, &mut gray);
            let image = &mut images[slot * 3 * plane..(slot + 1) * 3 * plane];
            for (channel, out) in image.chunks_exact_mut(plane).enumerate() {
                let (mean, std) = (IMAGENET_MEAN[channel], IMAGENET_STD[channel]);
                for (o, g) in out.iter_mut().zip(&gray) {
                    *o = (g - mean) / std;
                }
            }
        }
        let labels = indices.iter().map(|&i| cache.label(i) as i64).collect();
        Batch { images, labels, indices, side }
    }
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
        assert_eq!(batches[0].images.len(), 4 * 3 * 16);
    }

    #[test]
    fn same_seed_same_batches_whatever_the_workers() {
        let items: Vec<usize> = (0..12).collect();
        let run = |workers| -> Vec<Vec<f32>> {
            let plan = BatchPlan::training(&items, 4, Augment::default(), 9, 2);
            Prefetcher::new(cache(12, 8), plan, workers, 2).map(|b| b.images).collect()
        };
        assert_eq!(run(1), run(3));
        let other_epoch: Vec<Vec<f32>> = {
            let plan = BatchPlan::training(&items, 4, Augment::default(), 9, 3);
            Prefetcher::new(cache(12, 8), plan, 1, 2).map(|b| b.images).collect()
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
        for channel in 0..3 {
            let got = batches[0].images[channel * 4];
            assert!((got - (raw - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]).abs() < 1e-5);
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
