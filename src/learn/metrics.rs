//! The numbers in the lesson's training table.

/// fastai's `AvgSmoothLoss`: an exponential moving average of batch losses with bias
/// correction (beta 0.98). It runs across epochs and restarts with each `fit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothedLoss {
    beta: f64,
    average: f64,
    count: i32,
}

impl SmoothedLoss {
    pub fn new() -> Self {
        Self { beta: 0.98, average: 0.0, count: 0 }
    }

    /// Adds a batch loss and returns the smoothed value.
    pub fn push(&mut self, loss: f64) -> f64 {
        self.count += 1;
        self.average = self.beta * self.average + (1.0 - self.beta) * loss;
        self.value()
    }

    /// NaN before the first batch.
    pub fn value(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.average / (1.0 - self.beta.powi(self.count)) }
    }
}

impl Default for SmoothedLoss {
    fn default() -> Self {
        Self::new()
    }
}

/// Sums over a validation pass: mean loss, error rate and accuracy.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    loss_sum: f64,
    errors: usize,
    count: usize,
}

impl Tally {
    /// Adds a batch: `loss_sum` is the sum (not mean) of its per-item losses.
    pub fn add(&mut self, loss_sum: f64, errors: usize, count: usize) {
        self.loss_sum += loss_sum;
        self.errors += errors;
        self.count += count;
    }

    /// The loss sum, errors and count, for adding tallies up across processes.
    pub fn sums(&self) -> [f64; 3] {
        [self.loss_sum, self.errors as f64, self.count as f64]
    }

    /// The tally whose [`Tally::sums`] these are.
    pub fn from_sums([loss_sum, errors, count]: [f64; 3]) -> Self {
        Self { loss_sum, errors: errors.round() as usize, count: count.round() as usize }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    pub fn error_rate(&self) -> f64 {
        self.errors as f64 / self.count.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        1.0 - self.error_rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothed_loss_is_bias_corrected() {
        let mut smooth = SmoothedLoss::new();
        assert!(smooth.value().is_nan());
        // A constant loss smooths to itself from the first batch on.
        for _ in 0..5 {
            assert!((smooth.push(2.0) - 2.0).abs() < 1e-12);
        }
        let mut smooth = SmoothedLoss::new();
        smooth.push(1.0);
        let second = smooth.push(3.0);
        let expected = (0.98 * 0.02 * 1.0 + 0.02 * 3.0) / (1.0 - 0.98f64.powi(2));
        assert!((second - expected).abs() < 1e-12);
    }

    #[test]
    fn tally_averages_over_items() {
        let mut tally = Tally::default();
        tally.add(3.0, 1, 4);
        tally.add(1.0, 0, 4);
        assert_eq!(tally.mean_loss(), 0.5);
        assert_eq!(tally.error_rate(), 0.125);
        assert_eq!(tally.accuracy(), 0.875);
        assert_eq!(Tally::from_sums(tally.sums()), tally);
    }
}
