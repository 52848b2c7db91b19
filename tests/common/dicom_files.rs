//! The DICOM files of the tests, written once per test binary by scripts/make-test-dicom.py
//! with pydicom, and what pydicom says their pixels are.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

#[path = "python.rs"]
mod python;

/// `expected.json`, as the script writes it.
#[derive(Debug, Deserialize)]
pub struct Expected {
    /// File -> window -> frames of 8-bit gray levels.
    pub cases: BTreeMap<String, BTreeMap<String, Vec<Vec<u8>>>>,
    /// File -> the start of the reason it is skipped.
    pub skipped: BTreeMap<String, String>,
    pub patients: Patients,
}

#[derive(Debug, Deserialize)]
pub struct Patients {
    pub names: Vec<String>,
    pub ids: Vec<String>,
}

impl Patients {
    /// Every name and ID the files hold, which no output may contain.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.names.iter().chain(&self.ids).map(String::as_str)
    }
}

pub struct Files {
    pub root: PathBuf,
    pub expected: Expected,
}

impl Files {
    pub fn case(&self, name: &str) -> PathBuf {
        self.root.join("cases").join(name)
    }

    /// Class/Patient/Study/Series/IMnnnn, two classes.
    pub fn tree(&self) -> PathBuf {
        self.root.join("tree")
    }
}

/// The files, made on first use.
pub fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap().keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-test-dicom.py");
        // The LibTorch venv, where scripts/setup-test-python.sh installs pydicom.
        let python = python::python();
        let output = Command::new(&python).arg(&script).arg(&root).output().unwrap_or_else(|error| {
            panic!(
                "cannot run {} ({error}): the DICOM tests need Python with pydicom and imagecodecs; \
                 run scripts/setup-test-python.sh (make test does) or set MEDNIST_TEST_PYTHON",
                python.display()
            )
        });
        assert!(
            output.status.success(),
            "{} {} failed: the DICOM tests need pydicom and imagecodecs; run scripts/setup-test-python.sh \
             (make test does) or set MEDNIST_TEST_PYTHON\n{}",
            python.display(),
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = serde_json::from_slice(&std::fs::read(root.join("expected.json")).unwrap()).unwrap();
        Files { root, expected }
    })
}
