//! Colours of the app: `themes/*.toml`, built in (dark, light, high-contrast) or read from a
//! file, and a colourless variant for `NO_COLOR`.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The themes compiled into the binary; the first is the default.
pub const BUILT_IN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
];

/// Every colour a theme file sets, under `[colors]`. All keys are required, unknown keys are
/// errors (a typo would otherwise be ignored silently).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    pub background: ThemeColor,
    pub text: ThemeColor,
    pub dim: ThemeColor,
    pub accent: ThemeColor,
    pub border: ThemeColor,
    pub selection_fg: ThemeColor,
    pub selection_bg: ThemeColor,
    pub done: ThemeColor,
    pub running: ThemeColor,
    pub failed: ThemeColor,
    pub warning: ThemeColor,
    pub gauge: ThemeColor,
    pub bar: ThemeColor,
    pub train_loss: ThemeColor,
    pub valid_loss: ThemeColor,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    colors: Colors,
}

/// A colour as a theme file writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThemeColor(pub Color);

impl<'de> Deserialize<'de> for ThemeColor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Color::from_str(&text).map(ThemeColor).map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a colour: use a name (cyan, lightred, darkgray, reset), #rrggbb or 0-255"
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    colors: Option<Colors>,
}

impl Theme {
    /// `spec` is a built-in name or a path to a theme file; without one, `no_color` (the
    /// `NO_COLOR` convention) gives [`Theme::monochrome`], else the dark theme.
    pub fn load(spec: Option<&str>, no_color: bool) -> Result<Self> {
        let Some(spec) = spec else {
            return Ok(if no_color { Self::monochrome() } else { Self::built_in("dark").expect("dark is built in") });
        };
        if let Some(theme) = Self::built_in(spec) {
            return Ok(theme);
        }
        let path = Path::new(spec);
        if !path.is_file() {
            let names: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
            bail!("theme {spec:?} is neither a built-in theme ({}) nor a theme file", names.join(", "));
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read theme file {}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
    }

    pub fn built_in(name: &str) -> Option<Self> {
        let (name, text) = BUILT_IN.iter().find(|(built_in, _)| *built_in == name)?;
        Some(Self::parse(name, text).expect("built-in themes are valid (tested)"))
    }

    /// Reads a theme file's text; errors name the file and the offending key.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let file: ThemeFile = toml::from_str(text).with_context(|| format!("theme file {name} is not valid"))?;
        Ok(Self { name: name.to_string(), colors: Some(file.colors) })
    }

    /// No colours at all: emphasis by bold, dim and reverse video only.
    pub fn monochrome() -> Self {
        Self { name: "monochrome".into(), colors: None }
    }

    fn color(&self, pick: fn(&Colors) -> ThemeColor) -> Color {
        self.colors.as_ref().map_or(Color::Reset, |colors| pick(colors).0)
    }

    fn fg(&self, pick: fn(&Colors) -> ThemeColor) -> Style {
        Style::new().fg(self.color(pick))
    }

    /// The whole screen: text on the background.
    pub fn base(&self) -> Style {
        Style::new().fg(self.color(|c| c.text)).bg(self.color(|c| c.background))
    }

    pub fn dim(&self) -> Style {
        match self.colors {
            Some(_) => self.fg(|c| c.dim),
            None => Style::new().add_modifier(Modifier::DIM),
        }
    }

    pub fn accent(&self) -> Style {
        self.fg(|c| c.accent).add_modifier(Modifier::BOLD)
    }

    pub fn border(&self) -> Style {
        self.fg(|c| c.border)
    }

    /// The selected step or setting.
    pub fn selected(&self) -> Style {
        match self.colors {
            Some(_) => Style::new().fg(self.color(|c| c.selection_fg)).bg(self.color(|c| c.selection_bg)),
            None => Style::new().add_modifier(Modifier::REVERSED),
        }
    }

    pub fn done(&self) -> Style {
        self.fg(|c| c.done)
    }

    pub fn running(&self) -> Style {
        self.fg(|c| c.running).add_modifier(Modifier::BOLD)
    }

    pub fn failed(&self) -> Style {
        self.fg(|c| c.failed).add_modifier(Modifier::BOLD)
    }

    pub fn warning(&self) -> Style {
        self.fg(|c| c.warning)
    }

    pub fn gauge(&self) -> Style {
        self.fg(|c| c.gauge)
    }

    pub fn bar(&self) -> Style {
        self.fg(|c| c.bar)
    }

    pub fn train_loss(&self) -> Style {
        self.fg(|c| c.train_loss)
    }

    pub fn valid_loss(&self) -> Style {
        self.fg(|c| c.valid_loss)
    }

    /// Line `index` of a chart with one line per class: the theme's two curve colours, then
    /// named colours (the terminal's palette); plain in monochrome.
    pub fn series(&self, index: usize) -> Style {
        const MORE: [Color; 6] =
            [Color::LightYellow, Color::LightGreen, Color::LightRed, Color::LightBlue, Color::Magenta, Color::Cyan];
        match (&self.colors, index) {
            (None, _) => Style::new(),
            (Some(_), 0) => self.train_loss(),
            (Some(_), 1) => self.valid_loss(),
            (Some(_), _) => Style::new().fg(MORE[(index - 2) % MORE.len()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_themes_parse() {
        for (name, _) in BUILT_IN {
            let theme = Theme::built_in(name).unwrap();
            assert_eq!(theme.name, name);
            assert!(theme.colors.is_some());
        }
    }
}
