//! fastai's `ClassificationInterpretation`: the confusion matrix, per-class scores, the most
//! confused pairs and the top losses, computed from validation predictions.

use std::path::PathBuf;

use serde::Serialize;

use super::inference::Predictions;
use crate::data::scan::{Frame, Item, image_label};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interpretation {
    pub classes: Vec<String>,
    /// `confusion[actual][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    pub scores: Vec<ClassScores>,
    /// Off-diagonal cells with at least one image, most frequent first.
    pub most_confused: Vec<Confusion>,
    /// The worst validation images, highest loss first.
    pub top_losses: Vec<TopLoss>,
    pub error_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Validation images of this class.
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    pub actual: String,
    pub predicted: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopLoss {
    /// The image file, relative to the dataset folder, to read it.
    #[serde(skip)]
    pub file: PathBuf,
    /// That path as it may be shown: with what names the patient masked (`identifiers`).
    pub path: String,
    /// The frame, for an image that is one frame of a multi-frame file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<Frame>,
    pub actual: String,
    pub predicted: String,
    pub loss: f64,
    /// Probability the model gave the actual class.
    pub probability_actual: f64,
}

impl TopLoss {
    /// The image's path, and its frame in a multi-frame file: `CT/a.dcm (frame 3 of 30)`.
    pub fn image(&self) -> String {
        image_label(&self.path, self.frame)
    }
}

impl Interpretation {
    /// Interprets `predictions` of `images` (indexed by the predictions' items), keeping the
    /// `top` worst, whose paths are shown as `shown` gives them.
    pub fn new(
        classes: &[String],
        predictions: &Predictions,
        images: &[Item],
        top: usize,
        shown: impl Fn(&Item) -> String,
    ) -> Self {
        let n = classes.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for row in 0..predictions.len() {
            confusion[predictions.labels[row]][predictions.predicted(row)] += 1;
        }
        let scores = (0..n)
            .map(|class| {
                let hits = confusion[class][class] as f64;
                let support: usize = confusion[class].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[class]).sum();
                let precision = ratio(hits, predicted as f64);
                let recall = ratio(hits, support as f64);
                let f1 = ratio(2.0 * precision * recall, precision + recall);
                ClassScores { class: classes[class].clone(), precision, recall, f1, support }
            })
            .collect();
        let mut most_confused: Vec<Confusion> = (0..n)
            .flat_map(|actual| (0..n).map(move |predicted| (actual, predicted)))
            .filter(|&(actual, predicted)| actual != predicted && confusion[actual][predicted] > 0)
            .map(|(actual, predicted)| Confusion {
                actual: classes[actual].clone(),
                predicted: classes[predicted].clone(),
                count: confusion[actual][predicted],
            })
            .collect();
        // Stable: equal counts keep the matrix's (actual, predicted) order.
        most_confused.sort_by_key(|c| std::cmp::Reverse(c.count));
        let top_losses = top_loss_rows(predictions, top)
            .into_iter()
            .map(|row| {
                let loss = predictions.loss(row);
                let image = &images[predictions.items[row]];
                TopLoss {
                    file: PathBuf::from(&image.path),
                    path: shown(image),
                    frame: image.frame,
                    actual: classes[predictions.labels[row]].clone(),
                    predicted: classes[predictions.predicted(row)].clone(),
                    loss,
                    probability_actual: (-loss).exp(),
                }
            })
            .collect();
        Self {
            classes: classes.to_vec(),
            confusion,
            scores,
            most_confused,
            top_losses,
            error_rate: predictions.tally().error_rate(),
        }
    }

    /// Row `actual` of the confusion matrix as fractions of its images (fastai's
    /// `normalize=True`); zeros for a class with no images.
    pub fn normalized_row(&self, actual: usize) -> Vec<f64> {
        let total: usize = self.confusion[actual].iter().sum();
        self.confusion[actual].iter().map(|&count| ratio(count as f64, total as f64)).collect()
    }
}

/// The rows of the `top` highest losses, highest first (the order of
/// [`Interpretation::top_losses`]).
pub fn top_loss_rows(predictions: &Predictions, top: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..predictions.len()).collect();
    rows.sort_by(|&a, &b| predictions.loss(b).total_cmp(&predictions.loss(a)));
    rows.truncate(top);
    rows
}

