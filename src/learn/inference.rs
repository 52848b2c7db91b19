//! Class probabilities of cached images from a model in inference mode. Validation,
//! interpretation and prediction with an exported model all go through [`predict`] (and
//! [`predict_augmented`] for test-time augmentation), so they prepare images and read the
//! model the same way.

// burn 0.22 marks its LibTorch backend deprecated; it is this project's backend.
#![allow(deprecated)]

use std::num::NonZeroUsize;
use std::sync::Arc;

use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;
use burn::tensor::{Device, FloatDType, Int, Tensor};

use super::device::libtorch_device;
use super::metrics::Tally;
use crate::data::augment::Augment;
use crate::data::batches::{Batch, BatchPlan, Feed};
use crate::data::cache::ImageCache;
use crate::data::on_device;
use crate::event::{Emit, Event, Stage};
use crate::job::{CancelToken, Cancelled};
use crate::model::Classifier;

/// Log-probabilities of each scored item, with its label.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Predictions {
    pub classes: usize,
    /// Row-major `[items, classes]`.
    pub log_probs: Vec<f32>,
    /// The cache's label of each item.
    pub labels: Vec<usize>,
    /// Positions of the items in the cache.
    pub items: Vec<usize>,
}

impl Predictions {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn log_probs_of(&self, row: usize) -> &[f32] {
        &self.log_probs[row * self.classes..(row + 1) * self.classes]
    }

    /// Probabilities of row `row`, summing to 1.
    pub fn probabilities_of(&self, row: usize) -> Vec<f32> {
        self.log_probs_of(row).iter().map(|lp| lp.exp()).collect()
    }

    /// The classes of row `row` with their probabilities, the most probable first.
    pub fn ranked(&self, row: usize) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> = self.probabilities_of(row).into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }

    /// The most probable class of row `row` (the first one on a tie, as `argmax` does).
    pub fn predicted(&self, row: usize) -> usize {
        let log_probs = self.log_probs_of(row);
        (0..log_probs.len()).fold(0, |best, class| if log_probs[class] > log_probs[best] { class } else { best })
    }

    /// Cross-entropy of row `row` against its label.
    pub fn loss(&self, row: usize) -> f64 {
        -(self.log_probs_of(row)[self.labels[row]] as f64)
    }

    /// Loss, error rate and accuracy over every row.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for row in 0..self.len() {
            tally.add(self.loss(row), usize::from(self.predicted(row) != self.labels[row]), 1);
        }
        tally
    }

    /// Temperature scaling: `log_softmax(logits / temperature)`. Log-probabilities are the
    /// logits shifted by a constant per row, which the softmax ignores, so they serve as logits.
    pub fn with_temperature(&self, temperature: Option<f32>) -> Predictions {
        let Some(temperature) = temperature else {
            return self.clone();
        };
        let mut log_probs = Vec::with_capacity(self.log_probs.len());
        for row in 0..self.len() {
            let scaled: Vec<f64> =
                self.log_probs_of(row).iter().map(|&lp| f64::from(lp) / f64::from(temperature)).collect();
            let log_total = log_sum_exp(&scaled);
            log_probs.extend(scaled.iter().map(|&z| (z - log_total) as f32));
        }
        Predictions { log_probs, ..self.clone() }
    }

    /// fastai's `tta()`: `beta * plain + (1 - beta) * mean(augmented)`, in probabilities
    /// (its `torch.lerp(aug_preds, preds, beta)`), for the same rows in the same order.
    pub fn test_time_augmented(plain: &Predictions, augmented: &[Predictions], beta: f64) -> Predictions {
        let copies = augmented.len() as f64;
        let log_probs = (0..plain.log_probs.len())
            .map(|at| {
                let mean = augmented.iter().map(|copy| f64::from(copy.log_probs[at]).exp()).sum::<f64>() / copies;
                (beta * f64::from(plain.log_probs[at]).exp() + (1.0 - beta) * mean).ln() as f32
            })
            .collect();
        Predictions { log_probs, ..plain.clone() }
    }
}

/// `ln(sum(exp(values)))` without overflow.
fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Test-time augmentation as fastai's `learn.tta()` does it: `copies` passes over the images
/// with the training augmentations, averaged, then mixed with the plain pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tta {
    pub copies: NonZeroUsize,
    /// Seeds the augmentations of each copy.
    pub seed: u64,
}

