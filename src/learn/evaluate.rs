//! A trained learner judged on the validation set, as `mednist interpret` reports it (and the
//! Interpret pane can): the lesson's interpretation, the clinical metrics with intervals, the
//! calibration (optionally fitted now), test-time augmentation and Grad-CAM of the top losses.

use anyhow::Result;
use serde::Serialize;

use super::calibration::{self, Reliability, ReliabilityBin};
use super::cam::{self, Heatmap};
use super::clinical::{Bootstrap, ClinicalMetrics};
use super::data::TrainData;
use super::inference::{Predictions, Tta, TtaPredictions};
use super::interpret::{Interpretation, top_loss_rows};
use super::learner::Learner;
use crate::event::Emit;
use crate::job::CancelToken;

#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateOptions {
    /// How many of the worst validation images to list.
    pub top: usize,
    pub bootstrap: Bootstrap,
    /// Fit a temperature on the validation predictions and keep it in the learner's checkpoint.
    pub calibrate: bool,
    pub tta: Option<Tta>,
    /// Grad-CAM heatmaps of the top losses, each for the class it was taken for.
    pub cam: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Of the probabilities as reported: after the calibration temperature, when there is one.
    #[serde(flatten)]
    pub interpretation: Interpretation,
    pub metrics: ClinicalMetrics,
    pub calibration: Calibration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tta: Option<TtaReport>,
    /// One per top loss, in the same order, for the class it was taken for (its `predicted`),
    /// when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_loss_cams: Vec<Heatmap>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The temperature the logits are divided by; `None` when the learner is not calibrated.
    pub temperature: Option<f32>,
    /// Whether it was fitted by this evaluation (and saved with the learner).
    pub fitted_now: bool,
    /// Expected calibration error of the probabilities as reported, over
    /// [`calibration::BINS`] bins.
    pub ece: f64,
    /// The reliability diagram of those probabilities.
    pub bins: Vec<ReliabilityBin>,
    /// The same before the temperature, when there is one.
    pub uncalibrated: Option<Reliability>,
}

/// The validation figures with test-time augmentation, beside the plain ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtaReport {
    /// Augmented copies of each image (the plain image comes on top of them).
    pub copies: usize,
    /// The plain prediction's share of the result.
    pub beta: f64,
    pub error_rate: f64,
    pub ece: f64,
    pub metrics: ClinicalMetrics,
}

/// Judges `learner` on `data`'s validation images. With `options.calibrate` the fitted
/// temperature is set on the learner and saved in its checkpoint before the figures are
/// computed. Stops with [`Cancelled`] when `cancel` is set.
pub fn evaluate(
    learner: &mut Learner,
    data: &TrainData,
    options: &EvaluateOptions,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<Evaluation> {
    learner.check_data(data)?;
    if options.cam {
        cam::check(learner.arch, learner.image_size)?;
    }
    let raw = learner.predict(data, &data.valid, emit, cancel)?;
    if options.calibrate {
        let temperature = calibration::fit_temperature(&raw);
        learner.set_temperature(Some(temperature));
        let saved = learner.save()?;
        emit.info(format!(
            "fitted temperature {temperature:.4} on {} validation images, saved in {}",
            raw.len(),
            saved.display()
        ));
    }
    let temperature = learner.temperature();
    let reported = raw.with_temperature(temperature);
    let classes = &learner.classes;
    let tta = match options.tta {
        Some(tta) => {
            let copies = learner.predict_augmented(data, &data.valid, tta, emit, cancel)?;
            let TtaPredictions { augmented, .. } = TtaPredictions::new(&raw, &copies, temperature);
            Some(TtaReport {
                copies: tta.copies.get(),
                beta: Tta::BETA,
                error_rate: augmented.tally().error_rate(),
                ece: Reliability::new(&augmented).ece,
                metrics: ClinicalMetrics::new(classes, &augmented, options.bootstrap),
            })
        }
        None => None,
    };
    let top_loss_cams = if options.cam { top_loss_cams(learner, data, &reported, options.top)? } else { Vec::new() };
    let reliability = Reliability::new(&reported);
    Ok(Evaluation {
        interpretation: Interpretation::new(classes, &reported, &data.items, options.top, |item| data.shown_path(item)),
        metrics: ClinicalMetrics::new(classes, &reported, options.bootstrap),
        calibration: Calibration {
            temperature,
            fitted_now: options.calibrate,
            ece: reliability.ece,
            bins: reliability.bins,
            uncalibrated: temperature.map(|_| Reliability::new(&raw)),
        },
        tta,
        top_loss_cams,
    })
}

/// Grad-CAM of each top loss for the class the model took it for: what misled it.
fn top_loss_cams(learner: &Learner, data: &TrainData, predictions: &Predictions, top: usize) -> Result<Vec<Heatmap>> {
    let rows = top_loss_rows(predictions, top);
    let items: Vec<usize> = rows.iter().map(|&row| predictions.items[row]).collect();
    let classes: Vec<usize> = rows.iter().map(|&row| predictions.predicted(row)).collect();
    learner.grad_cam(data, &items, &classes)
}
