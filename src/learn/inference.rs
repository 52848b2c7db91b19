//! Class probabilities of cached images from a model in inference mode. Validation,
//! interpretation and prediction with an exported model all go through [`predict`], so they
//! prepare images and read the model the same way.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

use super::metrics::Tally;
use crate::data::batches::{BatchPlan, Prefetcher};
use crate::data::cache::ImageCache;
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
}

/// A batch's prepared `[n, 3, side, side]` images as a tensor on `device`.
pub fn images_tensor(images: Vec<f32>, side: usize, device: &Device) -> Tensor<4> {
    let count = images.len() / (3 * side * side);
    Tensor::<4>::from_data(TensorData::new(images, [count, 3, side, side]), device)
}

/// Scores `items` of `cache` with `model` (already in inference mode) in batches of
/// `batch_size`, reporting progress as `stage`.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    model: &Classifier,
    device: &Device,
    cache: Arc<ImageCache>,
    items: &[usize],
    batch_size: usize,
    workers: usize,
    stage: Stage,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<Predictions, Cancelled> {
    let total = items.len() as u64;
    emit.emit(Event::StageStarted { stage, total: Some(total) });
    let mut predictions = Predictions::default();
    let plan = BatchPlan::evaluation(items, batch_size);
    for batch in Prefetcher::new(cache, plan, workers, 2) {
        if let Err(cancelled) = cancel.check() {
            emit.emit(Event::StageFinished { stage });
            return Err(cancelled);
        }
        let images = images_tensor(batch.images, batch.side, device);
        let log_probs = burn::tensor::activation::log_softmax(model.forward(images), 1);
        predictions.classes = log_probs.dims()[1];
        let values = log_probs.into_data().try_into_vec::<f32>().expect("log-probabilities are f32");
        predictions.log_probs.extend(values);
        predictions.labels.extend(batch.labels.iter().map(|&label| label as usize));
        predictions.items.extend(batch.indices);
        emit.emit(Event::Progress { stage, done: predictions.len() as u64, total: Some(total) });
    }
    emit.emit(Event::StageFinished { stage });
    Ok(predictions)
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
    }
}