impl Tta {
    /// fastai's default `n=4`.
    pub const DEFAULT_COPIES: usize = 4;
    /// fastai's default `beta`: the plain pass's share of the result.
    pub const BETA: f64 = 0.25;
}

/// The plain pass and the test-time augmented result, temperature applied to both.
#[derive(Debug, Clone, PartialEq)]
pub struct TtaPredictions {
    pub plain: Predictions,
    pub augmented: Predictions,
}

impl TtaPredictions {
    /// Combines a plain pass and its augmented copies (all uncalibrated), dividing every
    /// pass's logits by `temperature` first.
    pub fn new(plain: &Predictions, copies: &[Predictions], temperature: Option<f32>) -> Self {
        let plain = plain.with_temperature(temperature);
        let copies: Vec<Predictions> = copies.iter().map(|copy| copy.with_temperature(temperature)).collect();
        let augmented = Predictions::test_time_augmented(&plain, &copies, Tta::BETA);
        Self { plain, augmented }
    }
}

/// A batch on `device` (autodiff or not): images `[n, 3, side, side]` in `kind`, labels `[n]`.
pub fn batch_tensors(batch: &Batch, device: &Device, kind: tch::Kind) -> (Tensor<4>, Tensor<1, Int>) {
    let on_device::DeviceBatch { images, labels } = on_device::upload(batch, libtorch_device(device), kind);
    let images = Tensor::<4>::from_primitive::<LibTorch>(TchTensor::new(images));
    let labels = Tensor::<1, Int>::from_primitive::<LibTorch>(TchTensor::new(labels));
    if device.is_autodiff() { (images.autodiff(), labels.autodiff()) } else { (images, labels) }
}

/// A model (already in inference mode) scoring cached images in batches, reporting progress
/// as `stage`.
pub struct Pass<'a> {
    pub model: &'a Classifier,
    pub device: &'a Device,
    pub batch_size: usize,
    pub feed: Feed,
    pub stage: Stage,
    pub emit: &'a dyn Emit,
    pub cancel: &'a CancelToken,
}

