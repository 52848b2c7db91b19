//! What a radiologist asks of a classifier, for each class against the rest: sensitivity
//! (recall), specificity, positive and negative predictive values, F1 and the ROC AUC, their
//! macro and support-weighted averages, and the ROC curves. Each figure comes with a 95%
//! percentile-bootstrap interval: the validation images are resampled with replacement
//! (seeded) and every figure recomputed on each resample.
//!
//! A figure whose denominator is empty (the PPV of a class never predicted, the AUC of a class
//! with no images) is undefined: `None`, and left out of the averages and of the resamples.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::inference::Predictions;

/// The confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// How the intervals are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bootstrap {
    pub resamples: usize,
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self { resamples: 1000, seed: 42 }
    }
}

/// A figure and its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: Option<f64>,
    /// `None` when the figure is undefined, or defined in fewer than 2 resamples.
    pub ci: Option<Interval>,
}

impl Estimate {
    /// The figure to 3 decimals: `0.981`; `-` when undefined.
    pub fn value_text(&self) -> String {
        self.value.map_or_else(|| "-".into(), |value| format!("{value:.3}"))
    }

    /// The interval to 3 decimals: `[0.975, 0.987]`; empty when there is none.
    pub fn interval_text(&self) -> String {
        self.ci.map_or_else(String::new, |ci| format!("[{:.3}, {:.3}]", ci.lower, ci.upper))
    }
}

/// `0.981 [0.975, 0.987]`; `-` when undefined.
impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value {
            Some(_) if self.ci.is_some() => write!(f, "{} {}", self.value_text(), self.interval_text()),
            _ => f.write_str(&self.value_text()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

/// The six figures, for one class or averaged over the classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub sensitivity: Estimate,
    pub specificity: Estimate,
    /// Positive predictive value (precision).
    pub ppv: Estimate,
    /// Negative predictive value.
    pub npv: Estimate,
    pub f1: Estimate,
    /// Area under the ROC curve of this class's probability.
    pub auc: Estimate,
}

/// Names of [`Metrics`]' fields, in order.
pub const METRIC_NAMES: [&str; METRICS] = ["sensitivity", "specificity", "ppv", "npv", "f1", "auc"];
const METRICS: usize = 6;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub class: String,
    /// Validation images of this class.
    pub support: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// One class's ROC curve: (false positive rate, true positive rate) from (0, 0) to (1, 1),
/// only the points where it turns (collinear ones dropped, like scikit-learn's
/// `drop_intermediate`): a few points for a good classifier, not one per image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RocCurve {
    pub class: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClinicalMetrics {
    pub bootstrap: Bootstrap,
    pub level: f64,
    pub per_class: Vec<ClassMetrics>,
    /// The mean over classes.
    #[serde(rename = "macro")]
    pub macro_average: Metrics,
    /// The mean over classes weighted by their number of images.
    #[serde(rename = "weighted")]
    pub weighted_average: Metrics,
    pub roc: Vec<RocCurve>,
}

impl ClinicalMetrics {
    pub fn new(classes: &[String], predictions: &Predictions, bootstrap: Bootstrap) -> Self {
        let figures = Figures::new(predictions);
        let point = figures.all(&vec![1; predictions.len()]);
        let resampled: Vec<Vec<f64>> = (0..bootstrap.resamples)
            .into_par_iter()
            .map(|resample| {
                let mut rng = ChaCha8Rng::seed_from_u64(bootstrap.seed);
                rng.set_stream(resample as u64);
                figures.all(&draw_weights(predictions.len(), &mut rng))
            })
            .collect();
        let estimate = |at: usize| {
            let value = Some(point[at]).filter(|v| v.is_finite());
            let mut values: Vec<f64> = resampled.iter().map(|r| r[at]).filter(|v| v.is_finite()).collect();
            values.sort_by(f64::total_cmp);
            let ci = (value.is_some() && values.len() >= 2).then(|| Interval {
                lower: quantile(&values, (1.0 - LEVEL) / 2.0),
                upper: quantile(&values, (1.0 + LEVEL) / 2.0),
            });
            Estimate { value, ci }
        };
        let metrics = |first: usize| Metrics {
            sensitivity: estimate(first),
            specificity: estimate(first + 1),
            ppv: estimate(first + 2),
            npv: estimate(first + 3),
            f1: estimate(first + 4),
            auc: estimate(first + 5),
        };
        let n = classes.len();
        Self {
            bootstrap,
            level: LEVEL,
            per_class: (0..n)
                .map(|class| ClassMetrics {
                    class: classes[class].clone(),
                    support: predictions.labels.iter().filter(|&&label| label == class).count(),
                    metrics: metrics(class * METRICS),
                })
                .collect(),
            macro_average: metrics(n * METRICS),
            weighted_average: metrics((n + 1) * METRICS),
            roc: (0..n)
                .map(|class| RocCurve { class: classes[class].clone(), points: roc_curve(predictions, class) })
                .collect(),
        }
    }
}

impl Metrics {
    /// The figures in [`METRIC_NAMES`] order.
    pub fn all(&self) -> [&Estimate; METRICS] {
        [&self.sensitivity, &self.specificity, &self.ppv, &self.npv, &self.f1, &self.auc]
    }
}

/// How many times each image is drawn in one resample of `n` images with replacement.
fn draw_weights(n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let mut weights = vec![0u32; n];
    for _ in 0..n {
        weights[rng.random_range(0..n)] += 1;
    }
    weights
}

/// The `q` quantile of sorted `values`, interpolating linearly (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (low, high) = (at.floor() as usize, at.ceil() as usize);
    sorted[low] + (at - low as f64) * (sorted[high] - sorted[low])
}

