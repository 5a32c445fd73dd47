#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Regenerate corpus-seed/ from perf-plugin/fixtures.

perf_data: silent.perf.data and many.perf.data as perf 6.1 wrote them.
event_format: for each kstackwatch event, one input per sample of it in
silent.perf.data: [byte order 0=little][u16 LE format length][format][raw].
(corpus-seed/perf_data/silent-samples.perf.data is not made here: it is the
samples-only rewrite of silent.perf.data by ksw-perf's Writer, the file
tests/roundtrip.rs writes.)
"""
import os
import shutil
import struct

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "..", "fixtures")
seed = os.path.join(here, "corpus-seed")

for name in ("silent", "many"):
    shutil.copy(os.path.join(fixtures, f"{name}.perf.data"),
                os.path.join(seed, "perf_data", f"{name}.perf.data"))

# Sample layout of the fixtures: IDENTIFIER IP TID TIME CPU PERIOD
# [CALLCHAIN] RAW (perf evlist -v).
data = open(os.path.join(fixtures, "silent.perf.data"), "rb").read()
data_off, data_size = struct.unpack_from("<QQ", data, 40)
formats = {}
for ev in ("ksw_arm", "ksw_hit", "ksw_disarm"):
    text = open(os.path.join(fixtures, f"{ev}.format"), "rb").read()
    ev_id = int(text.split(b"ID: ")[1].split(b"\n")[0])
    formats[ev_id] = (ev, text)
pos, end = data_off, data_off + data_size
while pos < end:
    kind, _misc, size = struct.unpack_from("<IHH", data, pos)
    if kind == 9:
        p = pos + 8 + 8 * 6  # id, ip, pid/tid, time, cpu/res, period
        nr, = struct.unpack_from("<Q", data, p)
        p += 8 + 8 * nr
        raw_size, = struct.unpack_from("<I", data, p)
        raw = data[p + 4:p + 4 + raw_size]
        common_type, = struct.unpack_from("<H", raw, 0)
        ev, text = formats[common_type]
        blob = bytes([0]) + struct.pack("<H", len(text)) + text + raw
        open(os.path.join(seed, "event_format", f"{ev}.bin"), "wb").write(blob)
    pos += size
