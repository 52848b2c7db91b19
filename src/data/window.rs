//! Windowing: how gray values of more than 8 bits (DICOM's 12 or 16 bits of rescaled values,
//! 16-bit PNG) become the 8-bit pixels the learner sees. The window is a dataset setting
//! (`data::settings`), so that every step renders the same pixels.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A named window: fastai's `dicom_windows`, as (width, level).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub width: f64,
    pub level: f64,
}

/// fastai's `dicom_windows` presets.
pub const PRESETS: [Preset; 11] = [
    Preset { name: "brain", width: 80.0, level: 40.0 },
    Preset { name: "subdural", width: 254.0, level: 100.0 },
    Preset { name: "stroke", width: 8.0, level: 32.0 },
    Preset { name: "brain_bone", width: 2800.0, level: 600.0 },
    Preset { name: "brain_soft", width: 375.0, level: 40.0 },
    Preset { name: "lungs", width: 1500.0, level: -600.0 },
    Preset { name: "mediastinum", width: 350.0, level: 50.0 },
    Preset { name: "abdomen_soft", width: 400.0, level: 50.0 },
    Preset { name: "liver", width: 150.0, level: 30.0 },
    Preset { name: "spine_soft", width: 250.0, level: 50.0 },
    Preset { name: "spine_bone", width: 1800.0, level: 400.0 },
];

/// Which gray values map to black and white.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Window {
    /// The file's own Window Center/Width, the `choice`-th of several (0-based; `file:N` counts
    /// from 1); min-max for a file that has none.
    File {
        choice: usize,
    },
    Preset(Preset),
    /// A level (center) and width, in rescaled units (Hounsfield units for CT).
    Custom {
        level: f64,
        width: f64,
    },
    /// The image's own lowest value is black, its highest white.
    MinMax,
    /// Like `MinMax` between two percentiles of the image's values (0 to 100).
    Percentile {
        low: f64,
        high: f64,
    },
}

impl Default for Window {
    fn default() -> Self {
        Window::File { choice: 0 }
    }
}

impl Window {
    /// The choices a front end offers, default first: file, minmax, percentile 0.5..99.5 and
    /// every preset. `file:N` and custom windows are typed.
    pub fn choices() -> Vec<Window> {
        let mut choices = vec![Window::default(), Window::MinMax, Window::Percentile { low: 0.5, high: 99.5 }];
        choices.extend(PRESETS.iter().copied().map(Window::Preset));
        choices
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::File { choice: 0 } => f.write_str("file"),
            Window::File { choice } => write!(f, "file:{}", choice + 1),
            Window::Preset(preset) => f.write_str(preset.name),
            Window::Custom { level, width } => write!(f, "{level},{width}"),
            Window::MinMax => f.write_str("minmax"),
            Window::Percentile { low, high } => write!(f, "percentile:{low},{high}"),
        }
    }
}

/// A window that cannot be read; the message lists what can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{problem}: use file, file:N, minmax, percentile:LOW,HIGH, LEVEL,WIDTH (such as 40,400) or a preset: {}",
    preset_names()
)]
pub struct WindowError {
    problem: String,
}

fn preset_names() -> String {
    PRESETS.iter().map(|p| format!("{} ({}/{})", p.name, p.width, p.level)).collect::<Vec<_>>().join(", ")
}

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |problem: String| WindowError { problem };
        let text = text.trim();
        let numbers = |pair: &str| -> Option<(f64, f64)> {
            let (a, b) = pair.split_once(',')?;
            let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
            (a.is_finite() && b.is_finite()).then_some((a, b))
        };
        let lower = text.to_ascii_lowercase();
        if lower == "file" {
            return Ok(Window::default());
        }
        if lower == "minmax" {
            return Ok(Window::MinMax);
        }
        if let Some(n) = lower.strip_prefix("file:") {
            return match n.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Window::File { choice: n - 1 }),
                _ => Err(error(format!("window {text:?}: file:N counts the file's windows from 1"))),
            };
        }
        if let Some(pair) = lower.strip_prefix("percentile:") {
            return match numbers(pair) {
                Some((low, high)) if (0.0..high).contains(&low) && high <= 100.0 => {
                    Ok(Window::Percentile { low, high })
                }
                _ => Err(error(format!("window {text:?}: percentile:LOW,HIGH needs 0 <= LOW < HIGH <= 100"))),
            };
        }
        if let Some(preset) = PRESETS.iter().find(|p| p.name == lower) {
            return Ok(Window::Preset(*preset));
        }
        if text.contains(',') {
            return match numbers(text) {
                Some((level, width)) if width >= 1.0 => Ok(Window::Custom { level, width }),
                Some(_) => Err(error(format!("window {text:?}: the width (after the comma) must be at least 1"))),
                None => Err(error(format!("window {text:?} is not LEVEL,WIDTH"))),
            };
        }
        Err(error(format!("unknown window {text:?}")))
    }
}

