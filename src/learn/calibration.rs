//! Whether the probabilities can be trusted: the expected calibration error and reliability
//! diagram over 15 equal-width bins of the top class's probability (Guo et al., "On
//! Calibration of Modern Neural Networks", 2017), and temperature scaling, the one-parameter
//! fix that paper proposes, fitted on validation predictions.

use serde::Serialize;

use super::inference::Predictions;

pub const BINS: usize = 15;

/// The temperatures a fit may return: beyond them the logits are practically a one-hot vote
/// or a uniform guess, and a validation set that pushes there is too small or too easy.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.05, 20.0);

/// One bin of the reliability diagram: images whose top probability is in `(lower, upper]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean top probability of the bin's images; `None` when empty.
    pub confidence: Option<f64>,
    /// Fraction of them predicted right; `None` when empty.
    pub accuracy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reliability {
    /// Expected calibration error: the mean over images of |accuracy - confidence| of their bin.
    pub ece: f64,
    pub bins: Vec<ReliabilityBin>,
}

impl Reliability {
    pub fn new(predictions: &Predictions) -> Self {
        let mut sums = vec![(0usize, 0.0f64, 0usize); BINS];
        for row in 0..predictions.len() {
            let predicted = predictions.predicted(row);
            let confidence = f64::from(predictions.log_probs_of(row)[predicted]).exp();
            let bin = ((confidence * BINS as f64).ceil() as usize).clamp(1, BINS) - 1;
            let (count, confidence_sum, right) = &mut sums[bin];
            *count += 1;
            *confidence_sum += confidence;
            *right += usize::from(predicted == predictions.labels[row]);
        }
        let total = predictions.len().max(1) as f64;
        let mut ece = 0.0;
        let bins = sums
            .into_iter()
            .enumerate()
            .map(|(bin, (count, confidence_sum, right))| {
                let (confidence, accuracy) = if count == 0 {
                    (None, None)
                } else {
                    let (confidence, accuracy) = (confidence_sum / count as f64, right as f64 / count as f64);
                    ece += count as f64 / total * (accuracy - confidence).abs();
                    (Some(confidence), Some(accuracy))
                };
                ReliabilityBin {
                    lower: bin as f64 / BINS as f64,
                    upper: (bin + 1) as f64 / BINS as f64,
                    count,
                    confidence,
                    accuracy,
                }
            })
            .collect();
        Self { ece, bins }
    }
}

