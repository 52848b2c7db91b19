//! DICOM decoding against pydicom: every syntax, bit depth and photometric interpretation the
//! test files cover comes out as the gray levels pydicom's modality and VOI LUTs give; files
//! that are no image, or cannot be used, are refused with the reason; no mutated file panics
//! or hangs the decoder.

#[path = "common/dicom_files.rs"]
mod dicom_files;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dicom_files::files;
use mednist::data::decode::{Unreadable, decode_bytes, decode_file};
use mednist::data::dicom::DicomError;
use mednist::data::window::{Window, WindowSource};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn every_case_decodes_to_the_gray_levels_pydicom_gives() {
    let files = files();
    assert!(files.expected.cases.len() >= 15, "{:?}", files.expected.cases.keys());
    for (name, windows) in &files.expected.cases {
        let decoded = decode_file(&files.case(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.format, "dicom", "{name}");
        for (window, frames) in windows {
            let parsed: Window = window.parse().unwrap();
            assert_eq!(decoded.frames() as usize, frames.len(), "{name}");
            for (frame, expected) in frames.iter().enumerate() {
                let got = decoded.gray8(frame as u32, &parsed).into_raw();
                assert_eq!(got.len(), expected.len(), "{name} {window} frame {frame}");
                let off: Vec<(usize, u8, u8)> = (0..got.len())
                    .filter(|&i| got[i].abs_diff(expected[i]) > 1)
                    .map(|i| (i, got[i], expected[i]))
                    .collect();
                assert!(off.is_empty(), "{name} window {window} frame {frame}: (pixel, ours, pydicom's) {off:?}");
                // Within one gray level is rounding; most must be exact.
                let exact = (0..got.len()).filter(|&i| got[i] == expected[i]).count();
                assert!(exact * 100 >= got.len() * 99, "{name} {window}: {exact} of {} exact", got.len());
            }
        }
    }
}

#[test]
fn the_images_are_not_trivial() {
    // A decoder that returned a flat image for every file would fail the comparison above only
    // if pydicom's levels were not flat too: they use the whole range.
    for (name, windows) in &files().expected.cases {
        let levels = &windows["file"][0];
        let (low, high) = (levels.iter().min().unwrap(), levels.iter().max().unwrap());
        assert!(*high as i32 - *low as i32 > 100, "{name}: levels {low}..{high}");
    }
}

#[test]
fn monochrome1_comes_out_inverted() {
    let files = files();
    let decoded = decode_file(&files.case("cr_monochrome1.dcm")).unwrap();
    let gray = decoded.gray8(0, &Window::MinMax).into_raw();
    let stored = decoded_stored_minmax(&files.case("cr_monochrome1.dcm"));
    // The lowest stored value is white, the highest black.
    assert_eq!(gray[stored.0], 255);
    assert_eq!(gray[stored.1], 0);
}

/// Positions of the lowest and highest stored value of a single-frame file, read from the
/// pixel data bytes directly (16-bit little endian, explicit VR, last element).
fn decoded_stored_minmax(path: &std::path::Path) -> (usize, usize) {
    let bytes = std::fs::read(path).unwrap();
    let values: Vec<u16> =
        bytes[bytes.len() - 24 * 24 * 2..].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    let min = (0..values.len()).min_by_key(|&i| values[i]).unwrap();
    let max = (0..values.len()).max_by_key(|&i| values[i]).unwrap();
    (min, max)
}

#[test]
fn window_sources_say_where_the_window_came_from() {
    let files = files();
    let ct = decode_file(&files.case("ct_signed.dcm")).unwrap();
    assert_eq!(ct.window_source(&Window::default()), Some(WindowSource::File));
    assert_eq!(ct.window_source(&"file:3".parse().unwrap()), Some(WindowSource::MinMaxFallback));
    assert_eq!(ct.window_source(&"lungs".parse().unwrap()), Some(WindowSource::Preset));
    let mr = decode_file(&files.case("mr_12bit.dcm")).unwrap();
    assert_eq!(mr.window_source(&Window::default()), Some(WindowSource::MinMaxFallback));
    let rgb = decode_file(&files.case("rgb.dcm")).unwrap();
    assert_eq!((rgb.mode, rgb.window_source(&Window::default())), ("rgb8", None));
    let facts = ct.dicom.unwrap();
    assert_eq!((facts.modality.as_deref(), facts.bits_stored, facts.frames), (Some("CT"), 16, 1));
    assert_eq!(facts.transfer_syntax, "Explicit VR Little Endian");
    assert!(facts.patient.is_some() && facts.study.is_some());
    let rle = decode_file(&files.case("ct_rle.dcm")).unwrap().dicom.unwrap();
    assert_eq!(rle.transfer_syntax, "RLE Lossless");
}

#[test]
fn files_that_are_no_usable_image_are_refused_with_the_reason() {
    let files = files();
    assert!(files.expected.skipped.len() >= 6);
    for (name, reason) in &files.expected.skipped {
        let error = decode_file(&files.case(name)).err().unwrap_or_else(|| panic!("{name} decoded"));
        assert!(error.to_string().starts_with(reason.as_str()), "{name}: {error}");
        assert_eq!(error.is_not_an_image_object(), reason.starts_with("no pixel data"), "{name}: {error}");
    }
    let jpeg_ls = decode_file(&files.case("jpeg_ls.dcm")).unwrap_err().to_string();
    assert!(jpeg_ls.contains("(1.2.840.10008.1.2.4.80)"), "{jpeg_ls}");
    let report = decode_file(&files.case("report.dcm")).unwrap_err().to_string();
    assert_eq!(report, "no pixel data: SR document (Basic Text SR Storage)");
}

/// Inputs made from the test files: cut at many lengths, bytes overwritten at random, and
/// random bytes behind a DICM preamble or a valid file meta group.
fn hostile_inputs() -> Vec<(String, Vec<u8>)> {
    let files = files();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut inputs = Vec::new();
    let sources = [
        "ct_signed.dcm",
        "ct_rle.dcm",
        "ct_deflated.dcm",
        "ct_big_endian.dcm",
        "ct_implicit",
        "ct_jpeg_lossless.dcm",
        "ct_j2k.dcm",
        "multiframe.dcm",
        "enhanced_ct.dcm",
        "modality_lut.dcm",
        "report.dcm",
        "DICOMDIR",
        "IM_BARE",
    ];
    for name in sources {
        let bytes = std::fs::read(files.case(name)).unwrap();
        for length in (0..bytes.len()).step_by(23) {
            inputs.push((format!("{name} cut to {length}"), bytes[..length].to_vec()));
        }
        for attempt in 0..150 {
            let mut mutated = bytes.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(128..mutated.len());
                mutated[at] = if rng.random_bool(0.3) { 0xFF } else { rng.random() };
            }
            inputs.push((format!("{name} mutation {attempt}"), mutated));
        }
        // A whole header made to claim the largest length, wherever it is.
        for attempt in 0..30 {
            let mut mutated = bytes.clone();
            let at = rng.random_range(132..mutated.len() - 4);
            mutated[at..at + 4].copy_from_slice(&[0xF0, 0xFF, 0xFF, 0xFF]);
            inputs.push((format!("{name} huge length {attempt}"), mutated));
        }
    }
    let meta_end = {
        let bytes = std::fs::read(files.case("ct_signed.dcm")).unwrap();
        // Group length (0002,0000) is the first element: 12 bytes, then that many bytes.
        132 + 12 + u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize
    };
    let meta = std::fs::read(files.case("ct_signed.dcm")).unwrap()[..meta_end].to_vec();
    for attempt in 0..200 {
        let length = rng.random_range(0..4096);
        let noise: Vec<u8> = (0..length).map(|_| rng.random()).collect();
        let mut behind_preamble = vec![0; 128];
        behind_preamble.extend_from_slice(b"DICM");
        behind_preamble.extend_from_slice(&noise);
        inputs.push((format!("random bytes behind DICM {attempt}"), behind_preamble));
        inputs.push((format!("random bytes behind a meta group {attempt}"), [meta.clone(), noise].concat()));
    }
    inputs
}

#[test]
fn no_hostile_input_panics_or_hangs() {
    let inputs = hostile_inputs();
    let count = inputs.len();
    let (done, outcomes) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        for (name, bytes) in inputs {
            let started = Instant::now();
            let outcome = match decode_bytes(&bytes) {
                Ok(decoded) => {
                    // Rendering must not panic either.
                    (0..decoded.frames()).for_each(|frame| drop(decoded.gray8(frame, &Window::default())));
                    "decoded".to_string()
                }
                Err(Unreadable::Dicom(DicomError::Panicked(message))) => format!("contained panic: {message}"),
                Err(error) => error.kind(),
            };
            done.send((name, outcome, started.elapsed())).unwrap();
        }
    });
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..count {
        let (name, outcome, took) =
            outcomes.recv_timeout(Duration::from_secs(20)).expect("an input took over 20 s: the decoder hangs");
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
        *kinds.entry(outcome).or_default() += 1;
    }
    worker.join().expect("no panic escapes the decoder");
    println!("{count} hostile inputs: {kinds:#?}");
    assert!(kinds.keys().any(|k| k.starts_with("truncated")) && kinds.keys().any(|k| k.starts_with("corrupt")));
}
