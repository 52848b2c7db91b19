//! The intensity pipeline of a DICOM image, ours rather than dicom-pixeldata's (whose min-max
//! fallback ignores the sign and junk bits): stored values (BitsStored bits at HighBit, signed
//! or not, other bits masked) -> modality LUT (Rescale Slope/Intercept or a Modality LUT
//! Sequence) -> the window -> MONOCHROME1 inverted -> 8-bit gray.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::DicomError;
use crate::data::window::{FileWindow, VoiFunction, Window, WindowSource};

/// An image at most this many bytes of decoded samples is decoded (about 2 GiB).
const MAX_SAMPLE_BYTES: u64 = 1 << 31;

/// How gray values are laid out and what they mean.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub signed: bool,
    pub photometric: String,
    /// Colour samples stored plane by plane (Planar Configuration 1).
    pub planar: bool,
}

fn int(object: &InMemDicomObject, tag: Tag) -> Option<i64> {
    object.get(tag)?.to_int::<i64>().ok()
}

fn required(object: &InMemDicomObject, tag: Tag, name: &str) -> Result<i64, DicomError> {
    int(object, tag).ok_or_else(|| DicomError::Corrupt(format!("{name} is missing or not a number")))
}

pub(super) fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!value.is_empty()).then(|| value.to_string())
}

impl ImageHeader {
    pub fn read(object: &InMemDicomObject) -> Result<Self, DicomError> {
        let in_range = |value: i64, name: &str, range: std::ops::RangeInclusive<i64>| {
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(DicomError::Corrupt(format!("{name} {value} is out of range")))
            }
        };
        let width = in_range(required(object, tags::COLUMNS, "Columns")?, "Columns", 1..=65535)? as u32;
        let height = in_range(required(object, tags::ROWS, "Rows")?, "Rows", 1..=65535)? as u32;
        let bits_allocated = required(object, tags::BITS_ALLOCATED, "Bits Allocated")?;
        if !matches!(bits_allocated, 8 | 16 | 32) {
            return Err(DicomError::Unsupported(format!("{bits_allocated}-bit samples are not supported")));
        }
        let bits_stored = int(object, tags::BITS_STORED).unwrap_or(bits_allocated);
        let bits_stored = in_range(bits_stored, "Bits Stored", 1..=bits_allocated)?;
        let high_bit = in_range(
            int(object, tags::HIGH_BIT).unwrap_or(bits_stored - 1),
            "High Bit",
            bits_stored - 1..=bits_allocated - 1,
        )?;
        let frames =
            in_range(int(object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1), "Number of Frames", 1..=1 << 20)?;
        let samples_per_pixel =
            in_range(int(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1), "Samples per Pixel", 1..=4)?;
        let photometric = text(object, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into());
        let header = Self {
            width,
            height,
            frames: frames as u32,
            samples_per_pixel: samples_per_pixel as u16,
            bits_allocated: bits_allocated as u16,
            bits_stored: bits_stored as u16,
            high_bit: high_bit as u16,
            signed: int(object, tags::PIXEL_REPRESENTATION) == Some(1),
            photometric,
            planar: int(object, tags::PLANAR_CONFIGURATION) == Some(1),
        };
        if header.total_bytes() > MAX_SAMPLE_BYTES {
            return Err(DicomError::Unsupported(format!(
                "{} frame(s) of {}x{} are too large to decode",
                header.frames, header.width, header.height
            )));
        }
        Ok(header)
    }

    fn bytes_per_sample(&self) -> usize {
        usize::from(self.bits_allocated / 8)
    }

    fn frame_bytes(&self) -> usize {
        self.width as usize * self.height as usize * usize::from(self.samples_per_pixel) * self.bytes_per_sample()
    }

    fn total_bytes(&self) -> u64 {
        self.frame_bytes() as u64 * u64::from(self.frames)
    }

    fn is_monochrome(&self) -> bool {
        self.samples_per_pixel == 1 && self.photometric.starts_with("MONOCHROME")
    }
}

/// The modality LUT of a frame: stored values to modality values (Hounsfield units for CT).
#[derive(Debug, Clone, PartialEq)]
enum ModalityLut {
    Rescale {
        slope: f64,
        intercept: f64,
    },
    /// A Modality LUT Sequence: `table[stored - first]`, clamped at both ends.
    Table {
        first: i64,
        table: Vec<f32>,
    },
}

/// What turns one frame's stored values into gray levels.
#[derive(Debug, Clone, PartialEq)]
struct FrameTransform {
    modality: ModalityLut,
    windows: Vec<FileWindow>,
}