/// Everything a resample needs, computed once: labels, predicted classes and, per class, the
/// images ranked by that class's probability with ties grouped.
struct Figures {
    classes: usize,
    labels: Vec<usize>,
    predicted: Vec<usize>,
    rankings: Vec<Ranking>,
}

/// Images in increasing order of one class's probability; `ties[g]..ties[g + 1]` is a run of
/// equal probabilities.
struct Ranking {
    order: Vec<usize>,
    ties: Vec<usize>,
}

impl Figures {
    fn new(predictions: &Predictions) -> Self {
        let classes = predictions.classes;
        let rankings = (0..classes)
            .map(|class| {
                let score = |row: usize| predictions.log_probs_of(row)[class];
                let mut order: Vec<usize> = (0..predictions.len()).collect();
                order.sort_by(|&a, &b| score(a).total_cmp(&score(b)));
                let mut ties: Vec<usize> =
                    (0..order.len()).filter(|&at| at == 0 || score(order[at]) != score(order[at - 1])).collect();
                ties.push(order.len());
                Ranking { order, ties }
            })
            .collect();
        Self {
            classes,
            labels: predictions.labels.clone(),
            predicted: (0..predictions.len()).map(|row| predictions.predicted(row)).collect(),
            rankings,
        }
    }

    /// Every figure of the images drawn `weights[i]` times each: per class the six in
    /// [`METRIC_NAMES`] order, then the six macro averages, then the six weighted ones. NaN
    /// where undefined.
    fn all(&self, weights: &[u32]) -> Vec<f64> {
        let n = self.classes;
        let mut confusion = vec![vec![0f64; n]; n];
        for ((&label, &predicted), &weight) in self.labels.iter().zip(&self.predicted).zip(weights) {
            confusion[label][predicted] += f64::from(weight);
        }
        let total: f64 = confusion.iter().flatten().sum();
        let mut figures = Vec::with_capacity((n + 2) * METRICS);
        let mut supports = Vec::with_capacity(n);
        for class in 0..n {
            let tp = confusion[class][class];
            let positives: f64 = confusion[class].iter().sum();
            let predicted: f64 = confusion.iter().map(|row| row[class]).sum();
            let (fn_, fp) = (positives - tp, predicted - tp);
            let tn = total - tp - fn_ - fp;
            figures.extend([
                ratio(tp, tp + fn_),
                ratio(tn, tn + fp),
                ratio(tp, tp + fp),
                ratio(tn, tn + fn_),
                ratio(2.0 * tp, 2.0 * tp + fp + fn_),
                self.auc(class, weights),
            ]);
            supports.push(positives);
        }
        for weighted in [false, true] {
            for metric in 0..METRICS {
                let (mut sum, mut weight_sum) = (0.0, 0.0);
                for (class, &support) in supports.iter().enumerate() {
                    let value = figures[class * METRICS + metric];
                    let weight = if weighted { support } else { 1.0 };
                    if value.is_finite() && weight > 0.0 {
                        sum += weight * value;
                        weight_sum += weight;
                    }
                }
                figures.push(ratio(sum, weight_sum));
            }
        }
        figures
    }

