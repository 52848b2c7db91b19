//! The window setting (how gray values of more than 8 bits become pixels), offered by the
//! Classes and Preview panes: ←/→ step through the presets, `e` types any window.

use crate::data::window::Window;
use crate::tui::form::Field;

/// A form field holding `window`.
pub fn field(window: &Window) -> Field {
    Field::text("window", &window.to_string(), check, Some(step))
}

/// The field only ever holds text that parses.
pub fn parse(text: &str) -> Window {
    text.parse().unwrap_or_default()
}

fn check(text: &str) -> Result<(), String> {
    text.parse::<Window>().map(drop).map_err(|error| error.to_string())
}

/// The next (or previous) of the offered windows; a typed window steps to the first.
fn step(text: &str, forward: bool) -> Option<String> {
    let choices = Window::choices();
    let current = choices.iter().position(|choice| choice.to_string() == text);
    let next = match (current, forward) {
        (None, _) => 0,
        (Some(i), true) => (i + 1) % choices.len(),
        (Some(i), false) => (i + choices.len() - 1) % choices.len(),
    };
    Some(choices[next].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepping_goes_through_every_offered_window_and_back() {
        let first = Window::default().to_string();
        let mut text = first.clone();
        let mut seen = vec![];
        loop {
            text = step(&text, true).unwrap();
            seen.push(text.clone());
            if text == first {
                break;
            }
        }
        assert_eq!(seen.len(), Window::choices().len());
        assert!(seen.contains(&"lungs".to_string()) && seen.contains(&"minmax".to_string()), "{seen:?}");
        assert_eq!(step(&first, false).unwrap(), "spine_bone");
        assert_eq!(step("40,400", true).unwrap(), first);
    }

    #[test]
    fn typed_windows_are_checked_with_the_library_message() {
        assert!(check("40,400").is_ok());
        let error = check("bone-ish").unwrap_err();
        assert!(error.contains("bone-ish") && error.contains("lungs"), "{error}");
        assert_eq!(parse("lungs"), "lungs".parse().unwrap());
    }
}