/// Looks an attribute of a frame up where DICOM may keep it: at the top level, in the frame's
/// item of the Per-frame Functional Groups, or in the Shared Functional Groups, under the
/// functional group `group`.
fn frame_attribute<'a>(
    object: &'a InMemDicomObject,
    frame_item: Option<&'a InMemDicomObject>,
    group: Tag,
    tag: Tag,
) -> Option<&'a dicom_object::mem::InMemElement> {
    let first_item = |holder: &'a InMemDicomObject, sequence: Tag| holder.get(sequence)?.items()?.first();
    let in_group = |holder: &'a InMemDicomObject| first_item(holder, group)?.get(tag);
    object
        .get(tag)
        .or_else(|| frame_item.and_then(in_group))
        .or_else(|| first_item(object, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(in_group))
}

impl FrameTransform {
    fn read(object: &InMemDicomObject, frame_item: Option<&InMemDicomObject>, signed: bool) -> Self {
        let attribute = |group, tag| frame_attribute(object, frame_item, group, tag);
        let floats = |group, tag| -> Vec<f64> {
            attribute(group, tag).and_then(|e| e.to_multi_float64().ok()).unwrap_or_default()
        };
        let modality = modality_table(object, signed).unwrap_or_else(|| {
            let value = |tag, default| {
                floats(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tag)
                    .first()
                    .copied()
                    .filter(|v| v.is_finite())
                    .unwrap_or(default)
            };
            ModalityLut::Rescale {
                slope: value(tags::RESCALE_SLOPE, 1.0),
                intercept: value(tags::RESCALE_INTERCEPT, 0.0),
            }
        });
        let function = attribute(tags::FRAME_VOILUT_SEQUENCE, tags::VOILUT_FUNCTION)
            .and_then(|e| e.to_str().ok())
            .map_or(VoiFunction::Linear, |name| match name.trim() {
                "LINEAR_EXACT" => VoiFunction::LinearExact,
                "SIGMOID" => VoiFunction::Sigmoid,
                _ => VoiFunction::Linear,
            });
        let centers = floats(tags::FRAME_VOILUT_SEQUENCE, tags::WINDOW_CENTER);
        let widths = floats(tags::FRAME_VOILUT_SEQUENCE, tags::WINDOW_WIDTH);
        let windows = centers
            .iter()
            .zip(&widths)
            .filter(|(center, width)| center.is_finite() && width.is_finite() && **width >= 1.0)
            .map(|(&center, &width)| FileWindow { center, width, function })
            .collect();
        Self { modality, windows }
    }
}

/// The Modality LUT Sequence's first table, when the file has one that can be read.
fn modality_table(object: &InMemDicomObject, signed: bool) -> Option<ModalityLut> {
    let item = object.get(tags::MODALITY_LUT_SEQUENCE)?.items()?.first()?;
    let descriptor: Vec<i64> = item.get(tags::LUT_DESCRIPTOR)?.to_multi_int().ok()?;
    let table: Vec<i64> = item.get(tags::LUT_DATA)?.to_multi_int().ok()?;
    let (&entries, &first) = (descriptor.first()?, descriptor.get(1)?);
    // The first mapped value is US or SS as the pixels are; implicit VR reads it as US.
    let first = if signed && first > i64::from(i16::MAX) { first - 65536 } else { first };
    let entries = if entries == 0 { 65536 } else { entries as usize };
    let table: Vec<f32> = table.into_iter().take(entries).map(|v| v as f32).collect();
    (!table.is_empty()).then_some(ModalityLut::Table { first, table })
}

/// A decoded DICOM image: header, per-frame transforms and the native samples of every frame.
#[derive(Debug, Clone)]
pub struct DicomImage {
    header: ImageHeader,
    /// One for every frame, or one shared by all.
    transforms: Vec<FrameTransform>,
    /// Whether the decoder output interleaved RGB whatever the file says (compressed colour).
    rgb: bool,
    samples: Vec<u8>,
}

impl DicomImage {
    /// Pairs the header with `samples` (native byte order, every frame, as dicom-pixeldata
    /// decodes them); `rgb` when the decoder output is RGB whatever the file said.
    pub fn new(
        object: &InMemDicomObject,
        header: ImageHeader,
        samples: Vec<u8>,
        rgb: bool,
    ) -> Result<Self, DicomError> {
        let expected = header.total_bytes();
        if (samples.len() as u64) < expected {
            return Err(DicomError::Truncated(format!(
                "the pixel data holds {} bytes, {} frame(s) of {}x{} need {expected}",
                samples.len(),
                header.frames,
                header.width,
                header.height
            )));
        }
        if !header.is_monochrome() && !rgb && !matches!(header.photometric.as_str(), "RGB" | "YBR_FULL") {
            return Err(DicomError::Unsupported(format!("{} images are not supported", header.photometric)));
        }
        if !header.is_monochrome() && (header.bits_allocated != 8 || header.samples_per_pixel != 3) {
            return Err(DicomError::Unsupported(format!(
                "colour images of {} {}-bit samples are not supported",
                header.samples_per_pixel, header.bits_allocated
            )));
        }
        let per_frame = object
            .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .and_then(|e| e.items())
            .filter(|items| items.len() == header.frames as usize);
        let transforms = match per_frame {
            Some(items) => items.iter().map(|item| FrameTransform::read(object, Some(item), header.signed)).collect(),
            None => vec![FrameTransform::read(object, None, header.signed)],
        };
        Ok(Self { header, transforms, rgb, samples })
    }

