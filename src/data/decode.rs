//! Reads one image file, whatever its name says (JPEG, PNG, DICOM: the format comes from the
//! content), and renders its frames as 8-bit gray. Gray values of more than 8 bits (DICOM,
//! 16-bit PNG) go through the dataset's window; 8-bit and colour images are used as they are.

use std::{fs, io, path::Path};

use image::{ColorType, DynamicImage, GrayImage, ImageFormat};

use super::dicom::{self, DicomError, DicomFacts, DicomImage};
use super::window::{Window, WindowSource};

/// The formats the learner reads besides DICOM, with the names reports use for them.
const SUPPORTED_FORMATS: [(ImageFormat, &str); 2] = [(ImageFormat::Jpeg, "jpeg"), (ImageFormat::Png, "png")];

/// Why a file is not a usable image.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("empty file")]
    Empty,
    #[error("not an image")]
    NotAnImage,
    #[error("{0} images are not supported (only JPEG, PNG and DICOM)")]
    Unsupported(String),
    #[error("truncated JPEG: the file ends before its end-of-image marker")]
    TruncatedJpeg,
    #[error("corrupt {format}: {error}")]
    Corrupt { format: &'static str, error: image::ImageError },
    #[error(transparent)]
    Dicom(#[from] DicomError),
}

impl Unreadable {
    /// A short form for tallies: the reason without what is particular to the file.
    pub fn kind(&self) -> String {
        match self {
            Unreadable::Io(_) => "cannot read".into(),
            Unreadable::Corrupt { format, .. } => format!("corrupt {format}"),
            Unreadable::Dicom(error) => error.kind(),
            other => other.to_string(),
        }
    }

    /// Whether the file is a DICOM object that holds no image (a DICOMDIR, a report, ...):
    /// something to skip rather than a failure.
    pub fn is_not_an_image_object(&self) -> bool {
        matches!(self, Unreadable::Dicom(DicomError::NoPixelData(_)))
    }
}

/// A fully decoded image file.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// `jpeg`, `png` or `dicom`.
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    /// `gray8`, `gray16`, `rgb8`, `rgba8`, ...
    pub mode: &'static str,
    /// What a DICOM file is (modality, syntax, ...).
    pub dicom: Option<DicomFacts>,
    pixels: Pixels,
}

#[derive(Debug, Clone)]
enum Pixels {
    Image(DynamicImage),
    Dicom(DicomImage),
}

impl Decoded {
    /// Frames in the file: 1 but for multi-frame DICOM.
    pub fn frames(&self) -> u32 {
        match &self.pixels {
            Pixels::Image(_) => 1,
            Pixels::Dicom(image) => image.header().frames,
        }
    }

    /// Where `window` takes this image's window from; `None` when the image is used as it is
    /// (8-bit or colour).
    pub fn window_source(&self, window: &Window) -> Option<WindowSource> {
        match &self.pixels {
            Pixels::Image(image) => is_deep(image).then(|| window.source(&[])),
            Pixels::Dicom(image) => image.window_source(window),
        }
    }

    /// Frame `frame` (0 for single-frame files) as 8-bit gray at the file's size.
    pub fn gray8(&self, frame: u32, window: &Window) -> GrayImage {
        let (pixels, width, height) = match &self.pixels {
            Pixels::Image(image) if is_deep(image) => {
                let values: Vec<f32> = image.to_luma16().into_raw().into_iter().map(f32::from).collect();
                (window.render(&values, &[], false), image.width(), image.height())
            }
            Pixels::Image(image) => return image.to_luma8(),
            Pixels::Dicom(image) => (image.gray8(frame, window), image.header().width, image.header().height),
        };
        GrayImage::from_raw(width, height, pixels).expect("one gray byte per pixel")
    }
}

/// Whether an image has more than 8 bits of gray (a colour one counts by its luma).
fn is_deep(image: &DynamicImage) -> bool {
    matches!(image.color(), ColorType::L16 | ColorType::La16 | ColorType::Rgb16 | ColorType::Rgba16)
}

/// Reads and fully decodes one image file.
pub fn decode_file(path: &Path) -> Result<Decoded, Unreadable> {
    decode_bytes(&fs::read(path)?)
}

/// Fully decodes an encoded JPEG, PNG or DICOM file.
pub fn decode_bytes(bytes: &[u8]) -> Result<Decoded, Unreadable> {
    if bytes.is_empty() {
        return Err(Unreadable::Empty);
    }
    // DICM after the preamble wins: the preamble may hold anything, even another format's
    // magic. Files without it are DICOM only when they are no other image.
    let format = match image::guess_format(bytes) {
        Ok(format) if bytes.get(128..132) != Some(b"DICM") => format,
        _ if dicom::looks_like_dicom(bytes) => return decode_dicom(bytes),
        _ => return Err(Unreadable::NotAnImage),
    };
    let (_, name) = SUPPORTED_FORMATS
        .into_iter()
        .find(|(supported, _)| *supported == format)
        .ok_or_else(|| Unreadable::Unsupported(format!("{format:?}").to_uppercase()))?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Unreadable::TruncatedJpeg);
    }
    let image = image::load_from_memory_with_format(bytes, format)
        .map_err(|error| Unreadable::Corrupt { format: name, error })?;
    Ok(Decoded {
        format: name,
        width: image.width(),
        height: image.height(),
        mode: mode_name(image.color()),
        dicom: None,
        pixels: Pixels::Image(image),
    })
}

