//! How the dataset's files become images, recorded in the workspace (`dataset-settings.json`)
//! so that every step (classes, split, train, interpret, lr-find, the app) reads the same
//! pixels: the window for gray values of more than 8 bits, and which frames of a multi-frame
//! DICOM file are images.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::window::Window;
use crate::workspace::{self, Workspace};

/// Which frames of a multi-frame file are images of its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frames {
    /// Every frame is an image.
    #[default]
    All,
    /// Only the middle frame (frame `n / 2`, counting from 0): one image per file.
    Middle,
}

impl Frames {
    /// The frames (0-based) of a file with `count` frames that are images.
    pub fn pick(self, count: u32) -> std::ops::Range<u32> {
        match self {
            Frames::All => 0..count,
            Frames::Middle => count / 2..count / 2 + 1,
        }
    }
}

impl fmt::Display for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Frames::All => "all",
            Frames::Middle => "middle",
        })
    }
}

impl FromStr for Frames {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Frames::All),
            "middle" => Ok(Frames::Middle),
            _ => Err(format!("frames {text:?}: use all (every frame is an image) or middle (one per file)")),
        }
    }
}

/// The dataset setting (`dataset-settings.json`); the defaults when nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DatasetSettings {
    #[serde(default)]
    pub window: Window,
    #[serde(default)]
    pub frames: Frames,
}

impl DatasetSettings {
    /// The settings recorded in `workspace`, or the defaults.
    pub fn load(workspace: &Workspace) -> Result<Self> {
        let file = workspace.dataset_settings_file();
        if file.exists() { workspace::read_json(&file) } else { Ok(Self::default()) }
    }

    /// Records the settings in `workspace` (atomically).
    pub fn save(&self, workspace: &Workspace) -> Result<()> {
        workspace::write_json_atomic(&workspace.dataset_settings_file(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_workspace_and_default_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::at(dir.path());
        assert_eq!(DatasetSettings::load(&workspace).unwrap(), DatasetSettings::default());
        let settings = DatasetSettings { window: "lungs".parse().unwrap(), frames: Frames::Middle };
        settings.save(&workspace).unwrap();
        assert_eq!(DatasetSettings::load(&workspace).unwrap(), settings);
        let text = std::fs::read_to_string(workspace.dataset_settings_file()).unwrap();
        assert!(text.contains("\"window\": \"lungs\"") && text.contains("\"frames\": \"middle\""), "{text}");
    }

    #[test]
    fn the_middle_frame_is_the_one_past_half() {
        assert_eq!(Frames::Middle.pick(30), 15..16);
        assert_eq!(Frames::Middle.pick(1), 0..1);
        assert_eq!(Frames::All.pick(3), 0..3);
        assert!("sometimes".parse::<Frames>().unwrap_err().contains("use all"));
    }
}
