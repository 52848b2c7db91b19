//! Errors in the command line's words: a library [`Remedy`] becomes the flag that applies it.

use crate::remedy::{self, Remedy};

/// `error` with its context, then what to do: `... not 128px: use --size 64 or start a new learner (--fresh)`.
pub fn describe(error: &anyhow::Error) -> String {
    remedy::describe(error, word)
}

fn word(remedy: &Remedy) -> String {
    match remedy {
        Remedy::StartFresh => "start a new learner (--fresh)".into(),
        Remedy::KeepArch(arch) => format!("keep training the {arch} (--arch {arch})"),
        Remedy::ImageSize(side) => format!("use --size {side}"),
        Remedy::MinImageSize(side) => format!("train at --size {side} or larger"),
        Remedy::Window(window) => format!("use --window {window}"),
        Remedy::LargerValidPct => "use a larger --valid-pct".into(),
        Remedy::NoGrouping => "use --group none".into(),
        Remedy::SmallerBatch => "use a smaller --bs or more images".into(),
        Remedy::FetchFirst => {
            "run `mednist fetch` first (`mednist fetch --source DIR` takes your own class folders)".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;
    use crate::remedy::fixable;

    #[test]
    fn remedies_become_flags() {
        let error = fixable(
            "the learner saved in runs/current is a resnet18, not a resnet34",
            [Remedy::StartFresh, Remedy::KeepArch(Arch::Resnet18)],
        );
        assert_eq!(
            describe(&error),
            "the learner saved in runs/current is a resnet18, not a resnet34: start a new learner (--fresh) \
             or keep training the resnet18 (--arch resnet18)"
        );
        let window = "lungs".parse().unwrap();
        assert_eq!(word(&Remedy::Window(window)), "use --window lungs");
    }
}