/// `numerator / denominator`, 0 when nothing was counted (scikit-learn's zero_division=0).
fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 { 0.0 } else { numerator / denominator }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        ["Hand", "CXR", "HeadCT"].map(String::from).to_vec()
    }

    /// Rows of probabilities with their labels; item `i` is the image `img{i}.png`.
    fn predictions(rows: &[([f32; 3], usize)]) -> (Predictions, Vec<Item>) {
        let predictions = Predictions {
            classes: 3,
            log_probs: rows.iter().flat_map(|(p, _)| p.map(f32::ln)).collect(),
            labels: rows.iter().map(|(_, label)| *label).collect(),
            items: (0..rows.len()).collect(),
        };
        (predictions, (0..rows.len()).map(|i| Item::new(format!("img{i}.png"), rows[i].1)).collect())
    }

    #[test]
    fn confusion_matrix_and_scores_from_known_predictions() {
        let (predictions, paths) = predictions(&[
            ([0.8, 0.1, 0.1], 0), // Hand right
            ([0.6, 0.3, 0.1], 0), // Hand right
            ([0.2, 0.7, 0.1], 0), // Hand taken for CXR
            ([0.1, 0.8, 0.1], 1), // CXR right
            ([0.5, 0.4, 0.1], 1), // CXR taken for Hand
            ([0.1, 0.1, 0.8], 2), // HeadCT right
            ([0.1, 0.6, 0.3], 2), // HeadCT taken for CXR
        ]);
        let interpretation = Interpretation::new(&classes(), &predictions, &paths, 3, |item| item.path.clone());
        assert_eq!(interpretation.confusion, vec![vec![2, 1, 0], vec![1, 1, 0], vec![0, 1, 1]]);
        assert!((interpretation.error_rate - 3.0 / 7.0).abs() < 1e-12);
        let hand = &interpretation.scores[0];
        assert_eq!(hand.support, 3);
        assert!((hand.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((hand.recall - 2.0 / 3.0).abs() < 1e-12);
        let cxr = &interpretation.scores[1];
        assert!((cxr.precision - 1.0 / 3.0).abs() < 1e-12 && (cxr.recall - 0.5).abs() < 1e-12);
        assert!((cxr.f1 - 2.0 * (1.0 / 3.0) * 0.5 / (1.0 / 3.0 + 0.5)).abs() < 1e-12);
        let row = interpretation.normalized_row(0);
        assert!((row[0] - 2.0 / 3.0).abs() < 1e-12 && (row[2]).abs() < 1e-12);
        let pairs: Vec<(&str, &str, usize)> =
            interpretation.most_confused.iter().map(|c| (c.actual.as_str(), c.predicted.as_str(), c.count)).collect();
        assert_eq!(pairs, vec![("Hand", "CXR", 1), ("CXR", "Hand", 1), ("HeadCT", "CXR", 1)]);
    }

    #[test]
    fn top_losses_are_the_worst_first() {
        let (predictions, paths) = predictions(&[
            ([0.9, 0.05, 0.05], 0),
            ([0.05, 0.9, 0.05], 0), // worst: p(actual) 0.05
            ([0.3, 0.6, 0.1], 0),   // third: 0.3
            ([0.8, 0.1, 0.1], 2),   // second: 0.1
        ]);
        let top = Interpretation::new(&classes(), &predictions, &paths, 3, |item| item.path.clone()).top_losses;
        let names: Vec<_> = top.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(names, ["img1.png", "img3.png", "img2.png"]);
        assert_eq!((top[0].actual.as_str(), top[0].predicted.as_str()), ("Hand", "CXR"));
        assert!((top[0].probability_actual - 0.05).abs() < 1e-6);
        assert!((top[1].loss - -(0.1f64.ln())).abs() < 1e-6);
        assert!(top.windows(2).all(|w| w[0].loss >= w[1].loss));
    }

    #[test]
    fn a_class_never_predicted_scores_zero_not_nan() {
        let (predictions, paths) = predictions(&[([0.9, 0.05, 0.05], 0), ([0.9, 0.05, 0.05], 1)]);
        let interpretation = Interpretation::new(&classes(), &predictions, &paths, 9, |item| item.path.clone());
        let head_ct = &interpretation.scores[2];
        assert_eq!((head_ct.precision, head_ct.recall, head_ct.f1, head_ct.support), (0.0, 0.0, 0.0, 0));
        assert_eq!(interpretation.top_losses.len(), 2, "fewer images than asked for");
    }
}
