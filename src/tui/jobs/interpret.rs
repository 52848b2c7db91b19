//! The kernel's Interpret steps: the validation set judged as `mednist interpret` judges it,
//! and one image file classified.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use image::GrayImage;

use super::{Trainer, gray_image};
use crate::data::cache::{decode_gray, render as render_gray};
use crate::data::decode::decode_file;
use crate::data::scan::Frame;
use crate::data::settings::Frames;
use crate::event::Emit;
use crate::job::CancelToken;
use crate::learn::cam::{self, Heatmap};
use crate::learn::clinical::Bootstrap;
use crate::learn::evaluate::{EvaluateOptions, Evaluation, evaluate};
use crate::learn::learner::Learner;

#[derive(Debug, Clone)]
pub struct InterpretInfo {
    /// The interpretation, the clinical figures with their bootstrap intervals, the
    /// calibration and the top losses' Grad-CAM heatmaps (for the class each was taken for).
    pub evaluation: Evaluation,
    /// The top-loss images, in the interpretation's order, at the learner's image size (the
    /// heatmaps' side); `None` when one would not decode.
    pub images: Vec<Option<GrayImage>>,
}

/// One image file classified, as the lesson's `learn.predict`.
#[derive(Debug, Clone)]
pub struct PredictInfo {
    pub file: PathBuf,
    /// The frame predicted, for a multi-frame file (its middle one).
    pub frame: Option<Frame>,
    /// Every class with its probability, the most probable first.
    pub classes: Vec<(String, f32)>,
    /// The image as the model saw it: the learner's size and window.
    pub image: GrayImage,
    /// Grad-CAM of the most probable class; `None` where the model cannot locate anything.
    pub heatmap: Option<Heatmap>,
}

/// The evaluation `mednist interpret` prints (its default bootstrap, no temperature fitted),
/// with the top losses' images. Their Grad-CAM costs a pass over a few images next to the
/// validation pass, so it comes with every run and `c` shows it at once.
pub(super) fn evaluate_validation(
    trainer: &mut Trainer,
    top: usize,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<InterpretInfo> {
    let learner = &mut trainer.learner;
    let cam = grad_cam_possible(learner, emit);
    let options = EvaluateOptions { top, bootstrap: Bootstrap::default(), calibrate: false, tta: None, cam };
    let evaluation = evaluate(learner, &trainer.data, &options, emit, cancel)?;
    let (data, side) = (&trainer.data, learner.image_size);
    let images = evaluation
        .interpretation
        .top_losses
        .iter()
        .map(|t| {
            decode_gray(&data.dataset.join(&t.file), t.frame.map_or(0, |f| f.index), side, &data.window)
                .ok()
                .and_then(|pixels| gray_image(pixels, side))
        })
        .collect();
    Ok(InterpretInfo { evaluation, images })
}

/// Whether Grad-CAM can locate anything with `learner`; the cell says why not.
fn grad_cam_possible(learner: &Learner, emit: &dyn Emit) -> bool {
    match cam::check(learner.arch, learner.image_size) {
        Ok(()) => true,
        Err(why) => {
            emit.warn(format!("{why:#}"));
            false
        }
    }
}

/// The lesson's `learn.predict` on one image file (the middle frame of a multi-frame one), in
/// the learner's size and window, with the Grad-CAM of its most probable class.
pub(super) fn predict_file(
    learner: &Learner,
    file: &Path,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<PredictInfo> {
    let decoded = decode_file(file).map_err(|why| anyhow!("cannot read {}: {why}", file.display()))?;
    let count = decoded.frames();
    let index = Frames::Middle.pick(count).start;
    let side = learner.image_size;
    let pixels = render_gray(&decoded, index, side, &learner.window);
    let ranked = learner.predict_images(vec![pixels.clone()], emit, cancel)?.ranked(0);
    let best = ranked.first().map(|(class, _)| *class).context("the model has no classes")?;
    let heatmap = if grad_cam_possible(learner, emit) {
        learner.grad_cam_images(vec![pixels.clone()], &[best])?.pop()
    } else {
        None
    };
    Ok(PredictInfo {
        file: file.to_path_buf(),
        frame: (count > 1).then_some(Frame { index, count }),
        classes: ranked.into_iter().map(|(class, p)| (learner.classes[class].clone(), p)).collect(),
        image: gray_image(pixels, side).context("the rendered image has the wrong size")?,
        heatmap,
    })
}
