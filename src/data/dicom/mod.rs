//! DICOM files as images. Recognised by content ([`looks_like_dicom`]), their structure walked
//! before dicom-rs parses them (`layout`), the pixel data decoded by dicom-pixeldata's codecs
//! (native, RLE, deflate, JPEG, JPEG 2000), and the intensities mapped by our own pipeline
//! (`pixels`). Every failure is a [`DicomError`] naming what is wrong; none is fatal.
//!
//! Patient ID and Study Instance UID are read to group images (a split keeps a patient's images
//! on one side) and are kept as a digest. Patient ID and Patient's Name are also read as
//! [`PatientText`], only to mask them in the paths shown (`identifiers`); neither is written.

mod layout;
mod pixels;

use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use dicom_core::dictionary::{UidDictionary, UidDictionaryEntry};
use dicom_dictionary_std::{StandardSopClassDictionary, tags, uids};
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use sha2::{Digest, Sha256};

pub use layout::looks_like_dicom;

use crate::data::identifiers::PatientText;
use layout::{Dataset, EXPLICIT_VR_LITTLE_ENDIAN};
pub use pixels::{DicomImage, ImageHeader};

/// Why a DICOM file is not a usable image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DicomError {
    /// A DICOM object that is no image: DICOMDIR, report, presentation state, ...
    #[error("no pixel data: {0}")]
    NoPixelData(String),
    #[error("unsupported transfer syntax {name} ({uid}): convert the file to an uncompressed one (gdcmconv --raw)")]
    UnsupportedSyntax { name: String, uid: String },
    #[error("unknown transfer syntax {0}")]
    UnknownSyntax(String),
    #[error("truncated DICOM: {0}")]
    Truncated(String),
    #[error("corrupt DICOM: {0}")]
    Corrupt(String),
    /// Valid DICOM the learner cannot use (palette colour, 1-bit samples, ...).
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot decode the {syntax} pixel data: {cause}")]
    Undecodable { syntax: String, cause: String },
    #[error("the DICOM decoder failed on this file ({0})")]
    Panicked(String),
}

impl DicomError {
    /// A short form for tallies ("no pixel data: SR document", "corrupt DICOM").
    pub fn kind(&self) -> String {
        match self {
            DicomError::NoPixelData(_) | DicomError::Unsupported(_) => self.to_string(),
            DicomError::UnsupportedSyntax { name, .. } => format!("unsupported transfer syntax {name}"),
            DicomError::UnknownSyntax(_) => "unknown transfer syntax".into(),
            DicomError::Truncated(_) => "truncated DICOM".into(),
            DicomError::Corrupt(_) => "corrupt DICOM".into(),
            DicomError::Undecodable { syntax, .. } => format!("undecodable {syntax}"),
            DicomError::Panicked(_) => "DICOM decoder failure".into(),
        }
    }
}

/// An identifier (Patient ID, Study Instance UID) as a digest, for telling groups apart in
/// memory. Never serialised; `Debug` shows nothing of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey([u8; 32]);

impl GroupKey {
    fn of(kind: &str, value: &str) -> Self {
        Self(Sha256::new().chain_update(kind).chain_update([0]).chain_update(value).finalize().into())
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

/// What a DICOM image file is, for reports and grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomFacts {
    pub modality: Option<String>,
    /// The transfer syntax's name ("Explicit VR Little Endian").
    pub transfer_syntax: String,
    pub bits_stored: u16,
    pub photometric: String,
    pub frames: u32,
    pub patient: Option<GroupKey>,
    pub study: Option<GroupKey>,
    /// What a path shown for this file must not contain.
    pub patient_text: PatientText,
}

/// A decoded DICOM image file.
#[derive(Debug, Clone)]
pub struct DicomFile {
    pub facts: DicomFacts,
    pub image: DicomImage,
}

/// Decodes the DICOM file `bytes`. A panic in a decoder is contained and returned as
/// [`DicomError::Panicked`].
pub fn decode(bytes: &[u8]) -> Result<DicomFile, DicomError> {
    contain_panics(|| decode_uncontained(bytes))
}

fn decode_uncontained(bytes: &[u8]) -> Result<DicomFile, DicomError> {
    let layout = layout::walk(bytes)?;
    let object = open(bytes, &layout)?;
    if object.get(tags::PIXEL_DATA).is_none() {
        if object.get(tags::FLOAT_PIXEL_DATA).is_some() || object.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some() {
            return Err(DicomError::Unsupported("float pixel data is not supported".into()));
        }
        return Err(DicomError::NoPixelData(object_kind(&object, layout.sop_class.as_deref())));
    }
    let syntax = TransferSyntaxRegistry
        .get(&layout.transfer_syntax)
        .ok_or_else(|| DicomError::UnknownSyntax(layout.transfer_syntax.clone()))?;
    if !syntax.can_decode_all() {
        return Err(DicomError::UnsupportedSyntax { name: syntax.name().into(), uid: syntax.uid().into() });
    }
    let header = ImageHeader::read(&object)?;
    let decoded = object
        .decode_pixel_data()
        .map_err(|error| DicomError::Undecodable { syntax: syntax.name().into(), cause: error_chain(&error) })?;
    let rgb = syntax.is_encapsulated_pixel_data() && header.samples_per_pixel == 3;
    let facts = DicomFacts {
        modality: pixels::text(&object, tags::MODALITY),
        transfer_syntax: syntax.name().to_string(),
        bits_stored: header.bits_stored,
        photometric: header.photometric.clone(),
        frames: header.frames,
        patient: pixels::text(&object, tags::PATIENT_ID).map(|id| GroupKey::of("patient", &id)),
        study: pixels::text(&object, tags::STUDY_INSTANCE_UID).map(|uid| GroupKey::of("study", &uid)),
        patient_text: patient_text_of(&object),
    };
    let image = DicomImage::new(&object, header, decoded.into_data(), rgb)?;
    Ok(DicomFile { facts, image })
}

/// The patient's ID and name in the DICOM file `bytes`, read from its header alone (the rest
/// may be cut short or broken); empty when the file is not DICOM or names no patient.
pub fn patient_text(bytes: &[u8]) -> PatientText {
    let header = contain_panics(|| {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Auto)
            .read_until(tags::PIXEL_DATA)
            .from_reader(bytes)
            .map_err(|error| DicomError::Corrupt(error.to_string()))
    });
    // A bare data set (no file meta) takes our own walk.
    let object = header.or_else(|_| contain_panics(|| open(bytes, &layout::walk(bytes)?)));
    object.map(|object| patient_text_of(&object)).unwrap_or_default()
}

