//! fastai's learning-rate finder (`learn.lr_find()`): train on a few batches while the
//! learning rate grows exponentially, record the smoothed loss, and suggest rates from the
//! curve. [`Learner::lr_find`](super::learner::Learner::lr_find) runs it and puts the model
//! and optimizer back as they were.

use serde::Serialize;

use super::metrics::SmoothedLoss;

/// The sweep: `iterations` batches from `start_lr` to `end_lr`, exponentially.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrFindOptions {
    pub start_lr: f64,
    pub end_lr: f64,
    pub iterations: usize,
    /// Stop once the smoothed loss exceeds four times the best seen (fastai's `stop_div`).
    pub stop_on_divergence: bool,
}

impl Default for LrFindOptions {
    fn default() -> Self {
        Self { start_lr: 1e-7, end_lr: 10.0, iterations: 100, stop_on_divergence: true }
    }
}

impl LrFindOptions {
    /// The learning rate of batch `iteration` (0-based): fastai's `SchedExp` at
    /// `iteration / iterations`.
    pub fn lr_at(&self, iteration: usize) -> f64 {
        let position = iteration as f64 / self.iterations.max(1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(position)
    }
}

/// Records the sweep and decides when it ends.
#[derive(Debug, Clone)]
pub struct LrRecorder {
    options: LrFindOptions,
    smooth: SmoothedLoss,
    best: f64,
    lrs: Vec<f64>,
    losses: Vec<f64>,
    diverged: bool,
}

impl LrRecorder {
    pub fn new(options: LrFindOptions) -> Self {
        Self {
            options,
            smooth: SmoothedLoss::new(),
            best: f64::INFINITY,
            lrs: Vec::new(),
            losses: Vec::new(),
            diverged: false,
        }
    }

    /// Records one batch's loss at `lr`; returns the smoothed loss and whether to go on.
    pub fn record(&mut self, lr: f64, loss: f64) -> (f64, bool) {
        let smoothed = self.smooth.push(loss);
        self.lrs.push(lr);
        self.losses.push(smoothed);
        if smoothed < self.best {
            self.best = smoothed;
        }
        self.diverged = self.options.stop_on_divergence && (smoothed.is_nan() || smoothed > 4.0 * self.best);
        (smoothed, !self.diverged && self.lrs.len() < self.options.iterations)
    }

    pub fn finish(self) -> LrFindResult {
        let suggestions = suggest(&self.lrs, &self.losses, self.options.iterations);
        LrFindResult { lrs: self.lrs, losses: self.losses, diverged: self.diverged, suggestions }
    }
}

/// What the finder saw, and the rates it suggests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LrFindResult {
    pub lrs: Vec<f64>,
    /// Smoothed training loss at each rate.
    pub losses: Vec<f64>,
    /// Whether the sweep stopped because the loss diverged.
    pub diverged: bool,
    /// `None` when the sweep was too short to suggest anything.
    pub suggestions: Option<Suggestions>,
}

impl LrFindResult {
    /// (log10 lr, smoothed loss) points: the curve as charts draw it.
    pub fn log_lr_curve(&self) -> Vec<(f64, f64)> {
        self.lrs.iter().zip(&self.losses).map(|(lr, loss)| (lr.log10(), *loss)).collect()
    }
}

/// fastai's suggestion functions, each with the loss where it points (for charts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Suggestions {
    /// `valley`: inside the longest stretch where the loss keeps falling (fastai's default).
    pub valley: Suggestion,
    /// `steep`: where the loss falls fastest against log(lr).
    pub steep: Suggestion,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Suggestion {
    pub lr: f64,
    pub loss: f64,
}

/// fastai skips the first tenth of the sweep and its last five batches, and anything from
/// the first NaN on, before suggesting.
fn suggest(lrs: &[f64], losses: &[f64], iterations: usize) -> Option<Suggestions> {
    let start = iterations / 10;
    let end = lrs.len().saturating_sub(5);
    if end < start + 2 {
        return None;
    }
    let finite = losses[start..end].iter().position(|loss| loss.is_nan()).map_or(end, |nan| start + nan);
    let (lrs, losses) = (&lrs[start..finite], &losses[start..finite]);
    if lrs.len() < 2 {
        return None;
    }
    let at = |index: usize| Suggestion { lr: lrs[index], loss: losses[index] };
    Some(Suggestions { valley: at(valley(losses)), steep: at(steep(lrs, losses)) })
}

