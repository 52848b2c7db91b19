//! Every image decoded once into memory as `side`x`side` 8-bit gray: the full MedNIST at
//! 64x64 is about 240 MB. Batches are cut from this cache, never from disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use image::imageops::FilterType;
use rayon::prelude::*;

use crate::event::{Emit, Event, Stage};
use crate::job::CancelToken;

#[derive(Debug, Clone)]
pub struct ImageCache {
    side: usize,
    pixels: Vec<u8>,
    labels: Vec<u32>,
}

impl ImageCache {
    /// Decodes `items` (paths relative to `root`, class index) in parallel. Colour images are
    /// converted to luma, 16-bit ones scaled to 8 bits, other sizes resized (bilinear).
    pub fn decode(
        root: &Path,
        items: &[(PathBuf, usize)],
        side: usize,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Self> {
        anyhow::ensure!(side > 0, "images cannot be resized to 0 pixels: use a size of at least 1");
        let total = items.len() as u64;
        emit.emit(Event::StageStarted { stage: Stage::Decode, total: Some(total) });
        let done = AtomicU64::new(0);
        // Each image is decoded straight into its place: no second copy of the whole cache.
        let mut pixels = vec![0u8; items.len() * side * side];
        pixels.par_chunks_mut(side * side).zip(items).try_for_each(|(slot, (relative, _))| -> Result<()> {
            cancel.check()?;
            slot.copy_from_slice(&decode_gray(&root.join(relative), side)?);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(512) || n == total {
                emit.emit(Event::Progress { stage: Stage::Decode, done: n, total: Some(total) });
            }
            Ok(())
        })?;
        emit.emit(Event::StageFinished { stage: Stage::Decode });
        Ok(Self { side, pixels, labels: items.iter().map(|(_, class)| *class as u32).collect() })
    }

    /// Builds a cache from pixels already in memory (`side*side` bytes per image).
    pub fn from_pixels(side: usize, pixels: Vec<u8>, labels: Vec<u32>) -> Self {
        assert_eq!(pixels.len(), labels.len() * side * side, "one side*side image per label");
        Self { side, pixels, labels }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn side(&self) -> usize {
        self.side
    }

    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.side * self.side;
        &self.pixels[index * n..(index + 1) * n]
    }

    pub fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }

    pub fn bytes(&self) -> usize {
        self.pixels.len() + self.labels.len() * size_of::<u32>()
    }
}

/// Decodes one file to `side`x`side` 8-bit gray.
pub fn decode_gray(path: &Path, side: usize) -> Result<Vec<u8>> {
    let decoded = super::scan::decode_file(path).with_context(|| format!("cannot use {}", path.display()))?;
    let gray = decoded.image.into_luma8();
    let gray = if gray.width() as usize == side && gray.height() as usize == side {
        gray
    } else {
        image::imageops::resize(&gray, side as u32, side as u32, FilterType::Triangle)
    };
    Ok(gray.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_resizes_and_keeps_labels_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let small = image::GrayImage::from_fn(8, 8, |x, _| image::Luma([(x * 30) as u8]));
        small.save(dir.path().join("a.png")).unwrap();
        let colour = image::RgbImage::from_pixel(20, 10, image::Rgb([255, 255, 255]));
        colour.save(dir.path().join("b.JPG")).unwrap();
        let items = vec![(PathBuf::from("a.png"), 1), (PathBuf::from("b.JPG"), 0)];
        let cache = ImageCache::decode(dir.path(), &items, 8, &|_| {}, &CancelToken::new()).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.image(0), small.as_raw().as_slice());
        assert!(cache.image(1).iter().all(|&v| v > 240), "white stays white after resize");
        assert_eq!((cache.label(0), cache.label(1)), (1, 0));
    }

    #[test]
    fn names_the_file_it_cannot_decode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.jpeg"), b"not a jpeg").unwrap();
        let items = vec![(PathBuf::from("bad.jpeg"), 0)];
        let error = ImageCache::decode(dir.path(), &items, 8, &|_| {}, &CancelToken::new()).unwrap_err();
        assert!(format!("{error:#}").contains("bad.jpeg"), "{error:#}");
    }
}
