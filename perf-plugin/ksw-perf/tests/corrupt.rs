// SPDX-License-Identifier: GPL-2.0
//! Truncated and corrupted copies of the fixtures: every failure must be an
//! error value naming a file offset, never a panic (a panic fails the test).

mod common;

use common::fixture_bytes;
use ksw_perf::check::decode_all;
use ksw_perf::read::{PerfFile, ReadError, Record};

fn assert_located(errors: &[ReadError], what: &str) {
    for e in errors {
        let msg = e.to_string();
        assert!(
            e.offset().is_some() && msg.contains("offset 0x"),
            "{what}: error without an offset: {msg}"
        );
        assert!(!msg.starts_with("perf.data: "), "{what}: {msg}");
    }
}

/// Interesting cut points: section and record boundaries, ±1.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let file = PerfFile::from_bytes(bytes.to_vec()).unwrap();
    let mut points = vec![0, 1, 7, 8, 16, 103, 104, 105];
    let (start, end) = file.data_range();
    points.extend([start as usize, end as usize]);
    for r in file.raw_records() {
        points.push(r.unwrap().offset as usize);
    }
    for (_, off, size) in file.feature_sections() {
        points.extend([off as usize, (off + size) as usize]);
    }
    let mut out = Vec::new();
    for p in points {
        out.extend([p.saturating_sub(1), p, p + 1]);
    }
    out.retain(|&p| p < bytes.len());
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn truncated_files_fail_with_offsets() {
    for scenario in ["silent", "many", "graph"] {
        let bytes = fixture_bytes(&format!("{scenario}.perf.data"));
        let mut cuts = boundaries(&bytes);
        cuts.extend((0..bytes.len()).step_by(29));
        cuts.extend(bytes.len() - 64..bytes.len());
        for cut in cuts {
            let errors = decode_all(bytes[..cut].to_vec());
            assert!(
                !errors.is_empty(),
                "{scenario} cut at {cut} of {} read without error",
                bytes.len()
            );
            assert_located(&errors, &format!("{scenario} cut at {cut}"));
        }
        // The whole file reads cleanly.
        assert!(decode_all(bytes.clone()).is_empty());

        // The same cuts inside the data section of an "unfinished" file
        // (data.size 0: records run to the end of the file) reach the
        // record parser: a cut record is an error unless the cut falls on
        // a record boundary.
        let file = PerfFile::from_bytes(bytes.clone()).unwrap();
        let (start, end) = file.data_range();
        let record_starts: Vec<u64> = file.raw_records().map(|r| r.unwrap().offset).collect();
        for cut in (start as usize..end as usize).step_by(31) {
            let mut b = bytes[..cut].to_vec();
            b[48..56].copy_from_slice(&0u64.to_le_bytes());
            let errors = decode_all(b);
            assert_located(&errors, &format!("{scenario} unfinished, cut at {cut}"));
            if !record_starts.contains(&(cut as u64)) {
                assert!(!errors.is_empty(), "{scenario} unfinished, cut at {cut}");
            }
        }
    }
}

/// xorshift64*: deterministic, so failures can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, bytes: &mut [u8]) {
    let n = 1 + rng.below(4);
    for _ in 0..n {
        let i = rng.below(bytes.len());
        bytes[i] = match rng.below(5) {
            0 => 0,
            1 => 0xff,
            2 => bytes[i] ^ (1 << rng.below(8)),
            3 => bytes[i].wrapping_add(1),
            _ => rng.next() as u8,
        };
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    for (k, scenario) in ["silent", "many", "graph"].into_iter().enumerate() {
        let bytes = fixture_bytes(&format!("{scenario}.perf.data"));
        let mut rng = Rng(0x5eed_0000_0000_0001 + k as u64);
        let mut failures = 0;
        for round in 0..1500 {
            let mut b = bytes.clone();
            mutate(&mut rng, &mut b);
            let errors = decode_all(b);
            failures += usize::from(!errors.is_empty());
            assert_located(&errors, &format!("{scenario} round {round}"));
        }
        // Most single-byte hits land in padding or values; some must be caught.
        assert!(failures > 0, "{scenario}: no corruption was detected");
    }
}

#[test]
fn every_header_and_attr_byte() {
    let bytes = fixture_bytes("silent.perf.data");
    // Header, ids, attrs: everything before the data section.
    for i in 0..744 {
        for v in [0u8, 0xff, bytes[i] ^ 0x80, bytes[i] ^ 1] {
            let mut b = bytes.clone();
            b[i] = v;
            assert_located(&decode_all(b), &format!("byte {i} = {v:#x}"));
        }
    }
}