/// fastai's `valley`: the longest decreasing run (subsequence) of the losses, and the point
/// a third and then a sixth of the way into it, as fastai indexes it.
fn valley(losses: &[f64]) -> usize {
    let n = losses.len();
    let mut lengths = vec![1usize; n];
    // fastai's start is one before the run's first point (-1 for a run from the first).
    let (mut max_start, mut max_end) = (0isize, 0usize);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lengths[i] < lengths[j] + 1 {
                lengths[i] = lengths[j] + 1;
            }
            if lengths[max_end] < lengths[i] {
                max_end = i;
                max_start = max_end as isize - lengths[max_end] as isize;
            }
        }
    }
    let sections = (max_end as isize - max_start) as f64 / 3.0;
    let index = max_start + sections as isize + (sections / 2.0) as isize;
    index.clamp(0, n as isize - 1) as usize
}

/// fastai's `steep`: where (loss[i+1] - loss[i]) / (log lr[i+1] - log lr[i]) is lowest.
fn steep(lrs: &[f64], losses: &[f64]) -> usize {
    let slope = |i: usize| (losses[i + 1] - losses[i]) / (lrs[i + 1].ln() - lrs[i].ln());
    (0..lrs.len() - 1).fold(0, |best, i| if slope(i) < slope(best) { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_grow_exponentially_from_start_to_end() {
        let options = LrFindOptions::default();
        assert!((options.lr_at(0) - 1e-7).abs() < 1e-20);
        assert!((options.lr_at(50) - 1e-7 * 1e4).abs() < 1e-12, "halfway is the geometric mean");
        assert!((options.lr_at(100) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn stops_when_the_loss_diverges_or_the_sweep_ends() {
        let mut recorder = LrRecorder::new(LrFindOptions { iterations: 10, ..LrFindOptions::default() });
        assert!(recorder.record(1e-7, 1.0).1);
        assert!(recorder.record(1e-6, 0.5).1);
        // The smoothed loss needs a big jump to pass four times the best (~0.75 so far).
        let (_, go_on) = recorder.record(1e-5, 100.0);
        assert!(!go_on);
        assert!(recorder.finish().diverged);

        let mut recorder = LrRecorder::new(LrFindOptions { iterations: 3, ..LrFindOptions::default() });
        let keep: Vec<bool> = (0..3).map(|i| recorder.record(1e-3, 1.0 - i as f64 * 0.1).1).collect();
        assert_eq!(keep, vec![true, true, false]);
        assert!(!recorder.finish().diverged);

        let mut recorder = LrRecorder::new(LrFindOptions::default());
        assert!(!recorder.record(1e-3, f64::NAN).1, "a NaN loss ends the sweep");
    }

    /// The same figures as fastai 2.7's `valley` and `steep` give on this curve.
    #[test]
    fn suggestions_follow_fastai() {
        let losses = [3.0, 2.9, 2.95, 2.7, 2.5, 2.6, 2.2, 1.5, 1.4, 1.45, 1.3, 2.0, 5.0];
        // Longest decreasing run: 3.0 2.9 2.7 2.5 2.2 1.5 1.4 1.3 (8 long), ending at index 10.
        // fastai: max_end 10, max_start = 10 - 8 = 2, sections 8/3, idx = 2 + 2 + 1 = 5.
        assert_eq!(valley(&losses), 5);
        let lrs: Vec<f64> = (0..losses.len()).map(|i| 10f64.powi(i as i32 - 7)).collect();
        // Equal log steps: the steepest fall is the biggest drop, 2.2 -> 1.5 at index 6.
        assert_eq!(steep(&lrs, &losses), 6);
    }

    #[test]
    fn suggestions_skip_the_head_the_tail_and_nans() {
        let lrs: Vec<f64> = (0..100).map(|i| LrFindOptions::default().lr_at(i)).collect();
        let mut losses: Vec<f64> = (0..100).map(|i| 3.0 - (i as f64 / 50.0).min(1.5)).collect();
        losses[60] = f64::NAN;
        let suggestions = suggest(&lrs, &losses, 100).unwrap();
        assert!(suggestions.valley.lr >= lrs[10] && suggestions.valley.lr < lrs[60]);
        assert!(suggestions.steep.lr >= lrs[10] && suggestions.steep.lr < lrs[60]);
        assert!(suggest(&lrs[..12], &losses[..12], 100).is_none(), "too short after skipping");
    }
}