impl Pass<'_> {
    /// Log-probabilities of `items` (positions in `cache`).
    pub fn predict(&self, cache: Arc<ImageCache>, items: &[usize]) -> Result<Predictions, Cancelled> {
        self.predict_plan(cache, BatchPlan::evaluation(items, self.batch_size))
    }

    /// The `tta.copies` passes of test-time augmentation: `items` augmented as in training, each
    /// copy seeded apart.
    pub fn predict_augmented(
        &self,
        cache: Arc<ImageCache>,
        items: &[usize],
        tta: Tta,
    ) -> Result<Vec<Predictions>, Cancelled> {
        (0..tta.copies.get())
            .map(|copy| {
                let seed = tta.seed.wrapping_add(copy as u64);
                let plan = BatchPlan::augmented(items, self.batch_size, Augment::default(), seed);
                self.predict_plan(cache.clone(), plan)
            })
            .collect()
    }

    fn predict_plan(&self, cache: Arc<ImageCache>, plan: BatchPlan) -> Result<Predictions, Cancelled> {
        let mut predictions = Predictions::default();
        self.for_each_batch(cache, plan, |batch, log_probs, _| {
            predictions.classes = log_probs.dims()[1];
            let values = log_probs.into_data().try_into_vec::<f32>().expect("log-probabilities are f32");
            predictions.log_probs.extend(values);
            predictions.labels.extend(batch.labels.iter().map(|&label| label as usize));
            predictions.items.extend(batch.indices.iter().copied());
        })?;
        Ok(predictions)
    }

    /// Loss, error rate and accuracy on `items`, summed on the device and read once at the end:
    /// no batch waits for the host.
    pub fn tally(&self, cache: Arc<ImageCache>, items: &[usize]) -> Result<Tally, Cancelled> {
        let mut sums: Option<(Tensor<1>, Tensor<1, Int>)> = None;
        self.for_each_batch(cache, BatchPlan::evaluation(items, self.batch_size), |_, log_probs, labels| {
            let picked = log_probs.clone().gather(1, labels.clone().unsqueeze_dim(1));
            let loss_sum = picked.cast(FloatDType::F64).sum().neg();
            let errors = log_probs.argmax(1).flatten::<1>(0, 1).not_equal(labels).int().sum();
            sums = Some(match sums.take() {
                Some((loss, wrong)) => (loss + loss_sum, wrong + errors),
                None => (loss_sum, errors),
            });
        })?;
        let mut tally = Tally::default();
        if let Some((loss_sum, errors)) = sums {
            tally.add(loss_sum.into_scalar::<f64>(), errors.into_scalar::<i64>() as usize, items.len());
        }
        Ok(tally)
    }

    /// Runs the model over `plan`'s batches: `each` gets every batch with its
    /// log-probabilities and its labels on the device.
    fn for_each_batch(
        &self,
        cache: Arc<ImageCache>,
        plan: BatchPlan,
        mut each: impl FnMut(&Batch, Tensor<2>, Tensor<1, Int>),
    ) -> Result<(), Cancelled> {
        let (stage, emit) = (self.stage, self.emit);
        let total = Some(plan.order.len() as u64);
        emit.emit(Event::StageStarted { stage, total });
        let mut done = 0;
        for batch in self.feed.batches(cache, plan) {
            if let Err(cancelled) = self.cancel.check() {
                emit.emit(Event::StageFinished { stage });
                return Err(cancelled);
            }
            let (images, labels) = batch_tensors(&batch, self.device, tch::Kind::Float);
            each(&batch, burn::tensor::activation::log_softmax(self.model.forward(images), 1), labels);
            done += batch.len() as u64;
            emit.emit(Event::Progress { stage, done, total });
        }
        emit.emit(Event::StageFinished { stage });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictions(rows: &[[f32; 3]], labels: &[usize]) -> Predictions {
        Predictions {
            classes: 3,
            log_probs: rows.iter().flatten().map(|p| p.ln()).collect(),
            labels: labels.to_vec(),
            items: (0..labels.len()).collect(),
        }
    }

    #[test]
    fn predicted_class_loss_and_tally() {
        let p = predictions(&[[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]], &[0, 1, 1]);
        assert_eq!((p.predicted(0), p.predicted(1), p.predicted(2)), (0, 2, 1));
        assert!((p.loss(1) - -(0.3f32.ln() as f64)).abs() < 1e-6);
        let tally = p.tally();
        assert_eq!(tally.count(), 3);
        assert!((tally.error_rate() - 1.0 / 3.0).abs() < 1e-12);
        let mean = -(0.7f32.ln() as f64 + 0.3f32.ln() as f64 + 0.5f32.ln() as f64) / 3.0;
        assert!((tally.mean_loss() - mean).abs() < 1e-6);
        let probabilities = p.probabilities_of(1);
        assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let ranked: Vec<usize> = p.ranked(1).into_iter().map(|(class, _)| class).collect();
        assert_eq!(ranked, [2, 1, 0]);
    }

    #[test]
    fn temperature_divides_the_logits() {
        let p = predictions(&[[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], &[0, 2]);
        assert_eq!(p.with_temperature(None), p);
        let unchanged = p.with_temperature(Some(1.0));
        assert!(unchanged.log_probs.iter().zip(&p.log_probs).all(|(a, b)| (a - b).abs() < 1e-6));
        // softmax(ln(p) / 2) is sqrt(p), normalised.
        let softened = p.with_temperature(Some(2.0)).probabilities_of(0);
        let roots = [0.7f32.sqrt(), 0.2f32.sqrt(), 0.1f32.sqrt()];
        let total: f32 = roots.iter().sum();
        assert!(softened.iter().zip(roots).all(|(got, root)| (got - root / total).abs() < 1e-6), "{softened:?}");
        assert_eq!(p.with_temperature(Some(0.5)).predicted(1), 2, "the ranking stays");
    }

    #[test]
    fn tta_mixes_a_quarter_of_the_plain_pass_with_the_mean_of_the_copies() {
        let plain = predictions(&[[0.6, 0.3, 0.1]], &[0]);
        let copies = [predictions(&[[0.2, 0.4, 0.4]], &[0]), predictions(&[[0.4, 0.4, 0.2]], &[0])];
        let mixed = Predictions::test_time_augmented(&plain, &copies, 0.25).probabilities_of(0);
        let expected = [0.25 * 0.6 + 0.75 * 0.3, 0.25 * 0.3 + 0.75 * 0.4, 0.25 * 0.1 + 0.75 * 0.3];
        assert!(mixed.iter().zip(expected).all(|(got, want)| (got - want).abs() < 1e-6), "{mixed:?}");
    }
}
