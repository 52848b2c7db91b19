//! What a learner tells of images without training on them: validation, predictions, Grad-CAM.

use std::sync::Arc;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::Device;

use super::Learner;
use crate::data::cache::ImageCache;
use crate::event::{Emit, Stage};
use crate::job::{CancelToken, Cancelled};
use crate::learn::cam::{self, Heatmap};
use crate::learn::data::TrainData;
use crate::learn::inference::{Pass, Predictions, Tta};
use crate::learn::metrics::Tally;
use crate::model::Classifier;

impl Learner {
    /// Loss, error rate and accuracy on the validation images.
    pub fn validate(&self, data: &TrainData, emit: &dyn Emit, cancel: &CancelToken) -> Result<Tally> {
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        let Some(distributed) = &self.runtime.distributed else {
            return Ok(self.pass(&model, &device, emit, cancel).tally(data.cache.clone(), &data.valid)?);
        };
        // Every rank validates its share to the end (a rank that stopped early would leave the
        // others waiting); a stop is agreed at the next step.
        let share = distributed.validation_share(&data.valid);
        let tally = self.pass(&model, &device, emit, &CancelToken::new()).tally(data.cache.clone(), &share)?;
        distributed.sum_tally(tally)
    }

    /// Log-probabilities of `items` (positions in `data.cache`).
    pub fn predict(
        &self,
        data: &TrainData,
        items: &[usize],
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Predictions, Cancelled> {
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        self.pass(&model, &device, emit, cancel).predict(data.cache.clone(), items)
    }

    /// A validation pass of `model` (this learner's, in inference mode) with its batches.
    fn pass<'a>(
        &self,
        model: &'a Classifier,
        device: &'a Device,
        emit: &'a dyn Emit,
        cancel: &'a CancelToken,
    ) -> Pass<'a> {
        let (batch_size, feed) = (self.settings.batch_size, self.runtime.feed);
        Pass { model, device, batch_size, feed, stage: Stage::Validate, emit, cancel }
    }

    /// The augmented passes of test-time augmentation over `items`, uncalibrated (combine them
    /// with the plain pass in [`inference::TtaPredictions::new`]).
    pub fn predict_augmented(
        &self,
        data: &TrainData,
        items: &[usize],
        tta: Tta,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Vec<Predictions>, Cancelled> {
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        self.pass(&model, &device, emit, cancel).predict_augmented(data.cache.clone(), items, tta)
    }

    /// Grad-CAM heatmaps of `items` (positions in `data.cache`), each for the class at the same
    /// position of `classes`.
    pub fn grad_cam(&self, data: &TrainData, items: &[usize], classes: &[usize]) -> Result<Vec<Heatmap>> {
        cam::check(self.arch, self.image_size)?;
        cam::grad_cam(&self.model, &self.device, data.cache.clone(), items, classes, self.settings.batch_size)
    }

    /// Scores gray `image_size`-square images (an image file's, not the dataset's), in order,
    /// the calibration temperature applied, as `learn.predict` does.
    pub fn predict_images(
        &self,
        images: Vec<Vec<u8>>,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Predictions, Cancelled> {
        let items: Vec<usize> = (0..images.len()).collect();
        let cache = Arc::new(ImageCache::unlabelled(self.image_size, images));
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        let predictions = self.pass(&model, &device, emit, cancel).predict(cache, &items)?;
        Ok(predictions.with_temperature(self.temperature()))
    }

    /// Grad-CAM heatmaps of gray `image_size`-square images, each for the class at the same
    /// position of `classes`.
    pub fn grad_cam_images(&self, images: Vec<Vec<u8>>, classes: &[usize]) -> Result<Vec<Heatmap>> {
        cam::check(self.arch, self.image_size)?;
        let items: Vec<usize> = (0..images.len()).collect();
        let cache = Arc::new(ImageCache::unlabelled(self.image_size, images));
        cam::grad_cam(&self.model, &self.device, cache, &items, classes, self.settings.batch_size)
    }
}
