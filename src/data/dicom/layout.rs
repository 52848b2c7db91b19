//! Finds a DICOM file's parts (preamble, file meta group, data set) and walks every element
//! header before dicom-rs parses the file. dicom-rs trusts lengths (a damaged one makes it
//! allocate and zero up to 4 GiB) and recurses into sequences (a crafted nesting overflows the
//! stack, which no `catch_unwind` contains); the walk refuses both, naming the element.

use std::io::Read;

use super::DicomError;

/// The transfer syntaxes whose data set is not explicit VR little endian.
pub const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
pub const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// Sequences nested deeper than this are refused (real files nest a handful of levels).
const MAX_DEPTH: usize = 24;
/// A deflated data set may inflate to at most this many bytes.
const MAX_INFLATED: u64 = 1 << 30;

const UNDEFINED: u32 = u32::MAX;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// Whether `bytes` start like a DICOM file: `DICM` after the 128-byte preamble, or (from files
/// written without the preamble) a file meta group or a bare data set at the start.
pub fn looks_like_dicom(bytes: &[u8]) -> bool {
    start(bytes).is_some()
}

/// Where the parts begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A file meta group at this offset.
    Meta(usize),
    /// A data set with no file meta group, in implicit (or explicit) VR little endian.
    Bare { explicit: bool },
}

fn start(bytes: &[u8]) -> Option<Start> {
    if bytes.get(128..132) == Some(b"DICM") {
        return Some(Start::Meta(132));
    }
    if bytes.starts_with(b"DICM") {
        return Some(Start::Meta(4));
    }
    let head = bytes.get(..8)?;
    let group = u16::from_le_bytes([head[0], head[1]]);
    let explicit = is_vr(&head[4..6]);
    match group {
        0x0002 if explicit => Some(Start::Meta(0)),
        // Bare data sets open with the identifying group (SOP Class UID, dates, ...).
        0x0008 => Some(Start::Bare { explicit }),
        _ => None,
    }
}

/// What the walk found: the transfer syntax and the data set's bytes in its own encoding
/// (a deflated one inflated, so it is read as explicit VR little endian).
#[derive(Debug)]
pub struct Layout {
    /// The Transfer Syntax UID as the file states it (or the one a bare data set is in).
    pub transfer_syntax: String,
    /// The file meta group's Media Storage SOP Class UID, if there is one.
    pub sop_class: Option<String>,
    /// The data set, as the syntax dicom-rs must read it with.
    pub dataset: Dataset,
}

#[derive(Debug)]
pub enum Dataset {
    /// The data set is `bytes[at..]` of the file.
    InFile { at: usize },
    /// A deflated data set, inflated: explicit VR little endian.
    Inflated(Vec<u8>),
}

impl Layout {
    /// The syntax to parse [`Layout::dataset`] with.
    pub fn parse_syntax(&self) -> &str {
        match self.dataset {
            Dataset::InFile { .. } => &self.transfer_syntax,
            Dataset::Inflated(_) => EXPLICIT_VR_LITTLE_ENDIAN,
        }
    }
}

/// Locates the parts of the DICOM file `bytes` and checks every element header in them.
pub fn walk(bytes: &[u8]) -> Result<Layout, DicomError> {
    let start =
        start(bytes).ok_or_else(|| DicomError::Corrupt("no DICM marker and no data set at the start".into()))?;
    let (Meta { transfer_syntax, sop_class }, dataset_at) = match start {
        Start::Meta(at) => walk_meta(bytes, at)?,
        Start::Bare { explicit } => {
            let syntax = if explicit { EXPLICIT_VR_LITTLE_ENDIAN } else { IMPLICIT_VR_LITTLE_ENDIAN };
            (Meta { transfer_syntax: syntax.to_string(), sop_class: None }, 0)
        }
    };
    let dataset = if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN {
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&bytes[dataset_at..])
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut inflated)
            .map_err(|e| DicomError::Corrupt(format!("the deflated data set does not inflate: {e}")))?;
        if inflated.len() as u64 > MAX_INFLATED {
            return Err(DicomError::Corrupt(format!("the deflated data set inflates beyond {MAX_INFLATED} bytes")));
        }
        Dataset::Inflated(inflated)
    } else {
        Dataset::InFile { at: dataset_at }
    };
    let layout = Layout { transfer_syntax, sop_class, dataset };
    let (encoding, data): (Encoding, &[u8]) = match &layout.dataset {
        Dataset::InFile { at } => (Encoding::of(&layout.transfer_syntax), &bytes[*at..]),
        Dataset::Inflated(inflated) => (Encoding::EXPLICIT_LE, inflated),
    };
    Walker { bytes: data, encoding }.dataset(0, End::Eof, 0)?;
    Ok(layout)
}