    pub fn header(&self) -> &ImageHeader {
        &self.header
    }

    /// `gray8`, `gray16`, `gray32` or `rgb8`, like the names of other images' modes.
    pub fn mode(&self) -> &'static str {
        match (self.header.is_monochrome(), self.header.bits_allocated) {
            (false, _) => "rgb8",
            (true, 8) => "gray8",
            (true, 16) => "gray16",
            _ => "gray32",
        }
    }

    fn transform(&self, frame: u32) -> &FrameTransform {
        self.transforms.get(frame as usize).unwrap_or(&self.transforms[0])
    }

    /// The file's own windows for `frame`.
    pub fn file_windows(&self, frame: u32) -> &[FileWindow] {
        &self.transform(frame).windows
    }

    /// Where `window` puts the first frame's window; `None` for colour images, used as they are.
    pub fn window_source(&self, window: &Window) -> Option<WindowSource> {
        self.header.is_monochrome().then(|| window.source(self.file_windows(0)))
    }

    fn frame_samples(&self, frame: u32) -> &[u8] {
        let size = self.header.frame_bytes();
        &self.samples[frame as usize * size..(frame as usize + 1) * size]
    }

    /// The stored values of a monochrome `frame`: BitsStored bits at HighBit, sign-extended
    /// when signed; the other bits (overlays, junk) masked away.
    pub fn stored_values(&self, frame: u32) -> Vec<i64> {
        let header = &self.header;
        let shift = u32::from(header.high_bit + 1 - header.bits_stored);
        let mask = (1u64 << header.bits_stored) - 1;
        let sign = 1u64 << (header.bits_stored - 1);
        let stored = |raw: u64| {
            let value = (raw >> shift) & mask;
            if header.signed && value & sign != 0 { value as i64 - (mask as i64 + 1) } else { value as i64 }
        };
        let samples = self.frame_samples(frame);
        match header.bits_allocated {
            8 => samples.iter().map(|&b| stored(u64::from(b))).collect(),
            16 => samples.chunks_exact(2).map(|b| stored(u64::from(u16::from_ne_bytes([b[0], b[1]])))).collect(),
            _ => samples
                .chunks_exact(4)
                .map(|b| stored(u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))))
                .collect(),
        }
    }

    /// The modality values of a monochrome `frame` (Hounsfield units for CT).
    pub fn modality_values(&self, frame: u32) -> Vec<f32> {
        let stored = self.stored_values(frame);
        match &self.transform(frame).modality {
            ModalityLut::Rescale { slope, intercept } => {
                stored.into_iter().map(|v| (v as f64 * slope + intercept) as f32).collect()
            }
            ModalityLut::Table { first, table } => {
                let last = table.len() as i64 - 1;
                stored.into_iter().map(|v| table[(v - first).clamp(0, last) as usize]).collect()
            }
        }
    }

    /// `frame` as 8-bit gray, `width` x `height`: windowed when monochrome (MONOCHROME1
    /// inverted so that dense is bright), luma of colour images.
    pub fn gray8(&self, frame: u32, window: &Window) -> Vec<u8> {
        if self.header.is_monochrome() {
            let invert = self.header.photometric == "MONOCHROME1";
            return window.render(&self.modality_values(frame), self.file_windows(frame), invert);
        }
        let samples = self.frame_samples(frame);
        let channels = usize::from(self.header.samples_per_pixel);
        let pixels = samples.len() / channels;
        // Native YBR_FULL keeps luma in its first channel; RGB is weighted as `image` does.
        let ybr = !self.rgb && self.header.photometric == "YBR_FULL";
        let planar = !self.rgb && self.header.planar;
        let channel = |pixel: usize, c: usize| {
            f32::from(if planar { samples[c * pixels + pixel] } else { samples[pixel * channels + c] })
        };
        (0..pixels)
            .map(|p| {
                if ybr {
                    channel(p, 0) as u8
                } else {
                    (0.2126 * channel(p, 0) + 0.7152 * channel(p, 1) + 0.0722 * channel(p, 2)).round() as u8
                }
            })
            .collect()
    }
}
