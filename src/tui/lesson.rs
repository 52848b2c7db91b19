//! The lesson's words beside each cell: a short note per step, in our own words, written for
//! a radiologist new to programming (data/lessons/, compiled in).

use super::panes::PaneId;

/// The note on step `id`: what it does and why, what to look at, what to try next. Its
/// paragraphs come as single lines, for the screen to wrap at its own width.
pub fn note(id: PaneId) -> String {
    let paragraphs: Vec<String> =
        written(id).split("\n\n").map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    paragraphs.join("\n\n")
}

/// The note as written in its file (hard-wrapped).
fn written(id: PaneId) -> &'static str {
    match id {
        PaneId::Setup => include_str!("../../data/lessons/1-setup.txt"),
        PaneId::Fetch => include_str!("../../data/lessons/2-fetch.txt"),
        PaneId::Classes => include_str!("../../data/lessons/3-classes.txt"),
        PaneId::Split => include_str!("../../data/lessons/4-split.txt"),
        PaneId::Preview => include_str!("../../data/lessons/5-preview.txt"),
        PaneId::Learner => include_str!("../../data/lessons/6-learner.txt"),
        PaneId::Train => include_str!("../../data/lessons/7-train.txt"),
        PaneId::Interpret => include_str!("../../data/lessons/8-interpret.txt"),
        PaneId::LrFind => include_str!("../../data/lessons/9-lr-find.txt"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_note_is_short_prose() {
        for id in PaneId::ALL {
            let note = written(id);
            let lines = note.lines().count();
            assert!((4..=15).contains(&lines), "the note on {} has {lines} lines", id.title());
            assert!(note.split_whitespace().count() > 60, "the note on {} is too short", id.title());
            let paragraphs = super::note(id);
            assert_eq!(paragraphs.split_whitespace().collect::<Vec<_>>(), note.split_whitespace().collect::<Vec<_>>());
            assert_eq!(paragraphs.lines().filter(|line| line.is_empty()).count(), note.matches("\n\n").count());
        }
    }
}