/// What the file meta group says.
struct Meta {
    transfer_syntax: String,
    sop_class: Option<String>,
}

/// Walks the file meta group (always explicit VR little endian) at `at`: what it says and
/// where the data set starts.
fn walk_meta(bytes: &[u8], at: usize) -> Result<(Meta, usize), DicomError> {
    let walker = Walker { bytes, encoding: Encoding::EXPLICIT_LE };
    let mut pos = at;
    let (mut transfer_syntax, mut sop_class) = (None, None);
    while bytes.get(pos..pos + 2).is_some_and(|group| group == [0x02, 0x00]) {
        let element = walker.header(pos, bytes.len())?;
        let value_at = pos + element.header_len;
        let end = walker.fits(&element, value_at, bytes.len())?;
        let uid = || String::from_utf8_lossy(&bytes[value_at..end]).trim_end_matches(['\0', ' ']).trim().to_string();
        match element.tag {
            (0x0002, 0x0002) => sop_class = Some(uid()),
            (0x0002, 0x0010) => transfer_syntax = Some(uid()),
            _ => {}
        }
        pos = end;
    }
    let transfer_syntax =
        transfer_syntax.ok_or_else(|| DicomError::Corrupt("the file meta group names no transfer syntax".into()))?;
    Ok((Meta { transfer_syntax, sop_class }, pos))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

impl Encoding {
    const EXPLICIT_LE: Self = Self { explicit: true, big_endian: false };
    const IMPLICIT_LE: Self = Self { explicit: false, big_endian: false };

    fn of(syntax: &str) -> Self {
        match syntax {
            IMPLICIT_VR_LITTLE_ENDIAN => Self::IMPLICIT_LE,
            EXPLICIT_VR_BIG_ENDIAN => Self { explicit: true, big_endian: true },
            // Every other standard syntax encodes the data set in explicit VR little endian.
            _ => Self::EXPLICIT_LE,
        }
    }
}

/// Where a run of elements ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The end of the file: the top-level data set.
    Eof,
    /// A defined length.
    At(usize),
    /// An item delimiter: an item of undefined length.
    ItemDelimiter,
}

struct Header {
    tag: (u16, u16),
    vr: Option<[u8; 2]>,
    length: u32,
    header_len: usize,
}

struct Walker<'a> {
    bytes: &'a [u8],
    encoding: Encoding,
}

fn is_vr(bytes: &[u8]) -> bool {
    bytes.len() == 2 && bytes.iter().all(u8::is_ascii_uppercase)
}