impl From<Window> for String {
    fn from(window: Window) -> Self {
        window.to_string()
    }
}

impl TryFrom<String> for Window {
    type Error = WindowError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// DICOM's VOI LUT Function: how a file's own window maps values (PS3.3 C.11.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VoiFunction {
    #[default]
    Linear,
    LinearExact,
    Sigmoid,
}

/// A window as a file records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileWindow {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
}

/// Where an image's window came from, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WindowSource {
    File,
    /// `file` was asked and the file has no (such) window.
    MinMaxFallback,
    Preset,
    Custom,
    MinMax,
    Percentile,
}

impl fmt::Display for WindowSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WindowSource::File => "file",
            WindowSource::MinMaxFallback => "minmax (no window in the file)",
            WindowSource::Preset => "preset",
            WindowSource::Custom => "custom",
            WindowSource::MinMax => "minmax",
            WindowSource::Percentile => "percentile",
        })
    }
}

impl Window {
    /// Where the window of an image with `file_windows` comes from.
    pub fn source(&self, file_windows: &[FileWindow]) -> WindowSource {
        match self {
            Window::File { choice } if *choice < file_windows.len() => WindowSource::File,
            Window::File { .. } => WindowSource::MinMaxFallback,
            Window::Preset(_) => WindowSource::Preset,
            Window::Custom { .. } => WindowSource::Custom,
            Window::MinMax => WindowSource::MinMax,
            Window::Percentile { .. } => WindowSource::Percentile,
        }
    }

    /// Maps `values` to 8-bit gray, inverted when `invert` (MONOCHROME1: low values are white).
    pub fn render(&self, values: &[f32], file_windows: &[FileWindow], invert: bool) -> Vec<u8> {
        let map = match self {
            Window::File { choice } => match file_windows.get(*choice) {
                Some(window) => VoiMap::of_file(window),
                None => VoiMap::range(min_max(values)),
            },
            Window::Preset(preset) => VoiMap::Linear { center: preset.level, width: preset.width },
            Window::Custom { level, width } => VoiMap::Linear { center: *level, width: *width },
            Window::MinMax => VoiMap::range(min_max(values)),
            Window::Percentile { low, high } => VoiMap::range(percentiles(values, *low, *high)),
        };
        values
            .iter()
            .map(|&value| {
                let gray = map.apply(value as f64).clamp(0.0, 255.0).round() as u8;
                if invert { 255 - gray } else { gray }
            })
            .collect()
    }
}

/// A mapping from values to 0.0..=255.0.
#[derive(Debug, Clone, Copy)]
enum VoiMap {
    Linear { center: f64, width: f64 },
    LinearExact { center: f64, width: f64 },
    Sigmoid { center: f64, width: f64 },
    Range { low: f64, high: f64 },
}

impl VoiMap {
    fn of_file(window: &FileWindow) -> Self {
        let (center, width) = (window.center, window.width);
        match window.function {
            VoiFunction::Linear => VoiMap::Linear { center, width },
            VoiFunction::LinearExact => VoiMap::LinearExact { center, width },
            VoiFunction::Sigmoid => VoiMap::Sigmoid { center, width },
        }
    }