#[test]
fn every_sample_byte() {
    let bytes = fixture_bytes("silent.perf.data");
    let file = PerfFile::from_bytes(bytes.clone()).unwrap();
    let samples: Vec<(usize, usize)> = file
        .raw_records()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == ksw_perf::abi::record_type::SAMPLE)
        .map(|r| (r.offset as usize, r.bytes.len()))
        .collect();
    assert_eq!(samples.len(), 3);
    for (start, len) in samples {
        for i in start..start + len {
            for v in [0u8, 0xff, bytes[i] ^ 0x10] {
                let mut b = bytes.clone();
                b[i] = v;
                assert_located(&decode_all(b), &format!("sample byte {i} = {v:#x}"));
            }
        }
    }
}

#[test]
fn error_messages() {
    let bytes = fixture_bytes("silent.perf.data");
    let file = PerfFile::from_bytes(bytes.clone()).unwrap();
    let (start, end) = file.data_range();

    // A record whose size runs past the data section.
    let mut b = bytes.clone();
    b[start as usize + 6..start as usize + 8].copy_from_slice(&0xfff8u16.to_le_bytes());
    let f = PerfFile::from_bytes(b).unwrap();
    let e = f.records().find_map(Result::err).unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "record at offset {start:#x} claims 65528 bytes, only {} left",
            end - start
        )
    );
    assert_eq!(e.offset(), Some(start));
    // Iteration stops after a framing error.
    assert_eq!(f.records().count(), 1);

    // A record smaller than its header.
    let mut b = bytes.clone();
    b[start as usize + 6..start as usize + 8].copy_from_slice(&4u16.to_le_bytes());
    let f = PerfFile::from_bytes(b).unwrap();
    let e = f.records().next().unwrap().unwrap_err();
    assert!(
        e.to_string()
            .contains("size 4 is smaller than its 8-byte header"),
        "{e}"
    );

    // The file cut inside the data section.
    let e = PerfFile::from_bytes(bytes[..5000].to_vec()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "data section at offset {start:#x} needs {} bytes, only {} left",
            end - start,
            5000 - start
        )
    );

    // Not perf.data; pipe mode; big-endian.
    let e = PerfFile::from_bytes(b"hello world, this is not perf data".to_vec()).unwrap_err();
    assert!(e.to_string().contains("no PERFILE2 magic"), "{e}");
    let mut pipe = b"PERFILE2".to_vec();
    pipe.extend_from_slice(&16u64.to_le_bytes());
    let e = PerfFile::from_bytes(pipe).unwrap_err();
    assert!(e.to_string().contains("pipe-mode"), "{e}");
    let mut be = b"2ELIFREP".to_vec();
    be.extend_from_slice(&[0; 96]);
    let e = PerfFile::from_bytes(be).unwrap_err();
    assert!(e.to_string().contains("big-endian"), "{e}");
    let e = PerfFile::from_bytes(Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "perf.data magic at offset 0x0 needs 8 bytes, only 0 left"
    );
    let e = PerfFile::open("/nonexistent/perf.data").unwrap_err();
    assert!(e.offset().is_none());
    assert!(e.to_string().contains("/nonexistent/perf.data"), "{e}");

    // A sample whose raw data is too short for its format.
    let raw = file
        .raw_records()
        .map(|r| r.unwrap())
        .find(|r| r.kind == ksw_perf::abi::record_type::SAMPLE)
        .unwrap();
    let mut s = match file.parse_record(&raw).unwrap() {
        Record::Sample(s) => s,
        other => panic!("{other:?}"),
    };
    let short = &s.raw[..20];
    s.raw = short;
    let e = s.u64("value").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "sample at offset {:#x} (kstackwatch:ksw_arm): field `value` at bytes 40..48 is outside the 20-byte record",
            raw.offset
        )
    );
}

#[test]
fn unfinished_file_reads_to_the_end() {
    // perf record killed before it rewrote the header: data.size is 0 and
    // there are no features; records run to the end of the file.
    let bytes = fixture_bytes("silent.perf.data");
    let file = PerfFile::from_bytes(bytes.clone()).unwrap();
    let (_, end) = file.data_range();
    let mut b = bytes[..end as usize].to_vec();
    b[48..56].copy_from_slice(&0u64.to_le_bytes());
    let f = PerfFile::from_bytes(b).unwrap();
    assert!(f.tracing_data().is_none());
    assert_eq!(f.samples().count(), 3);
    // Without tracing data, samples have no format, and say so.
    let s = f.samples().next().unwrap().unwrap();
    let e = s.u64("id").unwrap_err();
    assert!(e.to_string().contains("no tracepoint format"), "{e}");
}
