//! A reproducible train/valid split, recorded in the workspace for training to use.
//!
//! fastai's `RandomSplitter` convention: shuffle the items and hold out the first
//! `int(valid_pct * n)` of the permutation for validation (per class with `stratify`).
//! The shuffle is a Fisher-Yates over ChaCha8, whose output stream is fixed by its
//! specification, so a seed gives the same split on every machine and every version.

use anyhow::Result;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::scan::{DatasetScan, Item};
use crate::workspace::{self, Workspace};

#[derive(Debug, Clone, PartialEq)]
pub struct SplitOptions {
    /// Fraction of the images held out for validation, in (0, 1).
    pub valid_pct: f64,
    pub seed: u64,
    /// Split each class separately, so each keeps the same proportion.
    pub stratify: bool,
}

impl Default for SplitOptions {
    /// fastai's defaults.
    fn default() -> Self {
        Self { valid_pct: 0.2, seed: 42, stratify: false }
    }
}

/// The recorded split (`split.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub seed: u64,
    pub valid_pct: f64,
    pub stratify: bool,
    pub classes: Vec<String>,
    /// [`DatasetScan::fingerprint`] of the dataset the split was made from.
    pub dataset_fingerprint: String,
    /// In dataset order (by class, then path).
    pub train: Vec<Item>,
    pub valid: Vec<Item>,
}

/// How many images of one class went where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ClassCounts {
    pub train: usize,
    pub valid: usize,
}

impl Split {
    /// Train/valid counts, indexed by class.
    pub fn class_counts(&self) -> Vec<ClassCounts> {
        let mut counts = vec![ClassCounts::default(); self.classes.len()];
        self.train.iter().for_each(|item| counts[item.class].train += 1);
        self.valid.iter().for_each(|item| counts[item.class].valid += 1);
        counts
    }

    /// Records the split in the workspace (atomically).
    pub fn save(&self, workspace: &Workspace) -> Result<()> {
        workspace::write_json_atomic(&workspace.split_file(), self)
    }
}

/// Splits `scan`'s items. Fails on a `valid_pct` outside (0, 1) and, naming the class, when a
/// class would get no training image (or, stratified, no validation image).
pub fn split(scan: &DatasetScan, options: &SplitOptions) -> Result<Split> {
    let pct = options.valid_pct;
    if !(pct > 0.0 && pct < 1.0) {
        anyhow::bail!("valid-pct {pct} is outside (0, 1): give the fraction to hold out, such as 0.2");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut in_valid = vec![false; scan.items.len()];
    let groups: Vec<Vec<usize>> = if options.stratify {
        (0..scan.classes.len())
            .map(|class| (0..scan.items.len()).filter(|&i| scan.items[i].class == class).collect())
            .collect()
    } else {
        vec![(0..scan.items.len()).collect()]
    };
    for mut group in groups {
        shuffle(&mut group, &mut rng);
        // Python's int(): truncation, as fastai's RandomSplitter does.
        let cut = (pct * group.len() as f64) as usize;
        group[..cut].iter().for_each(|&i| in_valid[i] = true);
    }
    let (valid, train): (Vec<_>, Vec<_>) = scan.items.iter().zip(&in_valid).partition(|(_, in_valid)| **in_valid);
    let split = Split {
        seed: options.seed,
        valid_pct: pct,
        stratify: options.stratify,
        classes: scan.class_names(),
        dataset_fingerprint: scan.fingerprint(),
        train: train.into_iter().map(|(item, _)| item.clone()).collect(),
        valid: valid.into_iter().map(|(item, _)| item.clone()).collect(),
    };

    if split.valid.is_empty() {
        anyhow::bail!(
            "valid-pct {pct} of {} images leaves the validation set empty: use a larger --valid-pct",
            scan.items.len()
        );
    }
    for (name, counts) in split.classes.iter().zip(split.class_counts()) {
        let images = counts.train + counts.valid;
        if counts.train == 0 {
            anyhow::bail!(
                "class {name} has {images} image(s) and would get none for training with valid-pct {pct} and seed {}: \
                 add images, use --stratify or a smaller --valid-pct",
                options.seed
            );
        }
        if options.stratify && counts.valid == 0 {
            anyhow::bail!(
                "class {name} has {images} image(s), too few to hold out {pct} of them for validation: \
                 add images or use a larger --valid-pct"
            );
        }
    }
    Ok(split)
}

/// The split recorded in the workspace, checked against the dataset as it is now.
pub fn load_for(workspace: &Workspace, scan: &DatasetScan) -> Result<Split> {
    let file = workspace.split_file();
    if !file.exists() {
        anyhow::bail!("no split recorded in {}: run `mednist split` first", workspace.root().display());
    }
    let split: Split = workspace::read_json(&file)?;
    if split.dataset_fingerprint != scan.fingerprint() {
        anyhow::bail!(
            "dataset changed since the split ({} images in {} classes then, {} in {} now); run `mednist split` again",
            split.train.len() + split.valid.len(),
            split.classes.len(),
            scan.items.len(),
            scan.classes.len()
        );
    }
    Ok(split)
}

/// Fisher-Yates, drawing from the raw ChaCha8 stream so the permutation cannot change with
/// `rand`'s sampling algorithms.
fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i as u64 + 1) as usize);
    }
}

/// A uniform draw from `0..bound` (bound > 0): rejection keeps `% bound` unbiased.
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let accepted = u64::MAX - u64::MAX % bound;
    loop {
        let draw = rng.next_u64();
        if draw < accepted {
            return draw % bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_uniform_permutation() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Where element 0 lands, over many shuffles of 4: each slot about a quarter of the time.
        let mut landed = [0u32; 4];
        for _ in 0..8000 {
            let mut items = [0, 1, 2, 3];
            shuffle(&mut items, &mut rng);
            let mut sorted = items;
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
            landed[items.iter().position(|&x| x == 0).unwrap()] += 1;
        }
        assert!(landed.iter().all(|&n| (1800..2200).contains(&n)), "{landed:?}");
    }

    #[test]
    fn shuffle_for_a_seed_never_changes() {
        // Recorded once. If this fails, splits recorded by earlier versions can no longer be
        // reproduced from their seed: restore the old permutation instead of updating this.
        let mut items: Vec<u32> = (0..10).collect();
        shuffle(&mut items, &mut ChaCha8Rng::seed_from_u64(42));
        assert_eq!(items, [1, 5, 9, 6, 3, 2, 0, 8, 4, 7]);
    }
}
