//! Keeping patients' names and IDs out of every path shown. Hospital exports often name
//! folders and files after the patient (`SMITH_JOHN/`, `12345678/IM0001.dcm`); where a DICOM
//! header gives the Patient ID or Patient's Name, the parts of the path that contain them are
//! shown as `[patient]`: `CXR/[patient]_[patient]/IM0001.dcm`. The class folder (the label the
//! user chose) is never masked.

use std::collections::HashMap;
use std::fmt;

pub const MASK: &str = "[patient]";

/// Fewer letters or digits than this match too much by chance (an ID `7`, a name `LI`).
const SHORTEST: usize = 3;

/// A patient's ID and the parts of their name, in lower case, letters and digits only. Kept in
/// memory while a file is looked at, never written; `Debug` does not show it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PatientText {
    needles: Vec<Vec<char>>,
}

impl fmt::Debug for PatientText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PatientText(..)")
    }
}

impl PatientText {
    /// From a Patient ID and a Patient's Name (`FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX`).
    pub fn new(id: Option<&str>, name: Option<&str>) -> Self {
        let letters = |text: &str| normalise(text).into_iter().map(|(_, c)| c).collect::<Vec<char>>();
        let name_parts = name.into_iter().flat_map(|name| name.split(|c: char| !c.is_alphanumeric()));
        let parts = name_parts.map(letters);
        let id = id.map(letters);
        let mut needles: Vec<Vec<char>> = id.into_iter().chain(parts).filter(|n| n.len() >= SHORTEST).collect();
        needles.sort();
        needles.dedup();
        Self { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `part` (one folder or file name) with what names this patient replaced by [`MASK`];
    /// `None` when nothing does.
    fn mask(&self, part: &str) -> Option<String> {
        let letters = normalise(part);
        let text: Vec<char> = letters.iter().map(|(_, c)| *c).collect();
        let end_of = |index: usize| {
            let (at, _) = letters[index];
            at + part[at..].chars().next().map_or(0, char::len_utf8)
        };
        // Byte ranges of `part` to mask, one per match, from its first letter to its last.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for needle in &self.needles {
            for start in (0..text.len()).filter(|start| text[*start..].starts_with(needle)) {
                spans.push((letters[start].0, end_of(start + needle.len() - 1)));
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort();
        // Overlapping or touching matches make one mask.
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut shown = String::new();
        let mut at = 0;
        for (start, end) in merged {
            shown.push_str(&part[at..start]);
            shown.push_str(MASK);
            at = end;
        }
        shown.push_str(&part[at..]);
        Some(shown)
    }
}

/// The letters and digits of `text` in lower case, each with its byte offset in `text`.
fn normalise(text: &str) -> Vec<(usize, char)> {
    text.char_indices()
        .filter(|(_, c)| c.is_alphanumeric())
        .map(|(at, c)| (at, c.to_lowercase().next().unwrap_or(c)))
        .collect()
}

/// `/`-separated `path` (relative to the dataset folder) as it may be shown for a file whose
/// header names `patient`.
pub fn shown_path(path: &str, patient: &PatientText) -> String {
    PathMask::default().show_read(path, patient)
}

/// Masks the paths of a dataset's files: those whose header names a patient by that
/// patient, and files that could not be read (no header to go by) by the folder and file
/// names masked in any readable one.
#[derive(Default)]
pub struct PathMask {
    /// Path parts masked so far, and how they are shown.
    masked: HashMap<String, String>,
}

impl PathMask {
    /// `path` of a readable file whose header names `patient`, masked; the parts masked are
    /// remembered for [`PathMask::show_unread`].
    pub fn show_read(&mut self, path: &str, patient: &PatientText) -> String {
        self.show(path, |masked, part| {
            let shown = patient.mask(part)?;
            masked.insert(part.to_string(), shown.clone());
            Some(shown)
        })
    }

    /// `path` of a file with no header to go by, its parts masked as in the readable files.
    pub fn show_unread(&mut self, path: &str) -> String {
        self.show(path, |masked, part| masked.get(part).cloned())
    }

    fn show(
        &mut self,
        path: &str,
        mut mask: impl FnMut(&mut HashMap<String, String>, &str) -> Option<String>,
    ) -> String {
        let mut parts = path.split('/');
        let class = parts.next().unwrap_or_default().to_string();
        let rest = parts.map(|part| mask(&mut self.masked, part).unwrap_or_else(|| part.to_string()));
        std::iter::once(class).chain(rest).collect::<Vec<_>>().join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smith() -> PatientText {
        PatientText::new(Some("12345678"), Some("SMITH^JOHN^^^"))
    }

    #[test]
    fn folders_and_files_that_name_the_patient_are_masked_and_the_class_is_kept() {
        assert_eq!(shown_path("CXR/Smith_John/IM0001.dcm", &smith()), "CXR/[patient]_[patient]/IM0001.dcm");
        assert_eq!(shown_path("CXR/2024/12345678.dcm", &smith()), "CXR/2024/[patient].dcm");
        assert_eq!(shown_path("CXR/ID_12-345-678_ct/a.dcm", &smith()), "CXR/ID_[patient]_ct/a.dcm");
        assert_eq!(shown_path("CXR/JOHNSMITH/a.dcm", &smith()), "CXR/[patient]/a.dcm");
        assert_eq!(shown_path("Smith/a.dcm", &smith()), "Smith/a.dcm");
        assert_eq!(shown_path("CXR/other/a.dcm", &smith()), "CXR/other/a.dcm");
    }

    #[test]
    fn short_ids_and_name_parts_mask_nothing() {
        let short = PatientText::new(Some("7"), Some("LI^WU"));
        assert!(short.is_empty());
        assert_eq!(shown_path("CT/7/li_wu.dcm", &short), "CT/7/li_wu.dcm");
    }

    #[test]
    fn unreadable_files_are_masked_by_what_their_readable_neighbours_showed() {
        let mut mask = PathMask::default();
        assert_eq!(mask.show_read("CXR/Smith_John/IM1.dcm", &smith()), "CXR/[patient]_[patient]/IM1.dcm");
        assert_eq!(mask.show_unread("CXR/Smith_John/IM2.dcm"), "CXR/[patient]_[patient]/IM2.dcm");
        assert_eq!(mask.show_unread("CXR/Doe/IM2.dcm"), "CXR/Doe/IM2.dcm");
    }

    #[test]
    fn the_text_is_never_printed() {
        assert_eq!(format!("{:?}", smith()), "PatientText(..)");
    }
}
