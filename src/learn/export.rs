//! The lesson's `learn.export()`: one file holding everything prediction needs (weights,
//! architecture, class names, normalisation, input size), and loading it back to predict.
//!
//! Layout: the magic line `mednist-export\n`, a little-endian u32 length, that many bytes of
//! JSON ([`ExportHeader`]), then the weights as a burnpack record (burn's own format).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::cam::{self, Heatmap};
use super::device::libtorch_device;
use super::inference::{self, Predictions, Tta, TtaPredictions};
use crate::data::batches::{Feed, IMAGENET_MEAN, IMAGENET_STD};
use crate::data::cache::ImageCache;
use crate::data::window::Window;
use crate::event::{Emit, Stage};
use crate::job::{CancelToken, Cancelled};
use crate::model::{Arch, Classifier};
use crate::workspace::write_atomic;

const MAGIC: &[u8] = b"mednist-export\n";
const FORMAT: u32 = 1;

/// What an exported model is, written as JSON ahead of its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportHeader {
    pub format: u32,
    pub arch: Arch,
    pub classes: Vec<String>,
    /// Images are resized to `image_size` x `image_size` gray, replicated to 3 channels.
    pub image_size: usize,
    /// The window gray values of more than 8 bits are rendered with (exports from before
    /// windows: `file`).
    #[serde(default)]
    pub window: Window,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Epochs the model was trained for.
    pub epochs: usize,
    pub mednist_version: String,
    /// Temperature scaling: logits are divided by it before the softmax. Absent when the
    /// learner was not calibrated (`mednist interpret --calibrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

impl ExportHeader {
    pub fn new(arch: Arch, classes: Vec<String>, image_size: usize, window: Window, epochs: usize) -> Self {
        Self {
            format: FORMAT,
            arch,
            classes,
            image_size,
            window,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            epochs,
            mednist_version: env!("CARGO_PKG_VERSION").to_string(),
            temperature: None,
        }
    }

    pub fn with_temperature(self, temperature: Option<f32>) -> Self {
        Self { temperature, ..self }
    }
}

/// Writes `header` and `weights` (a burnpack record) to `path`, atomically.
pub fn write(path: &Path, header: &ExportHeader, weights: &[u8]) -> Result<()> {
    let json = serde_json::to_vec(header)?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + json.len() + weights.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(weights);
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_atomic(path, &bytes)
}

/// An exported model, loaded for prediction.
pub struct ExportedModel {
    pub header: ExportHeader,
    pub path: PathBuf,
    /// On the autodiff device, as Grad-CAM needs; prediction runs its `valid()` copy.
    model: Classifier,
    device: Device,
}

/// Images in a batch of prediction.
const BATCH: usize = 64;

impl ExportedModel {
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = fs::read(path).with_context(|| format!("cannot read the exported model {}", path.display()))?;
        let not_export = || format!("{} is not a model written by `mednist export`", path.display());
        ensure!(bytes.starts_with(MAGIC), not_export());
        let rest = &bytes[MAGIC.len()..];
        ensure!(rest.len() >= 4, not_export());
        let length = u32::from_le_bytes(rest[..4].try_into().expect("four bytes")) as usize;
        ensure!(rest.len() >= 4 + length, "{} is cut short", path.display());
        let header: ExportHeader = serde_json::from_slice(&rest[4..4 + length])
            .with_context(|| format!("the header of {} is broken", path.display()))?;
        if header.format != FORMAT {
            bail!(
                "{} is export format {}, this mednist reads format {FORMAT}: export it again with this version",
                path.display(),
                header.format
            );
        }
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(rest[4 + length..].to_vec()))
            .with_context(|| format!("the weights in {} cannot be read", path.display()))?;
        let autodiff = device.clone().autodiff();
        let model = Classifier::new(header.arch, header.classes.len(), &autodiff)
            .try_load_record(record)
            .with_context(|| format!("the weights in {} do not fit a {}", path.display(), header.arch))?;
        Ok(Self { header, path: path.to_path_buf(), model, device: autodiff })
    }

    /// Scores gray `header.image_size`-square images, in order (the calibration temperature
    /// applied, when the model has one).
    pub fn predict(
        &self,
        images: Vec<Vec<u8>>,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Predictions, Cancelled> {
        let (cache, items) = self.cache(images);
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        let predictions = self.pass(&model, &device, emit, cancel).predict(cache, &items)?;
        Ok(predictions.with_temperature(self.header.temperature))
    }

    /// [`ExportedModel::predict`] with fastai's test-time augmentation too.
    pub fn predict_tta(
        &self,
        images: Vec<Vec<u8>>,
        tta: Tta,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<TtaPredictions, Cancelled> {
        let (cache, items) = self.cache(images);
        let (model, device) = (self.model.valid(), self.device.clone().inner());
        let pass = self.pass(&model, &device, emit, cancel);
        let plain = pass.predict(cache.clone(), &items)?;
        let copies = pass.predict_augmented(cache, &items, tta)?;
        Ok(TtaPredictions::new(&plain, &copies, self.header.temperature))
    }

    /// Grad-CAM heatmaps of `images`, each for the class at the same position of `classes`.
    pub fn grad_cam(&self, images: Vec<Vec<u8>>, classes: &[usize]) -> Result<Vec<Heatmap>> {
        cam::check(self.header.arch, self.header.image_size)?;
        let (cache, items) = self.cache(images);
        cam::grad_cam(&self.model, &self.device, cache, &items, classes, BATCH)
    }

    /// A prediction pass of `model` (this one's, in inference mode on `device`).
    fn pass<'a>(
        &self,
        model: &'a Classifier,
        device: &'a Device,
        emit: &'a dyn Emit,
        cancel: &'a CancelToken,
    ) -> inference::Pass<'a> {
        let feed = Feed::for_device(libtorch_device(device), None, None);
        inference::Pass { model, device, batch_size: BATCH, feed, stage: Stage::Predict, emit, cancel }
    }

    fn cache(&self, images: Vec<Vec<u8>>) -> (Arc<ImageCache>, Vec<usize>) {
        let count = images.len();
        (Arc::new(ImageCache::unlabelled(self.header.image_size, images)), (0..count).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_files_that_are_not_exports() {
        let dir = tempfile::tempdir().unwrap();
        let device = crate::learn::device::DeviceChoice::Cpu.resolve().unwrap().0;
        let other = dir.path().join("weights.pth");
        fs::write(&other, b"PK\x03\x04 a zip").unwrap();
        let error = ExportedModel::load(&other, &device).err().unwrap();
        assert!(format!("{error:#}").contains("not a model written by `mednist export`"), "{error:#}");

        let cut = dir.path().join("cut.mednist");
        let header = ExportHeader::new(Arch::Resnet18, vec!["a".into()], 64, Window::default(), 1);
        write(&cut, &header, b"").unwrap();
        let whole = fs::read(&cut).unwrap();
        fs::write(&cut, &whole[..whole.len() - 10]).unwrap();
        let error = ExportedModel::load(&cut, &device).err().unwrap();
        assert!(format!("{error:#}").contains("cut short"), "{error:#}");

        let future = dir.path().join("future.mednist");
        write(&future, &ExportHeader { format: 99, ..header }, b"").unwrap();
        let error = ExportedModel::load(&future, &device).err().unwrap();
        assert!(format!("{error:#}").contains("export format 99"), "{error:#}");
    }
}