fn decode_dicom(bytes: &[u8]) -> Result<Decoded, Unreadable> {
    let file = dicom::decode(bytes)?;
    let header = file.image.header();
    Ok(Decoded {
        format: "dicom",
        width: header.width,
        height: header.height,
        mode: file.image.mode(),
        dicom: Some(file.facts),
        pixels: Pixels::Dicom(file.image),
    })
}

/// Whether a JPEG's marker structure runs on to its end-of-image marker. The `image` crate's
/// decoder, like browsers, fills the missing part of a cut-off file with gray instead of
/// failing, so a truncated download would otherwise pass as readable.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    // After SOI come segments `FF <marker> <u16 length incl. itself> <payload>`; each SOS is
    // followed by entropy-coded data, in which FF only appears as a stuffed `FF 00` or a
    // restart marker `FF D0..D7`. Stray bytes between segments are skipped, as libjpeg does.
    let mut at = 2;
    loop {
        let Some(offset) = bytes.get(at..).and_then(|rest| rest.iter().position(|&b| b != 0xFF)) else {
            return false;
        };
        // `at + offset` is the first non-FF byte; a marker is FF then that byte.
        let marker_at = at + offset;
        if offset == 0 {
            at += 1;
            continue;
        }
        let marker = bytes[marker_at];
        at = marker_at + 1;
        match marker {
            0xD9 => return true,
            0x00 | 0x01 | 0xD0..=0xD7 => {}
            _ => {
                let Some(&[high, low]) = bytes.get(at..at + 2) else { return false };
                at += usize::from(u16::from_be_bytes([high, low]));
                if marker == 0xDA {
                    let Some(end) = entropy_data_end(bytes, at) else { return false };
                    at = end;
                }
            }
        }
    }
}

/// Where the entropy-coded data starting at `from` ends: the FF that starts the next marker.
fn entropy_data_end(bytes: &[u8], from: usize) -> Option<usize> {
    let data = bytes.get(from..)?;
    data.windows(2)
        .position(|pair| pair[0] == 0xFF && !matches!(pair[1], 0x00 | 0xD0..=0xD7))
        .map(|offset| from + offset)
}

fn mode_name(color: ColorType) -> &'static str {
    match color {
        ColorType::L8 => "gray8",
        ColorType::La8 => "gray-alpha8",
        ColorType::Rgb8 => "rgb8",
        ColorType::Rgba8 => "rgba8",
        ColorType::L16 => "gray16",
        ColorType::La16 => "gray-alpha16",
        ColorType::Rgb16 => "rgb16",
        ColorType::Rgba16 => "rgba16",
        ColorType::Rgb32F => "rgb32f",
        ColorType::Rgba32F => "rgba32f",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn every_cut_off_jpeg_is_unreadable_and_trailing_data_is_tolerated() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 17, |x, y| {
            image::Rgb([x as u8 * 9, y as u8 * 13, 80])
        }));
        let jpeg = encode(image, ImageFormat::Jpeg);
        assert!(decode_bytes(&jpeg).is_ok());
        for len in 1..jpeg.len() {
            assert!(decode_bytes(&jpeg[..len]).is_err(), "a JPEG cut to {len} of {} bytes decoded", jpeg.len());
        }
        let mut with_trailer = jpeg.clone();
        with_trailer.extend_from_slice(b"\0\0trailing data some cameras append");
        assert!(decode_bytes(&with_trailer).is_ok());
    }

    #[test]
    fn a_png_cut_inside_its_pixel_data_is_unreadable() {
        let png = encode(
            DynamicImage::ImageLuma8(image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * y) as u8]))),
            ImageFormat::Png,
        );
        // The last 12 bytes are the IEND chunk, after all pixel data.
        for len in 1..png.len() - 12 {
            assert!(decode_bytes(&png[..len]).is_err(), "a PNG cut to {len} of {} bytes decoded", png.len());
        }
    }

    #[test]
    fn sixteen_bit_png_is_windowed_and_eight_bit_is_used_as_it_is() {
        let deep = image::ImageBuffer::from_fn(3, 1, |x, _| image::Luma([[1000u16, 2000, 3000][x as usize]]));
        let decoded = decode_bytes(&encode(DynamicImage::ImageLuma16(deep), ImageFormat::Png)).unwrap();
        assert_eq!(decoded.mode, "gray16");
        // No window in a PNG: `file` falls back to the image's min-max (today's high byte
        // would give 4, 8, 12).
        assert_eq!(decoded.gray8(0, &Window::default()).into_raw(), [0, 128, 255]);
        assert_eq!(decoded.window_source(&Window::default()), Some(WindowSource::MinMaxFallback));
        let custom = Window::Custom { level: 2000.0, width: 1001.0 };
        assert_eq!(decoded.gray8(0, &custom).into_raw(), [0, 128, 255]);

        let shallow = image::GrayImage::from_fn(3, 1, |x, _| image::Luma([x as u8 * 10]));
        let decoded = decode_bytes(&encode(DynamicImage::ImageLuma8(shallow), ImageFormat::Png)).unwrap();
        assert_eq!(decoded.gray8(0, &Window::MinMax).into_raw(), [0, 10, 20]);
        assert_eq!(decoded.window_source(&Window::MinMax), None);
    }
}
