//! Counts of a dataset's properties (formats, sizes, modalities, ...) in words, for the
//! front ends' reports.

use std::collections::BTreeMap;

/// `jpeg` when there is one key; else the most common first, `64x64 (8), 32x32 (2), +3 more`.
pub fn tally(counts: &BTreeMap<String, usize>, shown: usize) -> String {
    if let (Some(only), 1) = (counts.keys().next(), counts.len()) {
        return only.clone();
    }
    let mut by_count: Vec<(&String, &usize)> = counts.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = by_count.iter().take(shown).map(|(key, n)| format!("{key} ({n})")).collect();
    if by_count.len() > shown {
        parts.push(format!("+{} more", by_count.len() - shown));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_names_a_single_value_and_ranks_several() {
        let counts = |pairs: &[(&str, usize)]| pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        assert_eq!(tally(&counts(&[("64x64", 9)]), 3), "64x64");
        let sizes = counts(&[("10x10", 1), ("64x64", 9), ("32x32", 4), ("8x8", 1)]);
        assert_eq!(tally(&sizes, 2), "64x64 (9), 32x32 (4), +2 more");
        assert_eq!(tally(&sizes, usize::MAX), "64x64 (9), 32x32 (4), 10x10 (1), 8x8 (1)");
    }
}
