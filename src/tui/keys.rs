//! Every key the app answers, declared once. The handlers look a key up in these lists and act
//! on its [`Command`]; the help overlay and the footer are built from the same lists, as
//! gitui's `commands()` feed both its help popup and its command bar.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// 1-9: show a step (the digit says which).
    GoTo,
    Run,
    Stop,
    Lesson,
    Help,
    Quit,
    QuitNow,
    // A pane's settings.
    NextField,
    PreviousField,
    Decrease,
    Increase,
    Edit,
    // Typing a value.
    Accept,
    CancelEdit,
    // The quit dialog.
    Yes,
    No,
    /// Continue the training in the background, and quit.
    Detach,
    // The panes' own.
    NewSample,
    ToggleFrozen,
    ToggleFractions,
    NextView,
    ToggleCam,
    UseSuggestedLr,
    /// Train's live training, or its runs view.
    ToggleRunsView,
    // The runs view's list.
    PreviousRun,
    NextRun,
    ToggleRunCompared,
}

/// One key (or a few keys doing the same) and how the help and the footer name it.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub command: Command,
    codes: &'static [KeyCode],
    /// With Ctrl held.
    control: bool,
    /// The key as help shows it: `Enter`, `↑ ↓  Tab`.
    pub label: &'static str,
    /// What it does, one line of the help overlay.
    pub help: &'static str,
    /// Its footer hint, if it has one, and how long it stays when the footer is too narrow
    /// (higher stays longer).
    pub footer: Option<(&'static str, u8)>,
}

impl Key {
    const fn new(command: Command, codes: &'static [KeyCode], label: &'static str, help: &'static str) -> Self {
        Self { command, codes, control: false, label, help, footer: None }
    }

    const fn footer(self, hint: &'static str, keep: u8) -> Self {
        Self { footer: Some((hint, keep)), ..self }
    }

    const fn control(self) -> Self {
        Self { control: true, ..self }
    }

    pub fn matches(&self, key: &KeyEvent) -> bool {
        self.control == key.modifiers.contains(KeyModifiers::CONTROL) && self.codes.contains(&key.code)
    }
}

use KeyCode::{BackTab, Char, Down, Enter, Esc, Left, Right, Tab, Up};

const DIGITS: &[KeyCode] =
    &[Char('1'), Char('2'), Char('3'), Char('4'), Char('5'), Char('6'), Char('7'), Char('8'), Char('9')];

/// The app's own keys, in every pane.
pub const APP: &[Key] = &[
    Key::new(Command::Run, &[Enter], "Enter", "run the step, or run it again").footer("Enter run", 8),
    Key::new(Command::GoTo, DIGITS, "1-9", "go to a step").footer("1-9 step", 3),
    Key::new(Command::Stop, &[Esc], "Esc", "stop the running step (training keeps its last checkpoint)"),
    Key::new(Command::Lesson, &[Char('l')], "l", "show or hide the lesson's note on this step").footer("l lesson", 4),
    Key::new(Command::Help, &[Char('?')], "?", "show or hide every key").footer("? keys", 9),
    Key::new(Command::Quit, &[Char('q')], "q", "quit (asks first while a step runs)").footer("q quit", 9),
    Key::new(Command::QuitNow, &[Char('c')], "Ctrl-C", "quit at once").control(),
];

/// A pane's settings, when it has any.
pub const FORM: &[Key] = &[
    Key::new(Command::NextField, &[Down, Tab], "↓  Tab", "the next setting").footer("↑↓←→ settings", 5),
    Key::new(Command::PreviousField, &[Up, BackTab], "↑  Shift-Tab", "the setting before"),
    Key::new(Command::Decrease, &[Left], "←", "change the setting's value"),
    Key::new(Command::Increase, &[Right], "→", "change the setting's value"),
    Key::new(Command::Edit, &[Char('e')], "e", "type a value (a URL, a path, a learning rate, ...)")
        .footer("e type", 2),
];

/// While a value is typed.
pub const EDITING: &[Key] = &[
    Key::new(Command::Accept, &[Enter], "Enter", "accept the typed value").footer("Enter accept", 9),
    Key::new(Command::CancelEdit, &[Esc], "Esc", "leave the value as it was").footer("Esc cancel", 9),
];

/// The question asked before quitting while a step runs.
pub const CONFIRM_QUIT: &[Key] = &[
    Key::new(Command::Yes, &[Char('y'), Char('Y')], "y", "stop and quit"),
    Key::new(Command::No, &[Char('n'), Char('N'), Char('q'), Esc], "n", "keep going"),
];

/// The question asked before quitting while the app trains.
pub const QUIT_TRAINING: &[Key] = &[
    Key::new(
        Command::Yes,
        &[Char('s'), Char('S')],
        "s",
        "stop after this batch and quit (the last epoch's checkpoint is kept)",
    ),
    Key::new(
        Command::Detach,
        &[Char('d'), Char('D')],
        "d",
        "keep training in the background (mednist logs -f follows it)",
    ),
    Key::new(Command::No, &[Char('n'), Char('N'), Char('q'), Esc], "Esc", "keep training here"),
];

pub const PREVIEW: &[Key] =
    &[Key::new(Command::NewSample, &[Char('n')], "n", "draw a new sample").footer("n new sample", 7)];
pub const LEARNER: &[Key] =
    &[Key::new(Command::ToggleFrozen, &[Char('u')], "u", "freeze or unfreeze the body").footer("u (un)freeze", 7)];
