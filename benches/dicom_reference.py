#!/usr/bin/env python3
"""The DICOM benchmark's data and its pydicom reference (benches/dicom.rs runs both).

    dicom_reference.py make ARCHIVE OUT COUNT
        Writes COUNT CT-like DICOM files made from MedNIST.tar.gz's JPEGs, taken in turn from
        each class, to OUT/<Class>/<name>.dcm: signed 16-bit, stored = 8 * gray, rescale
        intercept -1024 (so -1024..1016 HU), two windows (40/400 first).
    dicom_reference.py decode OUT
        Reads every OUT/*/*.dcm with pydicom and numpy as the learner does, in one process:
        stored values, modality LUT, the file's first window (DICOM's linear VOI), 8-bit gray.
        Prints the number of images and the seconds the loop took.
"""

import glob
import os
import sys
import tarfile
import time

import imagecodecs
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def make(archive, out, count):
    by_class = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and member.name.endswith(".jpeg") and len(parts) >= 3:
                by_class.setdefault(parts[-2], []).append((parts[-1], tar.extractfile(member).read()))
    classes = sorted(by_class)
    picked = []
    while len(picked) < count:
        for name in classes:
            if by_class[name] and len(picked) < count:
                picked.append((name, *by_class[name].pop(0)))
    for class_name, file_name, jpeg in picked:
        gray = imagecodecs.jpeg8_decode(jpeg)
        if gray.ndim == 3:
            gray = gray[..., 0]
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.Modality, ds.PatientID = "CT", f"BENCH-{len(file_name) % 97}"
        ds.Rows, ds.Columns = gray.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
        ds.PixelData = (gray.astype(np.int16) * 8).tobytes()
        folder = os.path.join(out, class_name)
        os.makedirs(folder, exist_ok=True)
        ds.save_as(os.path.join(folder, file_name.replace(".jpeg", ".dcm")), enforce_file_format=True)


def window_linear(values, center, width):
    """DICOM's linear VOI (PS3.3 C.11.2.1.2.1) to 0..255."""
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    y = np.where(values <= low, 0, np.where(values > high, 255, y))
    return np.floor(y + 0.5).astype(np.uint8)


def decode(out):
    paths = sorted(glob.glob(os.path.join(out, "*", "*.dcm")))
    started = time.perf_counter()
    for path in paths:
        ds = pydicom.dcmread(path)
        values = apply_modality_lut(ds.pixel_array, ds)
        center, width = ds.WindowCenter, ds.WindowWidth
        if isinstance(center, pydicom.multival.MultiValue):
            center, width = center[0], width[0]
        window_linear(values, float(center), float(width))
    print(len(paths), time.perf_counter() - started)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        decode(sys.argv[2])