/// The temperature `T` minimising the mean negative log-likelihood of `softmax(logits / T)`
/// on `predictions`, within [`TEMPERATURE_RANGE`].
///
/// In `b = 1 / T` the loss is convex (a log-sum-exp of functions linear in `b`, minus one), so
/// its derivative, the mean of `E_softmax(b z)[z] - z_label`, increases with `b`: the root is
/// found by bisection (on `ln b`, 100 halvings: far below f32 precision).
pub fn fit_temperature(predictions: &Predictions) -> f32 {
    let slope = |inverse: f64| {
        let mut sum = 0.0;
        for row in 0..predictions.len() {
            let logits = predictions.log_probs_of(row);
            let scaled: Vec<f64> = logits.iter().map(|&z| inverse * f64::from(z)).collect();
            let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            let expected: f64 = weights.iter().zip(logits).map(|(w, &z)| w * f64::from(z)).sum::<f64>() / total;
            sum += expected - f64::from(logits[predictions.labels[row]]);
        }
        sum
    };
    let (low_t, high_t) = TEMPERATURE_RANGE;
    let (mut low, mut high) = ((1.0 / high_t).ln(), (1.0 / low_t).ln());
    if slope(low.exp()) >= 0.0 {
        return high_t as f32;
    }
    if slope(high.exp()) <= 0.0 {
        return low_t as f32;
    }
    for _ in 0..100 {
        let middle = (low + high) / 2.0;
        if slope(middle.exp()) < 0.0 {
            low = middle;
        } else {
            high = middle;
        }
    }
    (1.0 / ((low + high) / 2.0).exp()) as f32
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn predictions(rows: &[([f32; 3], usize)]) -> Predictions {
        Predictions {
            classes: 3,
            log_probs: rows.iter().flat_map(|(p, _)| p.map(f32::ln)).collect(),
            labels: rows.iter().map(|(_, label)| *label).collect(),
            items: (0..rows.len()).collect(),
        }
    }

    #[test]
    fn ece_by_hand() {
        let reliability = Reliability::new(&predictions(&[
            ([0.9, 0.05, 0.05], 0), // right, 0.9
            ([0.9, 0.05, 0.05], 1), // wrong, 0.9
            ([0.62, 0.28, 0.1], 0), // right, 0.62
            ([0.2, 0.72, 0.08], 1), // right, 0.72
        ]));
        // Bins (13/15, 14/15]: 2 images, accuracy 0.5, confidence 0.9; (9/15, 10/15]: 0.62
        // right; (10/15, 11/15]: 0.72 right.
        let expected = 0.5 * (0.9f64 - 0.5).abs() + 0.25 * (1.0f64 - 0.62) + 0.25 * (1.0f64 - 0.72);
        assert!((reliability.ece - expected).abs() < 1e-6, "{} vs {expected}", reliability.ece);
        assert_eq!(reliability.bins.len(), 15);
        let full: Vec<(usize, usize)> =
            reliability.bins.iter().enumerate().filter(|(_, b)| b.count > 0).map(|(i, b)| (i, b.count)).collect();
        assert_eq!(full, [(9, 1), (10, 1), (13, 2)]);
        assert_eq!(reliability.bins[13].accuracy, Some(0.5));
        assert_eq!((reliability.bins[0].confidence, reliability.bins[0].accuracy), (None, None));
        assert!((reliability.bins[13].upper - 14.0 / 15.0).abs() < 1e-12);
    }

    /// Mean negative log-likelihood at temperature `t`, computed directly.
    fn nll(predictions: &Predictions, t: f64) -> f64 {
        let tempered = predictions.with_temperature(Some(t as f32));
        (0..tempered.len()).map(|row| tempered.loss(row)).sum::<f64>() / tempered.len() as f64
    }

    /// Logits of an overconfident model: labels drawn from softmax(z / 2), so temperature 2
    /// is the right one.
    fn overconfident(n: usize) -> Predictions {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut rows = Vec::new();
        for _ in 0..n {
            let z: [f64; 3] = [rng.random_range(-4.0..4.0), rng.random_range(-4.0..4.0), rng.random_range(-4.0..4.0)];
            let soft: Vec<f64> = z.iter().map(|v| (v / 2.0).exp()).collect();
            let total: f64 = soft.iter().sum();
            let mut draw = rng.random_range(0.0..total);
            let label = soft
                .iter()
                .position(|&w| {
                    draw -= w;
                    draw < 0.0
                })
                .unwrap_or(2);
            let sharp_total: f64 = z.iter().map(|v| v.exp()).sum();
            rows.push((z.map(|v| (v.exp() / sharp_total) as f32), label));
        }
        predictions(&rows)
    }

    #[test]
    fn the_fitted_temperature_minimises_the_loss() {
        let predictions = overconfident(4000);
        let fitted = f64::from(fit_temperature(&predictions));
        assert!((fitted - 2.0).abs() < 0.15, "the temperature the labels were drawn with: {fitted}");
        // A grid over the whole range finds no lower loss than the fit.
        let best_on_grid = (0..=2000)
            .map(|i| 0.05 * (400f64).powf(i as f64 / 2000.0))
            .min_by(|&a, &b| nll(&predictions, a).total_cmp(&nll(&predictions, b)))
            .unwrap();
        assert!((fitted - best_on_grid).abs() / best_on_grid < 0.005, "fit {fitted}, grid {best_on_grid}");
        let before = Reliability::new(&predictions).ece;
        let after = Reliability::new(&predictions.with_temperature(Some(fitted as f32))).ece;
        assert!(after < before / 2.0, "ECE {before} before, {after} after");
    }

    #[test]
    fn a_validation_set_without_errors_pushes_to_the_bound() {
        let predictions = predictions(&[([0.7, 0.2, 0.1], 0), ([0.1, 0.8, 0.1], 1)]);
        assert_eq!(f64::from(fit_temperature(&predictions)), TEMPERATURE_RANGE.0 as f32 as f64);
    }
}