pub const INTERPRET: &[Key] = &[
    Key::new(Command::NextView, &[Char('m')], "m", "views: matrix, clinical, ROC, calibration, predict")
        .footer("m view", 7),
    Key::new(Command::ToggleFractions, &[Char('v')], "v", "counts or fractions in the matrix")
        .footer("v counts/fractions", 6),
    Key::new(Command::ToggleCam, &[Char('c')], "c", "plain images or their Grad-CAM heatmaps").footer("c Grad-CAM", 6),
];
pub const LR_FIND: &[Key] =
    &[Key::new(Command::UseSuggestedLr, &[Char('a')], "a", "use the suggested rate as Train's max_lr")
        .footer("a use suggestion", 7)];

const RUNS_VIEW: Key = Key::new(Command::ToggleRunsView, &[Char('r')], "r", "the live training, or the runs compared")
    .footer("r runs/live", 7);
/// Train's live view: its settings' keys besides.
pub const TRAIN: &[Key] = &[RUNS_VIEW];
/// Train's runs view, which has no settings: ↑ ↓ move over the runs instead.
pub const TRAIN_RUNS: &[Key] = &[
    RUNS_VIEW,
    Key::new(Command::PreviousRun, &[Up], "↑", "in the runs: pick a run").footer("↑↓ pick", 6),
    Key::new(Command::NextRun, &[Down], "↓", "in the runs: pick a run"),
    Key::new(Command::ToggleRunCompared, &[Char(' ')], "Space", "in the runs: compare the run, or not")
        .footer("Space compare", 7),
];

/// The first of `lists` that has `key`.
pub fn find(key: &KeyEvent, lists: &[&[Key]]) -> Option<Key> {
    lists.iter().flat_map(|list| list.iter()).find(|candidate| candidate.matches(key)).copied()
}

/// The footer's hints for `keys` in their order, leaving out the least kept ones (the
/// later of equals first) until they fit in `width` columns, joined by " · ".
pub fn footer(keys: &[Key], width: usize) -> String {
    let mut hints: Vec<(&str, u8)> = keys.iter().filter_map(|key| key.footer).collect();
    let joined = |hints: &[(&str, u8)]| hints.iter().map(|(hint, _)| *hint).collect::<Vec<_>>().join(" · ");
    while hints.len() > 1 && joined(&hints).chars().count() > width {
        let least = hints.iter().map(|(_, keep)| *keep).min().expect("hints");
        let last_least = hints.iter().rposition(|(_, keep)| *keep == least).expect("a least kept hint");
        hints.remove(last_least);
    }
    joined(&hints)
}

/// The help's rows for `keys`: a label and what it does; keys in a row that do the same (two
/// directions of one thing) share a row, their labels joined.
pub fn help_rows(keys: &[Key]) -> Vec<(String, &'static str)> {
    let mut rows: Vec<(String, &'static str)> = Vec::new();
    for key in keys {
        match rows.last_mut() {
            Some((label, help)) if *help == key.help => *label = format!("{label}  {}", key.label),
            _ => rows.push((key.label.to_string(), key.help)),
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_are_found_in_the_first_list_that_has_them() {
        assert_eq!(find(&press(Enter), &[EDITING, APP]).map(|k| k.command), Some(Command::Accept));
        assert_eq!(find(&press(Enter), &[FORM, APP]).map(|k| k.command), Some(Command::Run));
        assert_eq!(find(&press(Char('7')), &[APP]).map(|k| k.command), Some(Command::GoTo));
        assert_eq!(find(&press(BackTab), &[FORM]).map(|k| k.command), Some(Command::PreviousField));
        assert!(find(&press(Char('c')), &[APP]).is_none(), "c alone is not Ctrl-C");
        let ctrl_c = KeyEvent::new(Char('c'), KeyModifiers::CONTROL);
        assert_eq!(find(&ctrl_c, &[APP]).map(|k| k.command), Some(Command::QuitNow));
        assert!(find(&KeyEvent::new(Char('q'), KeyModifiers::CONTROL), &[APP]).is_none());
    }

    #[test]
    fn no_key_means_two_things_where_both_lists_apply() {
        let pairs = [
            [FORM, APP],
            [PREVIEW, APP],
            [LEARNER, APP],
            [TRAIN, APP],
            [TRAIN, FORM],
            [TRAIN_RUNS, APP],
            [INTERPRET, APP],
            [LR_FIND, APP],
        ];
        for lists in pairs {
            for (i, a) in lists[0].iter().enumerate() {
                for b in lists[0][i + 1..].iter().chain(lists[1]) {
                    let shared = a.codes.iter().any(|code| b.codes.contains(code)) && a.control == b.control;
                    assert!(!shared, "{} and {} share a key", a.label, b.label);
                }
            }
        }
    }

    #[test]
    fn keys_doing_the_same_share_a_help_row() {
        let rows = help_rows(TRAIN_RUNS);
        let labels: Vec<&str> = rows.iter().map(|(label, _)| label.as_str()).collect();
        assert_eq!(labels, ["r", "↑  ↓", "Space"]);
        assert_eq!(help_rows(FORM).iter().filter(|(label, _)| label == "←  →").count(), 1);
        assert_eq!(help_rows(APP).len(), APP.len(), "every app key does its own thing");
    }

    #[test]
    fn a_narrow_footer_drops_the_least_kept_hints_first() {
        let keys: Vec<Key> = PREVIEW.iter().chain(FORM).chain(APP).copied().collect();
        let wide = footer(&keys, 200);
        assert_eq!(wide, "n new sample · ↑↓←→ settings · e type · Enter run · 1-9 step · l lesson · ? keys · q quit");
        let narrow = footer(&keys, 60);
        assert!(narrow.chars().count() <= 60, "{narrow}");
        assert!(narrow.contains("q quit") && narrow.contains("? keys") && narrow.contains("Enter run"), "{narrow}");
        assert!(!narrow.contains("e type"), "{narrow}");
    }
}
