//! Errors in the app's words: a library [`Remedy`] becomes the pane setting that applies it.

use crate::remedy::{self, Remedy};

/// `error` with its context, then what to do in the app.
pub fn describe(error: &anyhow::Error) -> String {
    remedy::describe(error, word)
}

fn word(remedy: &Remedy) -> String {
    match remedy {
        Remedy::StartFresh => "start from a new learner (Learner 6, start from)".into(),
        Remedy::KeepArch(arch) => format!("keep training the {arch} (Learner 6, architecture {arch})"),
        Remedy::ImageSize(side) => format!("set image size {side} (Learner 6)"),
        Remedy::MinImageSize(side) => format!("train a learner of image size {side} or larger (Learner 6)"),
        Remedy::Window(window) => format!("set window {window} (Classes 3)"),
        Remedy::LargerValidPct => "hold out a larger valid % (Split 4)".into(),
        Remedy::NoGrouping => "keep nothing whole (Split 4)".into(),
        Remedy::SmallerBatch => "set a smaller batch size (Learner 6)".into(),
        Remedy::FetchFirst => "run the Fetch step (2) first".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::fixable;

    #[test]
    fn remedies_become_pane_settings_and_no_flag_is_named() {
        let error = fixable(
            "the checkpoint in runs/current was trained on 64px images, not 128px",
            [Remedy::ImageSize(64), Remedy::StartFresh],
        );
        let text = describe(&error);
        assert_eq!(
            text,
            "the checkpoint in runs/current was trained on 64px images, not 128px: set image size 64 (Learner 6) \
             or start from a new learner (Learner 6, start from)"
        );
        for remedy in [Remedy::LargerValidPct, Remedy::NoGrouping, Remedy::SmallerBatch, Remedy::FetchFirst] {
            assert!(!word(&remedy).contains("--"), "{remedy:?}");
        }
    }
}
