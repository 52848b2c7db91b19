//! fastai's one-cycle policy (`fit_one_cycle`): learning rate and first Adam beta per step.
//!
//! The learning rate rises on a cosine from `max/25` to `max` over the first 25% of the
//! steps, then anneals on a cosine down to `max/1e5`; beta1 moves the opposite way,
//! 0.95 → 0.85 → 0.95. Position is `step / total_steps`, as fastai's `pct_train`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    pub total_steps: usize,
    /// Peak learning rate of each layer group (body first, head last).
    pub max_lrs: Vec<f64>,
    pub pct_start: f64,
    pub div: f64,
    pub div_final: f64,
    /// beta1 at the start, at the peak, and at the end.
    pub moms: (f64, f64, f64),
}

/// Learning rates (one per layer group) and beta1 for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepHyper {
    pub lrs: Vec<f64>,
    pub beta1: f64,
}

impl OneCycle {
    /// fastai's defaults: pct_start 0.25, div 25, div_final 1e5, moms (0.95, 0.85, 0.95).
    pub fn new(total_steps: usize, max_lrs: Vec<f64>) -> Self {
        Self { total_steps, max_lrs, pct_start: 0.25, div: 25.0, div_final: 1e5, moms: (0.95, 0.85, 0.95) }
    }

    pub fn at(&self, step: usize) -> StepHyper {
        let pos = step as f64 / self.total_steps.max(1) as f64;
        let lrs =
            self.max_lrs.iter().map(|&max| self.combined(pos, max / self.div, max, max / self.div_final)).collect();
        let (start, middle, end) = self.moms;
        StepHyper { lrs, beta1: self.combined(pos, start, middle, end) }
    }

    fn combined(&self, pos: f64, start: f64, middle: f64, end: f64) -> f64 {
        if pos < self.pct_start {
            cosine(start, middle, pos / self.pct_start)
        } else {
            cosine(middle, end, (pos - self.pct_start) / (1.0 - self.pct_start))
        }
    }
}

/// fastai's `SchedCos`: from `start` at 0 to `end` at 1 along half a cosine.
fn cosine(start: f64, end: f64, pos: f64) -> f64 {
    start + (1.0 + (std::f64::consts::PI * (1.0 - pos)).cos()) * (end - start) / 2.0
}

/// `--max-lr`: one rate for every layer group, or fastai's `slice(lo, hi)` written
/// `LO..HI` (spread geometrically from body to head) or `..HI` (head `HI`, the rest `HI/10`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MaxLr {
    Uniform(f64),
    Slice { lo: Option<f64>, hi: f64 },
}

impl MaxLr {
    /// The peak rate of each of `groups` layer groups, as fastai's `set_hyper('lr', ...)`.
    pub fn per_group(self, groups: usize) -> Vec<f64> {
        match (self, groups) {
            (_, 0) => Vec::new(),
            (MaxLr::Uniform(lr), n) => vec![lr; n],
            (MaxLr::Slice { hi, .. }, 1) => vec![hi],
            (MaxLr::Slice { lo: None, hi }, n) => {
                let mut lrs = vec![hi / 10.0; n - 1];
                lrs.push(hi);
                lrs
            }
            (MaxLr::Slice { lo: Some(lo), hi }, n) => {
                let step = (hi / lo).powf(1.0 / (n - 1) as f64);
                (0..n).map(|i| lo * step.powi(i as i32)).collect()
            }
        }
    }
}

impl std::str::FromStr for MaxLr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let rate = |s: &str| -> Result<f64, String> {
            match s.trim().parse::<f64>() {
                Ok(lr) if lr > 0.0 && lr.is_finite() => Ok(lr),
                _ => Err(format!("'{s}' is not a positive learning rate (examples: 1e-3, 3e-6..3e-5, ..1e-3)")),
            }
        };
        match text.split_once("..") {
            None => Ok(MaxLr::Uniform(rate(text)?)),
            Some(("", hi)) => Ok(MaxLr::Slice { lo: None, hi: rate(hi)? }),
            Some((lo, hi)) => {
                let (lo, hi) = (rate(lo)?, rate(hi)?);
                if lo > hi {
                    return Err(format!("the range {text} runs downwards: write the body's (smaller) rate first"));
                }
                Ok(MaxLr::Slice { lo: Some(lo), hi })
            }
        }
    }
}

impl std::fmt::Display for MaxLr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxLr::Uniform(lr) => write!(f, "{lr:e}"),
            MaxLr::Slice { lo: None, hi } => write!(f, "..{hi:e}"),
            MaxLr::Slice { lo: Some(lo), hi } => write!(f, "{lo:e}..{hi:e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rates are at most 1; the smallest ones (1e-8) are found by subtraction, so compare absolutely.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15
    }

    #[test]
    fn start_peak_and_end_follow_fastai() {
        let cycle = OneCycle::new(1000, vec![1e-3]);
        let start = cycle.at(0);
        assert!(close(start.lrs[0], 1e-3 / 25.0), "{start:?}");
        assert!(close(start.beta1, 0.95));
        let peak = cycle.at(250);
        assert!(close(peak.lrs[0], 1e-3));
        assert!(close(peak.beta1, 0.85));
        let end = cycle.at(1000);
        assert!(close(end.lrs[0], 1e-3 / 1e5));
        assert!(close(end.beta1, 0.95));
    }

    #[test]
    fn midpoints_are_cosine_halfway() {
        let cycle = OneCycle::new(1000, vec![1e-3]);
        let warm = cycle.at(125);
        assert!(close(warm.lrs[0], (1e-3 / 25.0 + 1e-3) / 2.0));
        assert!(close(warm.beta1, 0.90));
        let anneal = cycle.at(625);
        assert!(close(anneal.lrs[0], (1e-3 + 1e-3 / 1e5) / 2.0));
        // Learning rate rises monotonically to the peak, then falls.
        let lrs: Vec<f64> = (0..=1000).map(|s| cycle.at(s).lrs[0]).collect();
        assert!(lrs[..=250].windows(2).all(|w| w[0] <= w[1]));
        assert!(lrs[250..].windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn groups_scale_together() {
        let cycle = OneCycle::new(100, vec![3e-6, 3e-5]);
        let hyper = cycle.at(40);
        assert!(close(hyper.lrs[1] / hyper.lrs[0], 10.0));
    }

    #[test]
    fn lr_ranges_spread_like_fastai() {
        let parse = |s: &str| s.parse::<MaxLr>().unwrap();
        assert_eq!(parse("1e-3").per_group(2), vec![1e-3, 1e-3]);
        assert_eq!(parse("..1e-3").per_group(2), vec![1e-4, 1e-3]);
        let three = parse("1e-6..1e-4").per_group(3);
        assert!(close(three[0], 1e-6) && close(three[1], 1e-5) && close(three[2], 1e-4), "{three:?}");
        assert_eq!(parse("3e-6..3e-5").per_group(1), vec![3e-5]);
        assert_eq!(parse("3e-6..3e-5").to_string().parse::<MaxLr>().unwrap(), parse("3e-6..3e-5"));
    }

    #[test]
    fn bad_rates_are_refused_with_the_value() {
        for bad in ["0", "-1e-3", "abc", "1e-3..1e-5", "nan"] {
            let error = bad.parse::<MaxLr>().unwrap_err();
            assert!(error.contains(bad.split("..").last().unwrap()) || error.contains(bad), "{bad}: {error}");
        }
    }
}
