#!/usr/bin/env python3
"""Builds data/mednist-lesson.tar.gz, the small dataset compiled into mednist.

The lesson used a 1.9 MB zip of 1,800 images (300 per class). This takes the first
300 files by sorted name from each class of the full MedNIST archive and writes them
as MedNIST/<Class>/<file> into a reproducible tar.gz (fixed order, times and owners),
so running it again gives the same bytes.

usage: scripts/make-lesson-data.py [SOURCE_TAR_GZ] [OUTPUT]
"""
import gzip
import io
import sys
import tarfile

PER_CLASS = 300
source = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/MedNIST.tar.gz"
output = sys.argv[2] if len(sys.argv) > 2 else "data/mednist-lesson.tar.gz"

chosen = {}
with tarfile.open(source, "r:gz") as src:
    members = [m for m in src.getmembers() if m.isfile()]
    by_class = {}
    for m in members:
        parts = m.name.split("/")
        if len(parts) >= 2:
            by_class.setdefault(parts[-2], []).append(m)
    for cls, ms in sorted(by_class.items()):
        for m in sorted(ms, key=lambda m: m.name.split("/")[-1])[:PER_CLASS]:
            chosen[f"MedNIST/{cls}/{m.name.split('/')[-1]}"] = src.extractfile(m).read()

raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as out:
    for name in sorted(chosen):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(chosen[name]), 0, 0o644
        out.addfile(info, io.BytesIO(chosen[name]))
with open(output, "wb") as f:
    with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
print(f"wrote {output}: {len(chosen)} images from {len(set(n.split('/')[1] for n in chosen))} classes")
