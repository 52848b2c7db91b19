//! The images a learner trains on: the recorded split, decoded once into memory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::data::cache::ImageCache;
use crate::data::dicom;
use crate::data::identifiers;
use crate::data::scan::{self, Item};
use crate::data::settings::DatasetSettings;
use crate::data::split::{self, Split, SplitOptions};
use crate::data::window::Window;
use crate::event::Emit;
use crate::job::{CancelToken, is_cancelled};
use crate::workspace::Workspace;

/// Train and valid images as positions in one cache (train first).
#[derive(Debug, Clone)]
pub struct TrainData {
    pub cache: Arc<ImageCache>,
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
    pub classes: Vec<String>,
    pub split_fingerprint: String,
    /// The window the cached images were rendered with.
    pub window: Window,
    /// The dataset folder, and each cached image in it (path relative to it, frame).
    pub dataset: PathBuf,
    pub items: Vec<Item>,
}

impl TrainData {
    /// `item`'s path as it may be shown: what its DICOM header says names the patient masked.
    pub fn shown_path(&self, item: &Item) -> String {
        let bytes = std::fs::read(self.dataset.join(&item.path)).unwrap_or_default();
        identifiers::shown_path(&item.path, &dicom::patient_text(&bytes))
    }

    /// Uses the split recorded in the workspace, or makes and records the default one
    /// (valid 0.2, seed 42) as `mednist split` would; renders the images at `image_size`
    /// with `window`.
    pub fn load(
        workspace: &Workspace,
        image_size: usize,
        window: &Window,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Self> {
        let dataset = workspace.require_dataset()?;
        // The scan tells whether the dataset changed since the split was recorded.
        let scanned = scan::scan(&dataset, &DatasetSettings::load(workspace)?, emit, cancel)?;
        let split = if workspace.split_file().exists() {
            split::load_for(workspace, &scanned)?
        } else {
            let split = split::split(&scanned, &SplitOptions::default())?;
            split.save(workspace)?;
            emit.info(format!(
                "no split recorded: made the default one (valid 0.2, seed 42): {} train, {} valid",
                split.train.len(),
                split.valid.len()
            ));
            split
        };
        Self::from_split(&split, dataset, image_size, window, emit, cancel)
    }

    pub fn from_split(
        split: &Split,
        dataset: PathBuf,
        image_size: usize,
        window: &Window,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Self> {
        let items: Vec<Item> = split.train.iter().chain(&split.valid).cloned().collect();
        let cache = ImageCache::decode(&dataset, &items, image_size, window, emit, cancel).map_err(|error| {
            if is_cancelled(&error) {
                error
            } else {
                error.context("the recorded split names an image that cannot be used: run `mednist split` again")
            }
        })?;
        // The scan's and the decoders' buffers are gone: give their memory back before training.
        crate::system::release_freed_memory();
        let train_count = split.train.len();
        Ok(Self {
            cache: Arc::new(cache),
            train: (0..train_count).collect(),
            valid: (train_count..items.len()).collect(),
            classes: split.classes.clone(),
            split_fingerprint: split.dataset_fingerprint.clone(),
            window: *window,
            dataset,
            items,
        })
    }
}
