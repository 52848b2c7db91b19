//! A reproducible train/valid split, recorded in the workspace for training to use.
//!
//! fastai's `RandomSplitter` convention: shuffle the items and hold out the first
//! `int(valid_pct * n)` of the permutation for validation (per class with `stratify`).
//! The shuffle is a Fisher-Yates over ChaCha8, whose output stream is fixed by its
//! specification, so a seed gives the same split on every machine and every version.
//!
//! Grouped by patient or study, whole groups are shuffled instead and taken for validation
//! while each brings the held-out count closer to `int(valid_pct * n)` (per class with
//! `stratify`), so that no patient has images on both sides.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::scan::{DatasetScan, Item};
use crate::remedy::{Remedy, fixable};
use crate::workspace::{self, Workspace};

/// What must not be split across train and valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// Each image on its own.
    #[default]
    None,
    /// A patient's images (DICOM Patient ID) stay together.
    Patient,
    /// A study's images (DICOM Study Instance UID) stay together.
    Study,
}

impl GroupBy {
    pub const ALL: [GroupBy; 3] = [GroupBy::None, GroupBy::Patient, GroupBy::Study];

    pub fn is_none(&self) -> bool {
        *self == GroupBy::None
    }

    /// The default for a dataset: patients when its images name them.
    pub fn default_for(scan: &DatasetScan) -> Self {
        if scan.has_patients() { GroupBy::Patient } else { GroupBy::None }
    }

    /// The group of `item`; an image whose file names none is a group of its own.
    fn group_of(self, item: &Item) -> Option<u32> {
        match self {
            GroupBy::None => None,
            GroupBy::Patient => item.patient_group,
            GroupBy::Study => item.study_group,
        }
    }