fn patient_text_of(object: &InMemDicomObject) -> PatientText {
    PatientText::new(
        pixels::text(object, tags::PATIENT_ID).as_deref(),
        pixels::text(object, tags::PATIENT_NAME).as_deref(),
    )
}

/// Parses the data set (the layout already walked) and wraps it with a file meta table.
fn open(bytes: &[u8], layout: &layout::Layout) -> Result<FileDicomObject<InMemDicomObject>, DicomError> {
    // An unknown syntax still has an explicit VR little endian data set: read it, so that a
    // file without pixel data is reported as such.
    let explicit = TransferSyntaxRegistry.get(EXPLICIT_VR_LITTLE_ENDIAN).expect("the registry has the default syntax");
    let parse_with = TransferSyntaxRegistry.get(layout.parse_syntax()).unwrap_or(explicit);
    let data = match &layout.dataset {
        Dataset::InFile { at } => &bytes[*at..],
        Dataset::Inflated(inflated) => inflated.as_slice(),
    };
    let object = InMemDicomObject::read_dataset_with_ts(data, parse_with)
        .map_err(|error| DicomError::Corrupt(error_chain(&error)))?;
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(&layout.transfer_syntax)
        .media_storage_sop_class_uid(layout.sop_class.as_deref().unwrap_or_default())
        .media_storage_sop_instance_uid("")
        .build()
        .map_err(|error| DicomError::Corrupt(error_chain(&error)))?;
    Ok(object.with_exact_meta(meta))
}

/// What a DICOM object without pixel data is: "DICOMDIR ...", "SR document (Basic Text SR
/// Storage)", ...
fn object_kind(object: &InMemDicomObject, meta_sop_class: Option<&str>) -> String {
    let sop_class = pixels::text(object, tags::SOP_CLASS_UID).or(meta_sop_class.map(str::to_string));
    let directory = sop_class.as_deref() == Some(uids::MEDIA_STORAGE_DIRECTORY_STORAGE)
        || object.get(tags::DIRECTORY_RECORD_SEQUENCE).is_some();
    if directory {
        return "DICOMDIR (a directory of other files)".into();
    }
    let name =
        sop_class.as_deref().and_then(|uid| StandardSopClassDictionary.by_uid(uid)).map(|e| e.name().to_string());
    let modality = pixels::text(object, tags::MODALITY).unwrap_or_default();
    let named = name.as_deref().unwrap_or_default();
    let kind = if modality == "SR" || named.contains(" SR ") {
        "SR document"
    } else if named.contains("Presentation State") || modality == "PR" {
        "presentation state"
    } else if named.contains("Encapsulated") {
        "encapsulated document"
    } else if modality.starts_with("RT") || named.starts_with("RT ") {
        "RT object"
    } else {
        return name.unwrap_or_else(|| "not an image object".into());
    };
    match name {
        Some(name) => format!("{kind} ({name})"),
        None => kind.into(),
    }
}

/// An error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

thread_local! {
    /// Set while this thread runs a contained decode: its panics are reported, not printed.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode`, turning a panic into [`DicomError::Panicked`]. The panic hook stays quiet
/// for contained panics (a hostile file is an unreadable file, not a crash report).
fn contain_panics<T>(decode: impl FnOnce() -> Result<T, DicomError>) -> Result<T, DicomError> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = CONTAINED.with(|contained| contained.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(decode));
    CONTAINED.with(|contained| contained.set(outer));
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(DicomError::Panicked(message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_an_error_outside() {
        let outcome: Result<(), DicomError> = contain_panics(|| panic!("bad table index"));
        assert_eq!(outcome, Err(DicomError::Panicked("bad table index".into())));
        assert!(!CONTAINED.with(Cell::get), "the thread is no longer marked");
    }

    #[test]
    fn group_keys_tell_values_apart_and_show_nothing() {
        assert_eq!(GroupKey::of("patient", "P1"), GroupKey::of("patient", "P1"));
        assert_ne!(GroupKey::of("patient", "P1"), GroupKey::of("patient", "P2"));
        assert_ne!(GroupKey::of("patient", "P1"), GroupKey::of("study", "P1"));
        assert_eq!(format!("{:?}", GroupKey::of("patient", "P1")), "GroupKey(..)");
    }
}