    fn range((low, high): (f64, f64)) -> Self {
        VoiMap::Range { low, high }
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            // PS3.3 C.11.2.1.2.1; `x <= lower` also covers a width of 1 (no division by 0).
            VoiMap::Linear { center, width } => {
                let (lower, upper) = (center - 0.5 - (width - 1.0) / 2.0, center - 0.5 + (width - 1.0) / 2.0);
                if x <= lower {
                    0.0
                } else if x > upper {
                    255.0
                } else {
                    ((x - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
                }
            }
            VoiMap::LinearExact { center, width } => ((x - center) / width + 0.5) * 255.0,
            VoiMap::Sigmoid { center, width } => 255.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
            // A flat image (high == low) comes out black, as no value stands out.
            VoiMap::Range { low, high } if high > low => (x - low) / (high - low) * 255.0,
            VoiMap::Range { .. } => 0.0,
        }
    }
}

fn min_max(values: &[f32]) -> (f64, f64) {
    let (low, high) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if low > high { (0.0, 0.0) } else { (low as f64, high as f64) }
}

/// The `low` and `high` percentiles of `values`, interpolated linearly as numpy's default does.
fn percentiles(values: &[f32], low: f64, high: f64) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let at = |percent: f64| {
        let position = percent / 100.0 * (sorted.len() - 1) as f64;
        let (below, fraction) = (position.floor() as usize, position.fract());
        let next = sorted[(below + 1).min(sorted.len() - 1)] as f64;
        sorted[below] as f64 * (1.0 - fraction) + next * fraction
    };
    (at(low), at(high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_window_reads_back_from_its_text() {
        for window in Window::choices().into_iter().chain([
            Window::File { choice: 2 },
            Window::Custom { level: -600.0, width: 1500.0 },
            Window::Percentile { low: 1.0, high: 99.0 },
        ]) {
            assert_eq!(window.to_string().parse::<Window>().unwrap(), window, "{window}");
        }
        assert_eq!("file:1".parse::<Window>().unwrap(), Window::default());
        assert_eq!("Lungs".parse::<Window>().unwrap(), Window::Preset(PRESETS[5]));
        assert_eq!("40, 400".parse::<Window>().unwrap(), Window::Custom { level: 40.0, width: 400.0 });
    }

    #[test]
    fn bad_windows_are_refused_with_the_presets_listed() {
        for (text, problem) in [
            ("bone", "unknown window \"bone\""),
            ("40,abc", "is not LEVEL,WIDTH"),
            ("40,0", "width (after the comma) must be at least 1"),
            ("file:0", "counts the file's windows from 1"),
            ("percentile:99,1", "0 <= LOW < HIGH <= 100"),
        ] {
            let error = text.parse::<Window>().unwrap_err().to_string();
            assert!(error.contains(problem), "{text}: {error}");
            assert!(error.contains("brain (80/40)") && error.contains("spine_bone (1800/400)"), "{error}");
        }
    }

    #[test]
    fn linear_window_follows_the_dicom_formula() {
        // Center 40, width 400: -160.5 and below black, 239.5 and above white.
        let window = Window::Custom { level: 40.0, width: 400.0 };
        let gray = window.render(&[-1000.0, -160.0, 39.5, 239.0, 240.0], &[], false);
        let expected = |x: f64| (((x - 39.5) / 399.0 + 0.5) * 255.0).round() as u8;
        assert_eq!(gray, [0, expected(-160.0), 128, expected(239.0), 255]);
        assert_eq!(window.render(&[-1000.0, 240.0], &[], true), [255, 0], "MONOCHROME1 inverts");
    }

    #[test]
    fn file_windows_are_chosen_by_index_and_missing_ones_fall_back_to_min_max() {
        let windows = [
            FileWindow { center: 40.0, width: 80.0, function: VoiFunction::Linear },
            FileWindow { center: 100.0, width: 10.0, function: VoiFunction::LinearExact },
        ];
        let values = [0.0, 100.0, 200.0];
        assert_eq!(Window::default().render(&values, &windows, false), [0, 255, 255]);
        assert_eq!(Window::File { choice: 1 }.render(&values, &windows, false), [0, 128, 255]);
        assert_eq!(Window::File { choice: 2 }.source(&windows), WindowSource::MinMaxFallback);
        assert_eq!(Window::default().render(&values, &[], false), [0, 128, 255]);
        assert_eq!(Window::default().source(&[]), WindowSource::MinMaxFallback);
        assert_eq!(Window::MinMax.render(&[7.0, 7.0], &[], false), [0, 0], "a flat image is black");
    }

    #[test]
    fn percentiles_interpolate_as_numpy_does() {
        let values: Vec<f32> = (0..=10).map(|v| v as f32 * 10.0).collect();
        // numpy.percentile(range(0, 101, 10), [5, 95]) == [5, 95].
        assert_eq!(percentiles(&values, 5.0, 95.0), (5.0, 95.0));
        let gray = Window::Percentile { low: 5.0, high: 95.0 }.render(&values, &[], false);
        assert_eq!((gray[0], gray[5], gray[10]), (0, 128, 255));
    }

    #[test]
    fn sigmoid_is_half_gray_at_the_center() {
        let window = FileWindow { center: 50.0, width: 20.0, function: VoiFunction::Sigmoid };
        let gray = Window::default().render(&[50.0, 1e6, -1e6], &[window], false);
        assert_eq!(gray, [128, 255, 0]);
    }
}
