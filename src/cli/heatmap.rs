//! Grad-CAM heatmaps drawn headless: over the image ([`overlay`]), printed with viuer when
//! stdout is a terminal, or written as PNGs (`--cam-dir`). Also the flags `interpret` and
//! `predict` share: `--cam`, `--cam-dir` and `--tta`.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::{DynamicImage, GrayImage, RgbImage, imageops};

use crate::learn::cam::Heatmap;
use crate::learn::inference::Tta;
use crate::learn::overlay::overlay;
use crate::workspace::write_atomic;

/// `--cam`, `--cam-dir` and `--tta`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClinicalArgs {
    /// Grad-CAM heatmaps (last convolutional stage): drawn over the images when stdout is a terminal, in --json
    #[arg(long)]
    pub cam: bool,
    /// Write each image with its heatmap overlaid as a PNG into DIR (implies --cam)
    #[arg(long, value_name = "DIR")]
    pub cam_dir: Option<PathBuf>,
    /// Test-time augmentation as fastai's learn.tta(): COPIES augmented passes per image [default: 4]
    #[arg(long, value_name = "COPIES", num_args = 0..=1, default_missing_value = "4", value_parser = parse_copies)]
    pub tta: Option<NonZeroUsize>,
    /// Seed of the test-time augmentations (and of interpret's bootstrap)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl ClinicalArgs {
    pub fn cam(&self) -> bool {
        self.cam || self.cam_dir.is_some()
    }

    pub fn tta(&self) -> Option<Tta> {
        self.tta.map(|copies| Tta { copies, seed: self.seed })
    }

    /// The `--cam-dir` folder, created; `None` without the flag.
    pub fn cam_folder(&self) -> Result<Option<&Path>> {
        let Some(folder) = &self.cam_dir else { return Ok(None) };
        std::fs::create_dir_all(folder).with_context(|| format!("cannot create the --cam-dir {}", folder.display()))?;
        Ok(Some(folder))
    }
}

fn parse_copies(text: &str) -> Result<NonZeroUsize, String> {
    let copies: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of copies: write --tta N, or --tta after the files"))?;
    NonZeroUsize::new(copies).ok_or_else(|| {
        format!("test-time augmentation needs at least 1 augmented copy (fastai's default is {})", Tta::DEFAULT_COPIES)
    })
}

/// PNGs are drawn at least this wide: a 64-pixel image with its map is hard to read.
const PNG_SIDE: u32 = 256;

/// The plain image beside the one with its heatmap, for the terminal.
pub fn side_by_side(gray: &[u8], heatmap: &Heatmap) -> DynamicImage {
    let side = heatmap.side as u32;
    let plain = GrayImage::from_raw(side, side, gray.to_vec()).expect("side x side pixels");
    let mut both = RgbImage::new(side * 2 + 2, side);
    imageops::replace(&mut both, &DynamicImage::ImageLuma8(plain).to_rgb8(), 0, 0);
    imageops::replace(&mut both, &overlay(gray, heatmap, 1), i64::from(side) + 2, 0);
    DynamicImage::ImageRgb8(both)
}

/// Writes the overlay as `{index}-{file stem}-{class}.png` in `folder`; returns its path.
pub fn write_png(
    folder: &Path,
    index: usize,
    file: &Path,
    class: &str,
    gray: &[u8],
    heatmap: &Heatmap,
) -> Result<PathBuf> {
    let stem = file.file_stem().map_or_else(|| "image".into(), |stem| stem.to_string_lossy());
    let path = folder.join(format!("{index:03}-{stem}-{class}.png"));
    let scale = PNG_SIDE.div_ceil(heatmap.side as u32).max(1);
    let mut png = Vec::new();
    overlay(gray, heatmap, scale)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode the heatmap PNG")?;
    write_atomic(&path, &png)?;
    Ok(path)
}

/// Prints `picture` with viuer (kitty or iTerm2 graphics where the terminal has them,
/// half-blocks in colour otherwise); a failure is reported, not fatal.
pub fn print(picture: &DynamicImage, width: u32, what: &Path) {
    let config = viuer::Config { absolute_offset: false, width: Some(width), ..viuer::Config::default() };
    if let Err(error) = viuer::print(picture, &config) {
        eprintln!("cannot draw {}: {error}", what.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_png_is_named_after_the_file() {
        let heatmap = Heatmap { grid: 2, side: 2, values: vec![1.0, 0.1, 0.1, 0.1] };
        let gray = [128u8; 4];
        let dir = tempfile::tempdir().unwrap();
        let path = write_png(dir.path(), 3, Path::new("scans/Hand/001.jpeg"), "Hand", &gray, &heatmap).unwrap();
        assert_eq!(path.file_name().unwrap(), "003-001-Hand.png");
        let written = image::open(&path).unwrap();
        assert_eq!((written.width(), written.height()), (256, 256));
        assert_eq!(side_by_side(&gray, &heatmap).width(), 6);
    }

    #[test]
    fn zero_copies_is_refused() {
        assert!(parse_copies("0").unwrap_err().contains("at least 1 augmented copy"));
        assert_eq!(parse_copies("3").unwrap().get(), 3);
        assert!(parse_copies("x").is_err());
    }
}
