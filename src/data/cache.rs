//! Every image decoded once into memory as `side`x`side` 8-bit gray: the full MedNIST at
//! 64x64 is about 240 MB. Batches are cut from this cache, never from disk.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use image::imageops::FilterType;
use rayon::prelude::*;

use super::decode::{self, Decoded};
use super::scan::Item;
use super::window::Window;
use crate::event::{Emit, Event, Stage};
use crate::job::CancelToken;

#[derive(Debug, Clone)]
pub struct ImageCache {
    side: usize,
    pixels: Vec<u8>,
    labels: Vec<u32>,
}

impl ImageCache {
    /// Decodes `items` (paths relative to `root`) in parallel, each file once however many of
    /// its frames are items. Colour images are converted to luma, gray values of more than 8
    /// bits windowed with `window`, other sizes resized (bilinear).
    pub fn decode(
        root: &Path,
        items: &[Item],
        side: usize,
        window: &Window,
        emit: &dyn Emit,
        cancel: &CancelToken,
    ) -> Result<Self> {
        anyhow::ensure!(side > 0, "images cannot be resized to 0 pixels: use a size of at least 1");
        let total = items.len() as u64;
        emit.emit(Event::StageStarted { stage: Stage::Decode, total: Some(total) });
        // Each file with the positions (in `items`) and frames of its images.
        let mut files: Vec<(&str, Vec<(usize, u32)>)> = Vec::new();
        let mut file_of_path: HashMap<&str, usize> = HashMap::new();
        for (position, item) in items.iter().enumerate() {
            let file = *file_of_path.entry(&item.path).or_insert_with(|| {
                files.push((&item.path, Vec::new()));
                files.len() - 1
            });
            files[file].1.push((position, item.frame_index()));
        }
        let done = AtomicU64::new(0);
        // Each image is copied into its place as soon as it is decoded: no second copy of the
        // whole cache is ever held.
        let pixels = Mutex::new(vec![0u8; items.len() * side * side]);
        files.par_iter().try_for_each(|(path, images)| -> Result<()> {
            cancel.check()?;
            let path = root.join(path);
            let file = decode::decode_file(&path).with_context(|| format!("cannot use {}", path.display()))?;
            for &(position, frame) in images {
                let image = render(&file, frame, side, window);
                let mut pixels = pixels.lock().expect("no decoder panics holding the cache");
                pixels[position * side * side..(position + 1) * side * side].copy_from_slice(&image);
            }
            let n = done.fetch_add(images.len() as u64, Ordering::Relaxed) + images.len() as u64;
            if n / 512 != (n - images.len() as u64) / 512 || n == total {
                emit.emit(Event::Progress { stage: Stage::Decode, done: n, total: Some(total) });
            }
            Ok(())
        })?;
        emit.emit(Event::StageFinished { stage: Stage::Decode });
        let pixels = pixels.into_inner().expect("no decoder panics holding the cache");
        Ok(Self { side, pixels, labels: items.iter().map(|item| item.class as u32).collect() })
    }

    /// Builds a cache from pixels already in memory (`side*side` bytes per image).
    pub fn from_pixels(side: usize, pixels: Vec<u8>, labels: Vec<u32>) -> Self {
        assert_eq!(pixels.len(), labels.len() * side * side, "one side*side image per label");
        Self { side, pixels, labels }
    }

    /// Unlabelled images (label 0), `side` square each, in order: what a prediction scores.
    pub fn unlabelled(side: usize, images: Vec<Vec<u8>>) -> Self {
        let count = images.len();
        Self::from_pixels(side, images.concat(), vec![0; count])
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

/// Frame `frame` of a decoded file as `side`x`side` 8-bit gray, windowed with `window`.
pub fn render(decoded: &Decoded, frame: u32, side: usize, window: &Window) -> Vec<u8> {
    let gray = decoded.gray8(frame, window);
    let gray = if gray.width() as usize == side && gray.height() as usize == side {
        gray
    } else {
        image::imageops::resize(&gray, side as u32, side as u32, FilterType::Triangle)
    };
    gray.into_raw()
}

/// Decodes one image (`frame` of a multi-frame file) to `side`x`side` 8-bit gray.
pub fn decode_gray(path: &Path, frame: u32, side: usize, window: &Window) -> Result<Vec<u8>> {
    let decoded = decode::decode_file(path).with_context(|| format!("cannot use {}", path.display()))?;
    if frame >= decoded.frames() {
        anyhow::bail!("{} has {} frame(s), not a frame {}", path.display(), decoded.frames(), frame + 1);
    }
    Ok(render(&decoded, frame, side, window))
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
        let items = vec![Item::new("a.png", 1), Item::new("b.JPG", 0)];
        let cache =
            ImageCache::decode(dir.path(), &items, 8, &Window::default(), &|_| {}, &CancelToken::new()).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.image(0), small.as_raw().as_slice());
        assert!(cache.image(1).iter().all(|&v| v > 240), "white stays white after resize");
        assert_eq!((cache.label(0), cache.label(1)), (1, 0));
    }

    #[test]
    fn names_the_file_it_cannot_decode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.jpeg"), b"not a jpeg").unwrap();
        let items = vec![Item::new("bad.jpeg", 0)];
        let error =
            ImageCache::decode(dir.path(), &items, 8, &Window::default(), &|_| {}, &CancelToken::new()).unwrap_err();
        assert!(format!("{error:#}").contains("bad.jpeg"), "{error:#}");
    }
}