    /// The probability that a random image of `class` scores above a random image of another
    /// class, ties counting half (the Mann-Whitney form of the area under the ROC curve).
    fn auc(&self, class: usize, weights: &[u32]) -> f64 {
        let ranking = &self.rankings[class];
        let (mut area, mut negatives_below, mut positives) = (0.0, 0.0, 0.0);
        for run in ranking.ties.windows(2) {
            let (mut run_positives, mut run_negatives) = (0.0, 0.0);
            for &row in &ranking.order[run[0]..run[1]] {
                let weight = f64::from(weights[row]);
                if self.labels[row] == class {
                    run_positives += weight;
                } else {
                    run_negatives += weight;
                }
            }
            area += run_positives * (negatives_below + run_negatives / 2.0);
            negatives_below += run_negatives;
            positives += run_positives;
        }
        ratio(area, positives * negatives_below)
    }
}

/// NaN when nothing was counted: the figure is undefined.
fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 { numerator / denominator } else { f64::NAN }
}

/// `class`'s ROC curve over every threshold of its probability.
fn roc_curve(predictions: &Predictions, class: usize) -> Vec<(f64, f64)> {
    let score = |row: usize| predictions.log_probs_of(row)[class];
    let mut rows: Vec<usize> = (0..predictions.len()).collect();
    rows.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    let positives = predictions.labels.iter().filter(|&&label| label == class).count() as f64;
    let negatives = predictions.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return Vec::new();
    }
    let mut counts = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (at, &row) in rows.iter().enumerate() {
        if predictions.labels[row] == class {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        // A threshold sits between distinct scores only.
        if rows.get(at + 1).is_none_or(|&next| score(next) != score(row)) {
            counts.push((fp, tp));
        }
    }
    // A point is kept where the curve changes direction (the steps before and after it are
    // not parallel), and at both ends.
    let turns = |at: usize| {
        if at == 0 || at + 1 == counts.len() {
            return true;
        }
        let (before, here, after) = (counts[at - 1], counts[at], counts[at + 1]);
        (here.0 - before.0) * (after.1 - here.1) != (here.1 - before.1) * (after.0 - here.0)
    };
    (0..counts.len()).filter(|&at| turns(at)).map(|at| (counts[at].0 / negatives, counts[at].1 / positives)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(n: usize) -> Vec<String> {
        (0..n).map(|class| format!("c{class}")).collect()
    }

    fn predictions(rows: &[(Vec<f32>, usize)]) -> Predictions {
        Predictions {
            classes: rows[0].0.len(),
            log_probs: rows.iter().flat_map(|(p, _)| p.iter().map(|v| v.ln())).collect(),
            labels: rows.iter().map(|(_, label)| *label).collect(),
            items: (0..rows.len()).collect(),
        }
    }

    /// Two classes with class 1's probability given: positives score 0.9, 0.8, 0.4 and
    /// negatives 0.7, 0.4, 0.2, 0.1.
    fn two_class() -> Predictions {
        let rows: Vec<(Vec<f32>, usize)> = [(0.9, 1), (0.8, 1), (0.4, 1), (0.7, 0), (0.4, 0), (0.2, 0), (0.1, 0)]
            .into_iter()
            .map(|(p, label)| (vec![1.0 - p, p], label))
            .collect();
        predictions(&rows)
    }

    fn value(estimate: &Estimate) -> f64 {
        estimate.value.expect("defined")
    }

    #[test]
    fn auc_counts_pairs_in_order_ties_half() {
        // Of the 3 x 4 (positive, negative) pairs the positive scores higher in 4 + 4 + 2, and
        // 0.4 ties once: (10 + 0.5) / 12.
        let metrics = ClinicalMetrics::new(&classes(2), &two_class(), Bootstrap { resamples: 0, seed: 0 });
        assert!((value(&metrics.per_class[1].metrics.auc) - 10.5 / 12.0).abs() < 1e-12);
        // Class 0's probability is 1 - p: the same ranking reversed, the same area.
        assert!((value(&metrics.per_class[0].metrics.auc) - 10.5 / 12.0).abs() < 1e-12);
        assert_eq!(metrics.per_class[1].metrics.auc.ci, None, "no resamples, no interval");
    }

    #[test]
    fn the_area_under_the_returned_curve_is_the_auc() {
        let metrics = ClinicalMetrics::new(&classes(2), &two_class(), Bootstrap { resamples: 0, seed: 0 });
        let curve = &metrics.roc[1].points;
        assert_eq!(curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.last(), Some(&(1.0, 1.0)));
        let trapezoids: f64 = curve.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((trapezoids - 10.5 / 12.0).abs() < 1e-12, "{curve:?}");
        // Thresholds 0.9 and 0.8 both add a true positive: the point between them is collinear.
        assert!(!curve.contains(&(0.0, 1.0 / 3.0)), "{curve:?}");
        assert!(curve.contains(&(0.0, 2.0 / 3.0)) && curve.contains(&(0.25, 2.0 / 3.0)), "{curve:?}");
    }

    #[test]
    fn one_vs_rest_counts_by_hand() {
        // Actual (rows) x predicted: c0 2 1 0 / c1 1 1 0 / c2 0 1 1 (7 images).
        let p = |a: f32, b: f32, c: f32| vec![a, b, c];
        let rows = vec![
            (p(0.8, 0.1, 0.1), 0),
            (p(0.6, 0.3, 0.1), 0),
            (p(0.2, 0.7, 0.1), 0),
            (p(0.1, 0.8, 0.1), 1),
            (p(0.5, 0.4, 0.1), 1),
            (p(0.1, 0.1, 0.8), 2),
            (p(0.1, 0.6, 0.3), 2),
        ];
        let metrics = ClinicalMetrics::new(&classes(3), &predictions(&rows), Bootstrap { resamples: 0, seed: 0 });
        let c1 = &metrics.per_class[1].metrics;
        // Class c1: tp 1, fn 1, fp 2 (a c0 and a c2 taken for it), tn 3.
        assert!((value(&c1.sensitivity) - 0.5).abs() < 1e-12);
        assert!((value(&c1.specificity) - 3.0 / 5.0).abs() < 1e-12);
        assert!((value(&c1.ppv) - 1.0 / 3.0).abs() < 1e-12);
        assert!((value(&c1.npv) - 3.0 / 4.0).abs() < 1e-12);
        assert!((value(&c1.f1) - 2.0 / (2.0 + 2.0 + 1.0)).abs() < 1e-12);
        let sensitivities = [2.0 / 3.0, 0.5, 0.5];
        let macro_sensitivity = sensitivities.iter().sum::<f64>() / 3.0;
        assert!((value(&metrics.macro_average.sensitivity) - macro_sensitivity).abs() < 1e-12);
        // Weighted by support (3, 2, 2), sensitivity is the accuracy: 4 of 7.
        assert!((value(&metrics.weighted_average.sensitivity) - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(metrics.per_class.iter().map(|c| c.support).collect::<Vec<_>>(), [3, 2, 2]);
    }

    #[test]
    fn undefined_figures_are_none_and_left_out_of_the_averages() {
        // c2 has no images and is never predicted.
        let rows = vec![(vec![0.8, 0.1, 0.1], 0), (vec![0.3, 0.6, 0.1], 1), (vec![0.6, 0.3, 0.1], 1)];
        let metrics = ClinicalMetrics::new(&classes(3), &predictions(&rows), Bootstrap::default());
        let c2 = &metrics.per_class[2].metrics;
        assert_eq!((c2.sensitivity.value, c2.ppv.value, c2.auc.value), (None, None, None));
        assert_eq!(c2.specificity.value, Some(1.0));
        assert!((value(&metrics.macro_average.sensitivity) - (1.0 + 0.5) / 2.0).abs() < 1e-12);
        let json = serde_json::to_value(&metrics).unwrap();
        assert!(json["per_class"][2]["auc"]["value"].is_null());
    }

    /// Sensitivity `tp / positives` of a class with 400 images of 1000, 320 found: the
    /// bootstrap interval should match the normal approximation of a proportion,
    /// 0.8 ± 1.96 sqrt(0.8 * 0.2 / 400) = [0.7608, 0.8392], within resampling noise.
    #[test]
    fn the_bootstrap_interval_matches_the_normal_approximation() {
        let mut rows = Vec::new();
        for i in 0..1000 {
            let label = usize::from(i < 400);
            let found = i < 320;
            let p1 = if found || (label == 0 && i % 10 == 0) { 0.8 } else { 0.2 };
            rows.push((vec![1.0 - p1, p1], label));
        }
        let bootstrap = Bootstrap { resamples: 2000, seed: 7 };
        let metrics = ClinicalMetrics::new(&classes(2), &predictions(&rows), bootstrap);
        let sensitivity = metrics.per_class[1].metrics.sensitivity;
        assert!((value(&sensitivity) - 0.8).abs() < 1e-12);
        let ci = sensitivity.ci.unwrap();
        let half_width = 1.96 * (0.8f64 * 0.2 / 400.0).sqrt();
        assert!((ci.lower - (0.8 - half_width)).abs() < 0.01, "{ci:?}");
        assert!((ci.upper - (0.8 + half_width)).abs() < 0.01, "{ci:?}");
        let again = ClinicalMetrics::new(&classes(2), &predictions(&rows), bootstrap);
        assert_eq!(again, metrics, "seeded: the same intervals again");
        let other = ClinicalMetrics::new(&classes(2), &predictions(&rows), Bootstrap { seed: 8, ..bootstrap });
        assert_ne!(other.per_class[1].metrics.sensitivity.ci, sensitivity.ci);
        for estimate in metrics.per_class.iter().flat_map(|c| c.metrics.all()) {
            let (v, ci) = (value(estimate), estimate.ci.unwrap());
            assert!(ci.lower <= v && v <= ci.upper, "{estimate:?}");
        }
    }

    #[test]
    fn estimates_read_as_value_and_interval() {
        let both = Estimate { value: Some(0.98123), ci: Some(Interval { lower: 0.975, upper: 0.9874 }) };
        assert_eq!(both.to_string(), "0.981 [0.975, 0.987]");
        assert_eq!(Estimate { ci: None, ..both }.to_string(), "0.981");
        assert_eq!(Estimate { value: None, ci: None }.to_string(), "-");
        assert_eq!(Estimate { value: None, ci: None }.interval_text(), "");
    }

    #[test]
    fn a_perfect_classifier_has_degenerate_intervals_at_one() {
        let rows: Vec<_> =
            (0..40).map(|i| if i % 2 == 0 { (vec![0.9, 0.1], 0) } else { (vec![0.1, 0.9], 1) }).collect();
        let metrics = ClinicalMetrics::new(&classes(2), &predictions(&rows), Bootstrap { resamples: 200, seed: 1 });
        for estimate in metrics.macro_average.all() {
            assert_eq!(*estimate, Estimate { value: Some(1.0), ci: Some(Interval { lower: 1.0, upper: 1.0 }) });
        }
        assert_eq!(metrics.roc[0].points, [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]);
    }
}
