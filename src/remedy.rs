//! What the user can do about a failed step, in no front end's words. The library attaches
//! [`Remedy`]s to an error ([`fixable`]); the CLI words them as flags, the app as its panes'
//! settings, so that neither front end shows the other's vocabulary.

use crate::data::window::Window;
use crate::model::Arch;

/// One way out of a failed step; an error's remedies are alternatives.
#[derive(Debug, Clone, PartialEq)]
pub enum Remedy {
    /// Replace the saved learner with a new one.
    StartFresh,
    /// Keep training the saved learner's architecture.
    KeepArch(Arch),
    /// Use this image size (the saved learner's).
    ImageSize(usize),
    /// Train at this image size or larger.
    MinImageSize(usize),
    /// Read the images in this window (the saved learner's).
    Window(Window),
    /// Hold out a larger share of the images for validation.
    LargerValidPct,
    /// Split images, keeping no patients or studies whole.
    NoGrouping,
    /// Use a smaller batch size (or more training images).
    SmallerBatch,
    /// Get a dataset into the workspace first.
    FetchFirst,
}

/// An error that one of its remedies fixes; it displays as the problem alone.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct Fixable {
    pub problem: String,
    pub remedies: Vec<Remedy>,
}

/// An error saying `problem`, fixed by any of `remedies`.
pub fn fixable(problem: impl Into<String>, remedies: impl IntoIterator<Item = Remedy>) -> anyhow::Error {
    Fixable { problem: problem.into(), remedies: remedies.into_iter().collect() }.into()
}

/// The remedies of the first fixable error in `error`'s chain (none when there is none).
pub fn remedies(error: &anyhow::Error) -> &[Remedy] {
    error.chain().find_map(|cause| cause.downcast_ref::<Fixable>()).map_or(&[], |fixable| &fixable.remedies)
}

/// `error` (with its context) followed by its remedies in a front end's words:
/// `problem: use --size 64 or start a new learner (--fresh)`.
pub fn describe(error: &anyhow::Error, word: impl Fn(&Remedy) -> String) -> String {
    let remedies = remedies(error);
    if remedies.is_empty() {
        return format!("{error:#}");
    }
    let words: Vec<String> = remedies.iter().map(word).collect();
    format!("{error:#}: {}", words.join(" or "))
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn remedies_are_found_under_context_and_worded_after_the_whole_message() {
        let error =
            Err::<(), _>(fixable("trained on 64px images, not 128px", [Remedy::ImageSize(64), Remedy::StartFresh]))
                .context("cannot open the learner")
                .unwrap_err();
        assert_eq!(remedies(&error), [Remedy::ImageSize(64), Remedy::StartFresh]);
        let worded = describe(&error, |remedy| match remedy {
            Remedy::ImageSize(side) => format!("use size {side}"),
            other => format!("{other:?}"),
        });
        assert_eq!(worded, "cannot open the learner: trained on 64px images, not 128px: use size 64 or StartFresh");
    }

    #[test]
    fn an_error_without_remedies_is_its_message() {
        let error = anyhow::anyhow!("disk full");
        assert!(remedies(&error).is_empty());
        assert_eq!(describe(&error, |_| unreachable!()), "disk full");
    }
}
