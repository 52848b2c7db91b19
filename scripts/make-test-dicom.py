#!/usr/bin/env python3
"""Writes the DICOM files the tests read, and what pydicom says their pixels are.

    make-test-dicom.py OUTDIR

OUTDIR/cases/     one file per case (syntaxes, bit depths, photometric interpretations, objects
                  without pixel data, broken files), some without an extension
OUTDIR/tree/      a dataset of two classes nested Class/Patient/Study/Series/IMnnnn, as a PACS
                  export is, with a DICOMDIR and a report among the images
OUTDIR/expected.json
    "cases": {file: {window: [[8-bit values, row-major] per frame]}}: the gray levels, from
             pydicom's apply_modality_lut and apply_voi_lut (windows) or numpy (minmax,
             percentile), on the clean stored values (before junk bits are added)
    "skipped": {file: the start of the reason the file is not used}
    "patients": the names and IDs written, which no output may contain

Needs pydicom and imagecodecs (scripts/setup-test-python.sh installs them).
"""

import json
import sys
from copy import deepcopy
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence
from pydicom.uid import (
    RLELossless,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    generate_uid,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
CR = "1.2.840.10008.5.1.4.1.1.1"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"

# Distinctive, so that a test can search every output for them.
PATIENT_NAME = "Quixotic^Zelda"
PATIENT_IDS = ["ZQX-4417-A", "ZQX-4417-B", "ZQX-4417-C", "ZQX-4417-D", "ZQX-4417-E"]

# fastai's lungs preset (width 1500, level -600) and a custom level,width.
PRESETS = {"lungs": (-600.0, 1500.0), "40,400": (40.0, 400.0)}
SIDE = 24
rng = np.random.default_rng(7)


def ct_hounsfield(side=SIDE, seed=0):
    """A CT-like slice in HU: padding -2000 outside a disc of tissue, lungs, bone, noise."""
    y, x = np.mgrid[0:side, 0:side]
    r = np.hypot(x - side / 2, y - side / 2) / (side / 2)
    hu = np.full((side, side), -2000.0)
    hu[r < 0.95] = 40.0
    hu[(r < 0.6) & (x < side / 2)] = -800.0
    hu[(r > 0.8) & (r < 0.95)] = 700.0
    noise = np.random.default_rng(seed).integers(-30, 31, (side, side))
    return (hu + noise).astype(np.int32)


def dataset(sop_class, modality, patient=0, study=None, series=None):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_IDS[patient]
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    # What a DICOMDIR's study, series and image records need.
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240102", "101500", "1"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    return ds


def set_pixels(ds, stored, bits_stored, signed, photometric="MONOCHROME2", raw=None):
    """Stores `stored` (frames, rows, cols) or (rows, cols) as 16-bit (8-bit for 8 stored bits)."""
    frames = stored.shape[0] if stored.ndim == 3 else 1
    ds.Rows, ds.Columns = stored.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = {(8, False): np.uint8, (16, False): np.uint16, (16, True): np.int16}[(ds.BitsAllocated, signed)]
    ds.PixelData = (raw if raw is not None else stored.astype(dtype)).tobytes()


def gray(values, y_range):
    """Values in `y_range` to 0..255, rounding halves up as the decoder does."""
    low, high = y_range
    return np.clip(np.floor((values - low) / (high - low) * 255 + 0.5), 0, 255).astype(int)


def windowed(ds, stored, index=0, invert=False):
    """pydicom's apply_modality_lut then apply_voi_lut (window `index`), as 8-bit gray."""
    modality = apply_modality_lut(stored, ds)
    out = apply_voi_lut(modality, ds, index=index)
    y_range = apply_voi_lut(np.array([-1e9, 1e9]), ds, index=index)
    levels = gray(out, y_range)
    return 255 - levels if invert else levels


def with_window(ds, level, width):
    copy = deepcopy(ds)
    copy.WindowCenter, copy.WindowWidth = level, width
    if "VOILUTFunction" in copy:
        del copy.VOILUTFunction
    return copy


def min_max(values, invert=False):
    levels = gray(values.astype(float), (values.min(), values.max()))
    return 255 - levels if invert else levels


def percentile(values, low, high):
    return gray(values.astype(float), tuple(np.percentile(values, [low, high])))


def frames_of(levels):
    """[[row-major values] per frame]"""
    levels = np.asarray(levels)
    return [f.ravel().tolist() for f in (levels if levels.ndim == 3 else levels[None])]


def save(ds, path, syntax=ExplicitVRLittleEndian):
    ds.file_meta.TransferSyntaxUID = syntax
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def encapsulated(ds, frames, syntax):
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax


def write_cases(out):
    cases, skipped = {}, {}

    # Signed 16-bit CT, rescale intercept -1024, two windows; stored values go below 0.
    hu = ct_hounsfield()
    stored = (hu + 1024).astype(np.int16)
    ds = dataset(CT, "CT")
    set_pixels(ds, stored, 16, signed=True)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    save(ds, out / "ct_signed.dcm")
    expected = {"file": frames_of(windowed(ds, stored)), "file:2": frames_of(windowed(ds, stored, index=1))}
    for name, (level, width) in PRESETS.items():
        expected[name] = frames_of(windowed(with_window(ds, level, width), stored))
    expected["minmax"] = frames_of(min_max(hu))
    expected["percentile:0.5,99.5"] = frames_of(percentile(hu, 0.5, 99.5))
    cases["ct_signed.dcm"] = expected

    # The same slice compressed and encoded every way the decoder reads; expected: the same.
    for name, syntax in [
        ("ct_rle.dcm", RLELossless),
        ("ct_deflated.dcm", DeflatedExplicitVRLittleEndian),
        ("ct_big_endian.dcm", ExplicitVRBigEndian),
        ("ct_implicit", ImplicitVRLittleEndian),
        ("ct_jpeg_lossless.dcm", JPEGLosslessSV1),
        ("ct_j2k.dcm", JPEG2000Lossless),
    ]:
        copy = deepcopy(ds)
        if syntax == RLELossless:
            copy.compress(RLELossless, stored, encoding_plugin="pydicom")
        elif syntax == ExplicitVRBigEndian:
            # pydicom writes OW bytes as they are: give them in big-endian order.
            copy.PixelData = stored.astype(">i2").tobytes()
        elif syntax == JPEGLosslessSV1:
            # Lossless JPEG of the 16 stored bits as unsigned samples; the decoder restores the sign.
            frame = imagecodecs.jpeg_encode(stored.view(np.uint16), lossless=True, predictor=1, bitspersample=16)
            encapsulated(copy, [frame], syntax)
        elif syntax == JPEG2000Lossless:
            encapsulated(copy, [imagecodecs.jpeg2k_encode(stored, level=0, codecformat="j2k")], syntax)
        save(copy, out / name, syntax)
        cases[name] = {"file": expected["file"]}

    # 12-bit MR without a window, junk in the 4 bits above BitsStored: min-max of the clean values.
    clean = rng.integers(0, 4096, (SIDE, SIDE)).astype(np.uint16)
    clean[:4] = 300
    junk = rng.integers(0, 16, (SIDE, SIDE)).astype(np.uint16) << 12
    ds = dataset(MR, "MR", patient=1)
    set_pixels(ds, clean, 12, signed=False, raw=clean | junk)
    save(ds, out / "mr_12bit.dcm")
    cases["mr_12bit.dcm"] = {"file": frames_of(min_max(clean)), "minmax": frames_of(min_max(clean))}

    # MONOCHROME1 radiograph: low values are white.
    stored = rng.integers(0, 1024, (SIDE, SIDE)).astype(np.uint16)
    ds = dataset(CR, "CR", patient=2)
    set_pixels(ds, stored, 10, signed=False, photometric="MONOCHROME1")
    ds.WindowCenter, ds.WindowWidth = 512, 1000
    save(ds, out / "cr_monochrome1.dcm")
    cases["cr_monochrome1.dcm"] = {"file": frames_of(windowed(ds, stored, invert=True))}

    # Rescale slope 0.25, intercept -100, window in rescaled units.
    stored = rng.integers(0, 65536, (SIDE, SIDE)).astype(np.uint16)
    ds = dataset(CT, "PT", patient=2)
    set_pixels(ds, stored, 16, signed=False)
    ds.RescaleSlope, ds.RescaleIntercept = 0.25, -100
    ds.WindowCenter, ds.WindowWidth = 8000, 6000
    save(ds, out / "slope.dcm")
    cases["slope.dcm"] = {"file": frames_of(windowed(ds, stored))}

    # A Modality LUT Sequence instead of rescale: 256 entries from stored value 100.
    stored = rng.integers(80, 380, (SIDE, SIDE)).astype(np.uint16)
    ds = dataset(SECONDARY_CAPTURE, "OT", patient=3)
    set_pixels(ds, stored, 12, signed=False)
    item = Dataset()
    item.LUTDescriptor = [256, 100, 16]
    item.ModalityLUTType = "US"
    item.LUTData = [int(v) for v in (np.arange(256) ** 2 // 16)]
    item["LUTData"].VR = "US"
    ds.ModalityLUTSequence = Sequence([item])
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    save(ds, out / "modality_lut.dcm")
    cases["modality_lut.dcm"] = {"file": frames_of(windowed(ds, stored))}

    # Five frames of one series, one window.
    hu = np.stack([ct_hounsfield(seed=s) + 100 * s for s in range(5)])
    stored = (hu + 1024).astype(np.int16)
    ds = dataset(CT, "CT", patient=4)
    set_pixels(ds, stored, 16, signed=True)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 100, 800
    save(ds, out / "multiframe.dcm")
    cases["multiframe.dcm"] = {"file": frames_of(windowed(ds, stored)), "minmax": frames_of([min_max(f) for f in hu])}

    # Enhanced CT: rescale and window per frame in the functional groups.
    frames = []
    ds = dataset(ENHANCED_CT, "CT", patient=4)
    per_frame = []
    stored = np.stack([(ct_hounsfield(seed=9) + 1024).astype(np.int16)] * 2)
    for intercept, center in [(-1024, 40), (-1000, 300)]:
        group, transform, voi = Dataset(), Dataset(), Dataset()
        transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = intercept, 1, "HU"
        voi.WindowCenter, voi.WindowWidth = center, 400
        group.PixelValueTransformationSequence = Sequence([transform])
        group.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(group)
        single = Dataset()
        single.RescaleIntercept, single.RescaleSlope = intercept, 1
        single.WindowCenter, single.WindowWidth = center, 400
        single.BitsStored, single.PixelRepresentation, single.PhotometricInterpretation = 16, 1, "MONOCHROME2"
        frames.append(windowed(single, stored[0]))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    set_pixels(ds, stored, 16, signed=True)
    save(ds, out / "enhanced_ct.dcm")
    cases["enhanced_ct.dcm"] = {"file": frames_of(np.stack(frames))}

    # RGB secondary capture: luma, not windowed.
    rgb = rng.integers(0, 256, (SIDE, SIDE, 3)).astype(np.uint8)
    ds = dataset(SECONDARY_CAPTURE, "OT", patient=3)
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = SIDE, SIDE, 3, "RGB"
    ds.PlanarConfiguration, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 0, 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    save(ds, out / "rgb.dcm")
    luma = np.floor(rgb @ np.array([0.2126, 0.7152, 0.0722]) + 0.5).astype(int)
    cases["rgb.dcm"] = {"file": frames_of(luma)}

    # Written without the 128-byte preamble and meta group: a bare implicit VR data set.
    ds = dataset(CT, "CT")
    set_pixels(ds, (ct_hounsfield() + 1024).astype(np.int16), 16, signed=True)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    del ds.file_meta
    ds.save_as(out / "IM_BARE", implicit_vr=True, little_endian=True)
    cases["IM_BARE"] = {"file": cases["ct_signed.dcm"]["file"]}

    # Not images, or not usable ones.
    sr = dataset(BASIC_TEXT_SR, "SR")
    sr.ValueType, sr.ContinuityOfContent = "CONTAINER", "SEPARATE"
    text = Dataset()
    text.RelationshipType, text.ValueType, text.TextValue = "CONTAINS", "TEXT", "No acute findings."
    sr.ContentSequence = Sequence([text])
    save(sr, out / "report.dcm")
    skipped["report.dcm"] = "no pixel data: SR document"

    pdf = dataset(ENCAPSULATED_PDF, "DOC")
    pdf.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    save(pdf, out / "letter.dcm")
    skipped["letter.dcm"] = "no pixel data: encapsulated document"

    fileset = FileSet()
    fileset.add(pydicom.dcmread(out / "ct_signed.dcm"))
    staging = out.parent / "fileset"
    fileset.write(staging)
    (out / "DICOMDIR").write_bytes((staging / "DICOMDIR").read_bytes())
    skipped["DICOMDIR"] = "no pixel data: DICOMDIR"

    whole = (out / "ct_signed.dcm").read_bytes()
    (out / "truncated.dcm").write_bytes(whole[: len(whole) - 300])
    skipped["truncated.dcm"] = "truncated DICOM"

    ds = dataset(CT, "CT")
    set_pixels(ds, clean, 12, signed=False)
    encapsulated(ds, [imagecodecs.jpegls_encode(clean)], JPEGLSLossless)
    save(ds, out / "jpeg_ls.dcm", JPEGLSLossless)
    skipped["jpeg_ls.dcm"] = "unsupported transfer syntax JPEG-LS Lossless"

    ds = dataset(CT, "CT")
    set_pixels(ds, clean, 12, signed=False)
    encapsulated(ds, [imagecodecs.jpeg_encode(clean, level=90, bitspersample=12)], JPEGExtended12Bit)
    save(ds, out / "jpeg_12bit.dcm", JPEGExtended12Bit)
    skipped["jpeg_12bit.dcm"] = "cannot decode the JPEG Extended"

    return cases, skipped


def stripes(horizontal, seed):
    """A CT-like 16x16 slice in HU: bright bone stripes, horizontal or vertical, on tissue."""
    y, x = np.mgrid[0:16, 0:16]
    along = y if horizontal else x
    noise = np.random.default_rng(seed).integers(-40, 41, (16, 16))
    return np.where((along // 2) % 2 == 0, 900, -100) + noise


def write_tree(out):
    """Class/Patient/Study/Series/IMnnnn; patients 0-3 have images in both classes."""
    for class_index, (name, horizontal) in enumerate([("Horizontal", True), ("Vertical", False)]):
        for patient in range(4):
            study = generate_uid()
            series = generate_uid()
            for image in range(6):
                hu = stripes(horizontal, seed=1000 * class_index + 10 * patient + image)
                ds = dataset(CT, "CT", patient=patient, study=study, series=series)
                set_pixels(ds, (hu + 1024).astype(np.int16), 16, signed=True)
                ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
                ds.WindowCenter, ds.WindowWidth = 400, 1200
                save(ds, out / name / f"PAT{patient}" / f"ST{patient}" / "SE1" / f"IM{image:04d}")
        # One multi-frame series of patient 4, only in this class: 3 images.
        hu = np.stack([stripes(horizontal, seed=500 + class_index * 10 + f) for f in range(3)])
        ds = dataset(CT, "CT", patient=4)
        set_pixels(ds, (hu + 1024).astype(np.int16), 16, signed=True)
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 400, 1200
        save(ds, out / name / "PAT4" / "ST9" / "SE1" / f"MF{class_index}")
    for name in ["report.dcm", "DICOMDIR"]:
        (out / "Horizontal" / name).write_bytes((out.parent / "cases" / name).read_bytes())


def main():
    out = Path(sys.argv[1])
    cases, skipped = write_cases(out / "cases")
    write_tree(out / "tree")
    patients = {"names": [PATIENT_NAME, *PATIENT_NAME.split("^")], "ids": PATIENT_IDS}
    expected = {"cases": cases, "skipped": skipped, "patients": patients}
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