    /// "patients", "studies", "images": what the groups are, for reports.
    pub fn plural(self) -> &'static str {
        match self {
            GroupBy::None => "images",
            GroupBy::Patient => "patients",
            GroupBy::Study => "studies",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupBy::None => "none",
            GroupBy::Patient => "patient",
            GroupBy::Study => "study",
        })
    }
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(GroupBy::None),
            "patient" => Ok(GroupBy::Patient),
            "study" => Ok(GroupBy::Study),
            _ => Err(format!("group {text:?}: use patient, study or none")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitOptions {
    /// Fraction of the images held out for validation, in (0, 1).
    pub valid_pct: f64,
    pub seed: u64,
    /// Split each class separately, so each keeps the same proportion.
    pub stratify: bool,
    /// What stays on one side; `None`: [`GroupBy::default_for`] the dataset.
    pub group: Option<GroupBy>,
}

impl Default for SplitOptions {
    /// fastai's defaults, patients kept apart when the images name them.
    fn default() -> Self {
        Self { valid_pct: 0.2, seed: 42, stratify: false, group: None }
    }
}

/// The recorded split (`split.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub seed: u64,
    pub valid_pct: f64,
    pub stratify: bool,
    /// What was kept on one side (absent from splits that group nothing).
    #[serde(default, skip_serializing_if = "GroupBy::is_none")]
    pub group: GroupBy,
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

    /// How many groups (patients, studies; images when ungrouped) each side has.
    pub fn group_counts(&self) -> ClassCounts {
        let count = |items: &[Item]| {
            let mut groups = HashSet::new();
            items.iter().filter(|item| self.group.group_of(item).is_none_or(|group| groups.insert(group))).count()
        };
        ClassCounts { train: count(&self.train), valid: count(&self.valid) }
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
    let group = options.group.unwrap_or_else(|| GroupBy::default_for(scan));
    let in_valid = match group {
        GroupBy::None => hold_out_images(scan, options),
        group => hold_out_groups(scan, options, group),
    };
    let (valid, train): (Vec<_>, Vec<_>) = scan.items.iter().zip(&in_valid).partition(|(_, in_valid)| **in_valid);
    let split = Split {
        seed: options.seed,
        valid_pct: pct,
        stratify: options.stratify,
        group,
        classes: scan.class_names(),
        dataset_fingerprint: scan.fingerprint(),
        train: train.into_iter().map(|(item, _)| item.clone()).collect(),
        valid: valid.into_iter().map(|(item, _)| item.clone()).collect(),
    };

    if split.valid.is_empty() {
        let groups = match group {
            GroupBy::None => String::new(),
            group => format!(" in {} {}", split.group_counts().train, group.plural()),
        };
        let mut remedies = vec![Remedy::LargerValidPct];
        if !group.is_none() {
            remedies.push(Remedy::NoGrouping);
        }
        return Err(fixable(
            format!("valid-pct {pct} of {} images{groups} leaves the validation set empty", scan.items.len()),
            remedies,
        ));
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

/// fastai's RandomSplitter: which items go to validation, image by image.
fn hold_out_images(scan: &DatasetScan, options: &SplitOptions) -> Vec<bool> {
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
        let cut = (options.valid_pct * group.len() as f64) as usize;
        group[..cut].iter().for_each(|&i| in_valid[i] = true);
    }
    in_valid
}

/// Which items go to validation when whole groups must: the groups in shuffled order, each
/// taken when it brings the held-out counts closer to their targets (per class with
/// `stratify`, else over all images); then single groups are taken, given back or swapped
/// while that brings them closer still (a first large group must not block a better fit).
fn hold_out_groups(scan: &DatasetScan, options: &SplitOptions, group_by: GroupBy) -> Vec<bool> {
    let buckets = if options.stratify { scan.classes.len() } else { 1 };
    let bucket = |item: &Item| if options.stratify { item.class } else { 0 };
    // Each group's images per bucket, groups in order of first appearance; an image without a
    // group is one of its own.
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut group_of_number: BTreeMap<u32, usize> = BTreeMap::new();
    let mut sizes = vec![0usize; buckets];
    for (index, item) in scan.items.iter().enumerate() {
        sizes[bucket(item)] += 1;
        let group = match group_by.group_of(item) {
            Some(number) => *group_of_number.entry(number).or_insert(members.len()),
            None => members.len(),
        };
        if group == members.len() {
            members.push(Vec::new());
        }
        members[group].push(index);
    }
    let per_bucket: Vec<Vec<usize>> = members
        .iter()
        .map(|items| {
            let mut counts = vec![0; buckets];
            items.iter().for_each(|&item| counts[bucket(&scan.items[item])] += 1);
            counts
        })
        .collect();
    // Python's int(), as for images.
    let targets: Vec<f64> = sizes.iter().map(|&n| (options.valid_pct * n as f64).trunc()).collect();
    let distance =
        |held: &[usize]| -> f64 { held.iter().zip(&targets).map(|(&n, target)| (n as f64 - target).abs()).sum() };
    let moved = |held: &[usize], add: Option<usize>, remove: Option<usize>| -> Vec<usize> {
        let mut held = held.to_vec();
        for (b, count) in held.iter_mut().enumerate() {
            *count += add.map_or(0, |g| per_bucket[g][b]);
            *count -= remove.map_or(0, |g| per_bucket[g][b]);
        }
        held
    };

    let mut order: Vec<usize> = (0..members.len()).collect();
    shuffle(&mut order, &mut ChaCha8Rng::seed_from_u64(options.seed));
    let mut taken = vec![false; members.len()];
    let mut held = vec![0usize; buckets];
    for &group in &order {
        let with = moved(&held, Some(group), None);
        if distance(&with) < distance(&held) {
            (held, taken[group]) = (with, true);
        }
    }
    // Bounded: each change lowers the distance, which is a whole number of images.
    let mut improved = true;
    while improved && distance(&held) > 0.0 {
        improved = false;
        for &group in &order {
            let toggled = if taken[group] { moved(&held, None, Some(group)) } else { moved(&held, Some(group), None) };
            if distance(&toggled) < distance(&held) {
                (held, taken[group], improved) = (toggled, !taken[group], true);
                continue;
            }
            if !taken[group] {
                continue;
            }
            let swap = order
                .iter()
                .copied()
                .filter(|&other| !taken[other])
                .find(|&other| distance(&moved(&held, Some(other), Some(group))) < distance(&held));
            if let Some(other) = swap {
                held = moved(&held, Some(other), Some(group));
                (taken[group], taken[other], improved) = (false, true, true);
            }
        }
    }
    let mut in_valid = vec![false; scan.items.len()];
    for (items, _) in members.iter().zip(&taken).filter(|(_, taken)| **taken) {
        items.iter().for_each(|&item| in_valid[item] = true);
    }
    in_valid
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