/// VRs with a 2-byte reserved field and a 4-byte length in explicit VR.
fn has_long_length(vr: [u8; 2]) -> bool {
    matches!(&vr, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV")
}

fn tag_text((group, element): (u16, u16)) -> String {
    format!("({group:04X},{element:04X})")
}

impl Walker<'_> {
    fn u16_at(&self, pos: usize) -> u16 {
        let pair = [self.bytes[pos], self.bytes[pos + 1]];
        if self.encoding.big_endian { u16::from_be_bytes(pair) } else { u16::from_le_bytes(pair) }
    }

    fn u32_at(&self, pos: usize) -> u32 {
        let quad = [self.bytes[pos], self.bytes[pos + 1], self.bytes[pos + 2], self.bytes[pos + 3]];
        if self.encoding.big_endian { u32::from_be_bytes(quad) } else { u32::from_le_bytes(quad) }
    }

    fn truncated(&self, what: String) -> DicomError {
        DicomError::Truncated(what)
    }

    /// The element header at `pos`, which must end before `limit`.
    fn header(&self, pos: usize, limit: usize) -> Result<Header, DicomError> {
        let need = |n: usize| {
            if pos + n <= limit {
                Ok(())
            } else {
                Err(self.truncated(format!("the file ends inside an element header at byte {pos}")))
            }
        };
        need(8)?;
        let tag = (self.u16_at(pos), self.u16_at(pos + 2));
        // Items and delimiters have no VR, in every syntax.
        if tag.0 == 0xFFFE || !self.encoding.explicit {
            return Ok(Header { tag, vr: None, length: self.u32_at(pos + 4), header_len: 8 });
        }
        let vr = [self.bytes[pos + 4], self.bytes[pos + 5]];
        if !is_vr(&vr) {
            return Err(DicomError::Corrupt(format!("element {} has no valid VR", tag_text(tag))));
        }
        if has_long_length(vr) {
            need(12)?;
            Ok(Header { tag, vr: Some(vr), length: self.u32_at(pos + 8), header_len: 12 })
        } else {
            Ok(Header { tag, vr: Some(vr), length: u32::from(self.u16_at(pos + 6)), header_len: 8 })
        }
    }

    /// The end of `element`'s value starting at `value_at`, if it fits before `limit`.
    fn fits(&self, element: &Header, value_at: usize, limit: usize) -> Result<usize, DicomError> {
        let end = value_at as u64 + u64::from(element.length);
        if element.length != UNDEFINED && end <= limit as u64 {
            return Ok(end as usize);
        }
        Err(self.truncated(format!(
            "element {} claims {} bytes, {} remain",
            tag_text(element.tag),
            element.length,
            limit.saturating_sub(value_at)
        )))
    }

    /// Walks elements from `pos` to `end`; returns the position after them (and after the
    /// item delimiter that ends an undefined-length item).
    fn dataset(&self, mut pos: usize, end: End, depth: usize) -> Result<usize, DicomError> {
        let limit = match end {
            End::At(at) => at,
            End::Eof | End::ItemDelimiter => self.bytes.len(),
        };
        loop {
            if pos == limit {
                return match end {
                    End::ItemDelimiter => Err(self.truncated("the file ends inside a sequence item".into())),
                    End::Eof | End::At(_) => Ok(pos),
                };
            }
            // Zero padding after the last element of a file ends the data set.
            if end == End::Eof && self.bytes[pos..].iter().all(|&b| b == 0) {
                return Ok(self.bytes.len());
            }
            let element = self.header(pos, limit)?;
            let value_at = pos + element.header_len;
            if element.tag == ITEM_END && end == End::ItemDelimiter {
                return Ok(value_at);
            }
            if element.tag.0 == 0xFFFE {
                return Err(DicomError::Corrupt(format!("unexpected {} among elements", tag_text(element.tag))));
            }
            pos = if element.length == UNDEFINED {
                let fragments = element.tag == PIXEL_DATA || matches!(element.vr, Some([b'O', b'B' | b'W']));
                if fragments {
                    self.fragments(value_at, limit)?
                } else if element.vr == Some(*b"UN") {
                    // An undefined-length UN holds a sequence in implicit VR little endian.
                    let inner = Walker { bytes: self.bytes, encoding: Encoding::IMPLICIT_LE };
                    inner.items(value_at, None, limit, depth + 1)?
                } else {
                    self.items(value_at, None, limit, depth + 1)?
                }
            } else {
                let value_end = self.fits(&element, value_at, limit)?;
                let holds_items = match element.vr {
                    Some(vr) => &vr == b"SQ",
                    // Implicit VR: a sequence shows by its first item tag.
                    None => value_end - value_at >= 8 && (self.u16_at(value_at), self.u16_at(value_at + 2)) == ITEM,
                };
                if holds_items {
                    self.items(value_at, Some(value_end), value_end, depth + 1)?;
                }
                value_end
            };
        }
    }

    /// Walks a sequence's items from `pos`: up to `end`, or (undefined length, `None`) to its
    /// sequence delimiter, all before `limit`.
    fn items(&self, mut pos: usize, end: Option<usize>, limit: usize, depth: usize) -> Result<usize, DicomError> {
        if depth > MAX_DEPTH {
            return Err(DicomError::Corrupt(format!("sequences nest deeper than {MAX_DEPTH} levels")));
        }
        loop {
            if end == Some(pos) {
                return Ok(pos);
            }
            if pos == limit {
                return Err(self.truncated("the file ends inside a sequence".into()));
            }
            let item = self.header(pos, limit)?;
            let content_at = pos + item.header_len;
            pos = match item.tag {
                SEQUENCE_END if end.is_none() => return Ok(content_at),
                ITEM if item.length == UNDEFINED => self.dataset(content_at, End::ItemDelimiter, depth)?,
                ITEM => {
                    let item_end = self.fits(&item, content_at, limit)?;
                    self.dataset(content_at, End::At(item_end), depth)?
                }
                other => {
                    return Err(DicomError::Corrupt(format!("expected a sequence item, found {}", tag_text(other))));
                }
            };
        }
    }

    /// Skips encapsulated pixel data: items of defined length up to the sequence delimiter.
    fn fragments(&self, mut pos: usize, limit: usize) -> Result<usize, DicomError> {
        loop {
            let item = self.header(pos, limit)?;
            let content_at = pos + item.header_len;
            pos = match item.tag {
                SEQUENCE_END => return Ok(content_at),
                ITEM => self.fits(&item, content_at, limit)?,
                other => {
                    return Err(DicomError::Corrupt(format!(
                        "expected a pixel data fragment, found {}",
                        tag_text(other)
                    )));
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit VR little endian element.
    fn element(group: u16, number: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut bytes = [group.to_le_bytes(), number.to_le_bytes()].concat();
        bytes.extend_from_slice(vr);
        if has_long_length(*vr) {
            bytes.extend_from_slice(&[0, 0]);
            bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            bytes.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        bytes.extend_from_slice(value);
        bytes
    }

    fn file(dataset: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0; 128];
        bytes.extend_from_slice(b"DICM");
        bytes.extend(element(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0"));
        bytes.extend_from_slice(dataset);
        bytes
    }

    fn undefined_sequence(group: u16, number: u16, items: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = [group.to_le_bytes(), number.to_le_bytes()].concat();
        bytes.extend_from_slice(b"SQ\0\0");
        bytes.extend_from_slice(&UNDEFINED.to_le_bytes());
        for item in items {
            bytes.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            bytes.extend_from_slice(&UNDEFINED.to_le_bytes());
            bytes.extend_from_slice(item);
            bytes.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        }
        bytes.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        bytes
    }

    #[test]
    fn a_well_formed_file_walks_to_its_end() {
        let mut dataset = element(0x0008, 0x0060, b"CS", b"CT");
        dataset.extend(undefined_sequence(0x0008, 0x1140, &[element(0x0008, 0x1150, b"UI", b"1.2\0")]));
        dataset.extend(element(0x7FE0, 0x0010, b"OW", &[0; 8]));
        let bytes = file(&dataset);
        let layout = walk(&bytes).unwrap();
        assert_eq!(layout.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(layout.sop_class, None);
        assert!(looks_like_dicom(&bytes) && !looks_like_dicom(b"\x89PNG\r\n\x1a\n and more"));
    }

    #[test]
    fn a_length_beyond_the_file_is_named() {
        let mut bytes = file(&element(0x7FE0, 0x0010, b"OW", &[0; 8]));
        bytes.truncate(bytes.len() - 2);
        let error = walk(&bytes).unwrap_err().to_string();
        assert!(error.contains("element (7FE0,0010) claims 8 bytes, 6 remain"), "{error}");
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser_recurses() {
        let mut item = element(0x0008, 0x0060, b"CS", b"CT");
        for _ in 0..MAX_DEPTH + 1 {
            item = undefined_sequence(0x0008, 0x1140, &[item]);
        }
        let error = walk(&file(&item)).unwrap_err().to_string();
        assert!(error.contains("nest deeper than"), "{error}");
        let mut shallow = element(0x0008, 0x0060, b"CS", b"CT");
        for _ in 0..MAX_DEPTH - 1 {
            shallow = undefined_sequence(0x0008, 0x1140, &[shallow]);
        }
        assert!(walk(&file(&shallow)).is_ok());
    }

    #[test]
    fn an_unterminated_sequence_is_truncated() {
        let mut sequence = undefined_sequence(0x0008, 0x1140, &[element(0x0008, 0x1150, b"UI", b"1.2\0")]);
        sequence.truncate(sequence.len() - 8);
        let error = walk(&file(&sequence)).unwrap_err().to_string();
        assert!(error.starts_with("truncated"), "{error}");
    }

    #[test]
    fn a_bare_implicit_data_set_is_recognised() {
        let mut bytes = [0x08u16.to_le_bytes(), 0x60u16.to_le_bytes()].concat();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(b"CT");
        let layout = walk(&bytes).unwrap();
        assert_eq!(layout.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
    }
}
