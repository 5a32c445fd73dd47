// SPDX-License-Identifier: GPL-2.0
//! Reading perf.data files (file mode, little-endian).
//!
//! # Layout
//!
//! As written by `tools/perf/util/header.c` (`perf_session__do_write_header`,
//! `perf_header__adds_write`) and read by `perf_session__read_header`,
//! `perf_file_header__read`, `perf_header__process_sections`:
//!
//! ```text
//! 0    struct perf_file_header (104 bytes)
//!        u64 magic "PERFILE2"     u64 size (104)     u64 attr_size (attr + 16)
//!        {u64 offset, size} attrs, data, event_types
//!        u64 adds_features[4]      (bitmap of HEADER_* feature sections)
//! ...  the ids of each attribute   (u64 arrays)
//! ...  attrs: n × { perf_event_attr (attr.size bytes), {u64 offset, size} ids }
//! ...  data: records, each { u32 type, u16 misc, u16 size } + payload
//! data.offset + data.size:
//!      one {u64 offset, size} per set feature bit, in bit order,
//!      then the feature payloads they point at
//! ```
//!
//! Feature payloads parsed here: `TRACING_DATA` ([`crate::tracing_data`]),
//! strings (`u32 len` padded to 64, NUL-padded) for `HOSTNAME`, `OSRELEASE`,
//! `VERSION`, `ARCH`, `CPUDESC`, `CPUID`; `NRCPUS` (`u32 avail, online`);
//! `TOTAL_MEM` (`u64`); `CMDLINE` (`u32 n` strings); `EVENT_DESC` (`u32 n,
//! u32 attr_size`, then per event the attr, `u32 nr_ids`, a string name,
//! `u64 ids[nr_ids]`); `SAMPLE_TIME` (`u64 first, last`); `CLOCKID` (`u64`
//! clock resolution in ns); `CLOCK_DATA` (`u32 version=1, u32 clockid,
//! u64 wall_clock_ns, u64 clockid_time_ns`). Other features are skipped.
//!
//! Records follow `include/uapi/linux/perf_event.h`. A `PERF_RECORD_SAMPLE`
//! holds, in this order and each only if its bit is in the event's
//! `sample_type`: `IDENTIFIER` id, `IP`, `TID` (u32 pid, tid), `TIME`,
//! `ADDR`, `ID`, `STREAM_ID`, `CPU` (u32 cpu, res), `PERIOD`, `CALLCHAIN`
//! (u64 nr, ips), `RAW` (u32 size, data). Other bits are rejected. Which
//! event a sample belongs to is found from its id, as perf's
//! `evlist__event2evsel` does (id 0, or a file with one event: the first).
//! Kernel records other than samples end, when the events have
//! `sample_id_all`, with a `sample_id` trailer: `TID`, `TIME`, `ID`,
//! `STREAM_ID`, `CPU`, `IDENTIFIER`, in that order.
//!
//! Not supported, with a clear error: pipe-mode files (`perf record -o -`),
//! big-endian files, the legacy `PERFFILE` format, zstd-compressed records
//! (`perf record -z`). A file whose header says `data.size == 0` (perf
//! record did not finish) is read up to its end, without feature sections.

use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::abi::{
    self, feature, misc, record_type, sample_type, ATTR_SIZE_VER0, FILE_HEADER_SIZE, PERF_MAGIC,
    PIPE_HEADER_SIZE,
};
use crate::attr::PerfEventAttr;
use crate::bytes::{nul_str, Cursor};
use crate::format::{DecodeError, EventFormat, FormatError, Value};
use crate::kallsyms::Kallsyms;
use crate::tracing_data::TracingData;

/// Why a perf.data file (or part of it) could not be read. Every variant
/// but [`ReadError::Io`] names the file offset of the problem; none names
/// the file (the caller knows it: `ksw` prefixes its path).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Something needs more bytes than its container has.
    #[error("{what} at offset {offset:#x} needs {need} bytes, only {left} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes there are.
        left: u64,
    },
    /// A record's size runs past the end of the data section.
    #[error("record at offset {offset:#x} claims {size} bytes, only {left} left")]
    RecordOverrun {
        /// Record start.
        offset: u64,
        /// Its claimed size.
        size: u64,
        /// Bytes left in the data section.
        left: u64,
    },
    /// A value makes no sense.
    #[error("{what} at offset {offset:#x}: {msg}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// Valid perf.data this crate does not handle.
    #[error("{what} at offset {offset:#x}: not supported: {msg}")]
    Unsupported {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// What is not supported.
        msg: String,
    },
    /// An event format in the tracing data does not parse.
    #[error("event format at offset {offset:#x} (system {system}): {source}")]
    Format {
        /// Start of the format text.
        offset: u64,
        /// Its trace system.
        system: String,
        /// The parse error.
        source: FormatError,
    },
    /// A tracepoint field of a sample could not be decoded.
    #[error("sample at offset {offset:#x} ({event}): {source}")]
    Field {
        /// Start of the sample record.
        offset: u64,
        /// `system:name` of its event.
        event: String,
        /// The decode error.
        source: DecodeError,
    },
}

impl ReadError {
    /// The file offset the error is about (`None` for I/O errors).
    pub fn offset(&self) -> Option<u64> {
        match self {
            ReadError::Io { .. } => None,
            ReadError::Truncated { offset, .. }
            | ReadError::RecordOverrun { offset, .. }
            | ReadError::Invalid { offset, .. }
            | ReadError::Unsupported { offset, .. }
            | ReadError::Format { offset, .. }
            | ReadError::Field { offset, .. } => Some(*offset),
        }
    }
}

/// One event of the file: its attribute, ids, name and tracepoint format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventAttr {
    /// The `perf_event_attr`.
    pub attr: PerfEventAttr,
    /// Sample ids that belong to this event.
    pub ids: Vec<u64>,
    /// Name from `EVENT_DESC` (e.g. `kstackwatch:ksw_hit`), else
    /// `system:name` of the tracepoint format.
    pub name: Option<String>,
    /// The tracepoint's format, for tracepoint events found in the tracing data.
    pub format: Option<EventFormat>,
}

/// One entry of the `EVENT_DESC` feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDesc {
    /// The attribute as stored there.
    pub attr: PerfEventAttr,
    /// Event name.
    pub name: String,
    /// Its ids.
    pub ids: Vec<u64>,
}

/// `NRCPUS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NrCpus {
    /// CPUs available (perf writes the highest present CPU + 1).
    pub available: u32,
    /// CPUs online.
    pub online: u32,
}

/// `CLOCK_DATA`: a pair of readings taken together, to convert sample
/// times (clock `clockid`) to wall-clock time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockData {
    /// Clock of the sample times (1 = `CLOCK_MONOTONIC`).
    pub clockid: u32,
    /// `CLOCK_REALTIME` in ns at the reference point.
    pub wall_clock_ns: u64,
    /// `clockid` time in ns at the same point.
    pub clockid_time_ns: u64,
}

/// The feature sections this crate understands (each `None` if absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `TRACING_DATA`.
    pub tracing_data: Option<TracingData>,
    /// `HOSTNAME`.
    pub hostname: Option<String>,
    /// `OSRELEASE`.
    pub os_release: Option<String>,
    /// `VERSION` (of the writing tool).
    pub version: Option<String>,
    /// `ARCH`.
    pub arch: Option<String>,
    /// `NRCPUS`.
    pub nr_cpus: Option<NrCpus>,
    /// `CPUDESC`.
    pub cpu_desc: Option<String>,
    /// `CPUID`.
    pub cpu_id: Option<String>,
    /// `TOTAL_MEM`, in kB.
    pub total_mem_kb: Option<u64>,
    /// `CMDLINE`: the recorder's argv (perf stores its own path first).
    pub cmdline: Option<Vec<String>>,
    /// `EVENT_DESC`.
    pub event_desc: Option<Vec<EventDesc>>,
    /// `SAMPLE_TIME`: first and last sample time.
    pub sample_time: Option<(u64, u64)>,
    /// `CLOCKID`: resolution of the sample clock in ns.
    pub clock_res_ns: Option<u64>,
    /// `CLOCK_DATA`.
    pub clock_data: Option<ClockData>,
    /// ksw's private [`feature::KSW_COUNTERS`]: the module's counters at
    /// the start and at the end of the recording, then (newer recordings)
    /// its /proc/kstackwatch text at the end, as `proc: ` lines.
    pub ksw_counters: Option<String>,
    /// Feature sections that could not be read (cut or corrupt): skipped,
    /// the samples do not depend on them.
    pub damaged: Vec<DamagedFeature>,
}

/// A feature section that was skipped because it could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedFeature {
    /// Its bit ([`feature`]).
    pub bit: u32,
    /// Where the problem is (its index entry or its payload).
    pub offset: u64,
    /// What was wrong (with the offset).
    pub error: String,
}

/// The `sample_id` fields of a record (a sample's own, or the trailer of a
/// non-sample record); each `None` if not in the event's `sample_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleId {
    /// Process id.
    pub pid: Option<i32>,
    /// Thread id.
    pub tid: Option<i32>,
    /// Time in ns.
    pub time: Option<u64>,
    /// Event id (from `ID` or `IDENTIFIER`).
    pub id: Option<u64>,
    /// Stream id.
    pub stream_id: Option<u64>,
    /// CPU.
    pub cpu: Option<u32>,
}

/// A `PERF_RECORD_SAMPLE`. Fields are `None` (or empty) when the event's
/// `sample_type` lacks them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample<'a> {
    /// File offset of the record.
    pub offset: u64,
    /// `perf_event_header.misc` (cpu mode in the low bits).
    pub misc: u16,
    /// Index of the event in [`PerfFile::attrs`].
    pub attr_index: usize,
    /// The tracepoint format of the event, if it is a known tracepoint.
    pub format: Option<&'a EventFormat>,
    /// `IP`.
    pub ip: Option<u64>,
    /// `TID`: process id.
    pub pid: Option<i32>,
    /// `TID`: thread id.
    pub tid: Option<i32>,
    /// `TIME` in ns.
    pub time: Option<u64>,
    /// `ADDR`.
    pub addr: Option<u64>,
    /// `ID` or `IDENTIFIER`.
    pub id: Option<u64>,
    /// `STREAM_ID`.
    pub stream_id: Option<u64>,
    /// `CPU`.
    pub cpu: Option<u32>,
    /// `PERIOD`.
    pub period: Option<u64>,
    /// `CALLCHAIN` exactly as recorded: `PERF_CONTEXT_*` markers
    /// ([`abi::callchain`]) are kept, so the chain can be written back
    /// unchanged; [`Sample::callchain_addresses`] strips them.
    pub callchain: Vec<u64>,
    /// `RAW`: the tracepoint record, padding included (common fields first).
    pub raw: &'a [u8],
}

impl<'a> Sample<'a> {
    /// `system:name` of the sample's tracepoint, if known.
    pub fn event_name(&self) -> Option<String> {
        self.format.map(EventFormat::full_name)
    }

    /// True if the sample is of tracepoint `system:name`.
    pub fn is_event(&self, system: &str, name: &str) -> bool {
        self.format
            .is_some_and(|f| f.system == system && f.name == name)
    }

    /// The callchain without `PERF_CONTEXT_*` markers.
    pub fn callchain_addresses(&self) -> Vec<u64> {
        self.callchain
            .iter()
            .copied()
            .filter(|&a| !abi::callchain::is_marker(a))
            .collect()
    }

    fn fmt_or_err(&self) -> Result<&'a EventFormat, ReadError> {
        self.format.ok_or_else(|| ReadError::Invalid {
            what: "sample",
            offset: self.offset,
            msg: "its event has no tracepoint format".to_string(),
        })
    }

    fn field_err(&self, f: &EventFormat, source: DecodeError) -> ReadError {
        ReadError::Field {
            offset: self.offset,
            event: f.full_name(),
            source,
        }
    }

    /// Decode tracepoint field `name` from the raw data.
    pub fn value(&self, name: &str) -> Result<Value<'a>, ReadError> {
        let f = self.fmt_or_err()?;
        f.value(self.raw, name).map_err(|e| self.field_err(f, e))
    }

    /// Integer tracepoint field `name` as a `u64`.
    pub fn u64(&self, name: &str) -> Result<u64, ReadError> {
        let f = self.fmt_or_err()?;
        crate::format::u64_of(f, self.raw, name).map_err(|e| self.field_err(f, e))
    }

    /// Integer tracepoint field `name` as an `i64`.
    pub fn i64(&self, name: &str) -> Result<i64, ReadError> {
        let f = self.fmt_or_err()?;
        crate::format::i64_of(f, self.raw, name).map_err(|e| self.field_err(f, e))
    }

    /// String tracepoint field `name`.
    pub fn str(&self, name: &str) -> Result<Cow<'a, str>, ReadError> {
        let f = self.fmt_or_err()?;
        crate::format::str_of(f, self.raw, name).map_err(|e| self.field_err(f, e))
    }
}

/// Sort samples by time, stably (samples without a time first).
pub fn sort_by_time(samples: &mut [Sample<'_>]) {
    samples.sort_by_key(|s| s.time);
}

/// `PERF_RECORD_COMM`: a task's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comm<'a> {
    /// Process id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// The name.
    pub comm: Cow<'a, str>,
    /// The name changed by exec (`PERF_RECORD_MISC_COMM_EXEC`).
    pub exec: bool,
    /// Trailer.
    pub sample_id: SampleId,
}

/// `PERF_RECORD_MMAP`: an executable mapping (perf synthesizes one for the
/// kernel, `[kernel.kallsyms]_text`, and one per module, `[name]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mmap<'a> {
    /// Process id (-1 for the kernel).
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// Start address.
    pub addr: u64,
    /// Length.
    pub len: u64,
    /// File offset (for the kernel map: the address of `_text`).
    pub pgoff: u64,
    /// File name.
    pub filename: Cow<'a, str>,
    /// `misc & PERF_RECORD_MISC_CPUMODE_MASK` (1 = kernel).
    pub cpumode: u16,
    /// Trailer.
    pub sample_id: SampleId,
}

/// What identifies an MMAP2 mapping's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mmap2Inode<'a> {
    /// Device and inode.
    Device {
        /// Major number.
        maj: u32,
        /// Minor number.
        min: u32,
        /// Inode.
        ino: u64,
        /// Inode generation.
        ino_generation: u64,
    },
    /// Build id (`PERF_RECORD_MISC_MMAP_BUILD_ID`).
    BuildId(&'a [u8]),
}

/// `PERF_RECORD_MMAP2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mmap2<'a> {
    /// The fields shared with MMAP.
    pub map: Mmap<'a>,
    /// Device/inode or build id.
    pub inode: Mmap2Inode<'a>,
    /// `PROT_*`.
    pub prot: u32,
    /// `MAP_*`.
    pub flags: u32,
}

/// `PERF_RECORD_LOST`: records lost in a ring buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    /// Id of the event whose buffer overflowed.
    pub id: u64,
    /// Number of records lost.
    pub lost: u64,
    /// Trailer.
    pub sample_id: SampleId,
}

/// `PERF_RECORD_LOST_SAMPLES`: samples dropped before reaching the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostSamples {
    /// Number of samples lost.
    pub lost: u64,
    /// Trailer.
    pub sample_id: SampleId,
}

/// A parsed record of the data section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// `PERF_RECORD_SAMPLE`.
    Sample(Sample<'a>),
    /// `PERF_RECORD_COMM`.
    Comm(Comm<'a>),
    /// `PERF_RECORD_MMAP`.
    Mmap(Mmap<'a>),
    /// `PERF_RECORD_MMAP2`.
    Mmap2(Mmap2<'a>),
    /// `PERF_RECORD_LOST`.
    Lost(Lost),
    /// `PERF_RECORD_LOST_SAMPLES`.
    LostSamples(LostSamples),
    /// `PERF_RECORD_FINISHED_ROUND`: records before it are time-ordered.
    FinishedRound,
    /// Any other record, unparsed.
    Other {
        /// `PERF_RECORD_*` type.
        kind: u32,
        /// Header misc bits.
        misc: u16,
        /// File offset.
        offset: u64,
        /// The whole record, header included.
        bytes: &'a [u8],
    },
}

/// A record as framed in the data section, not yet parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// File offset of its header.
    pub offset: u64,
    /// `perf_event_header.type`.
    pub kind: u32,
    /// `perf_event_header.misc`.
    pub misc: u16,
    /// The whole record, header included (for `AUXTRACE`, without the
    /// AUX data that follows it).
    pub bytes: &'a [u8],
}

impl<'a> RawRecord<'a> {
    /// The record without its 8-byte header.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(8..).unwrap_or(&[])
    }
}

/// The bytes of a perf.data file: owned, or any other holder (for
/// example a read-only memory mapping made by the caller).
pub type Source = Box<dyn AsRef<[u8]> + Send + Sync>;

/// A perf.data file held in memory (or mapped).
pub struct PerfFile {
    bytes: Source,
    attrs: Vec<EventAttr>,
    ids: FxHashMap<u64, usize>,
    data_start: u64,
    data_end: u64,
    feature_bits: [u64; 4],
    sections: Vec<(u32, u64, u64)>,
    features: Features,
}

fn invalid(what: &'static str, offset: u64, msg: impl Into<String>) -> ReadError {
    ReadError::Invalid {
        what,
        offset,
        msg: msg.into(),
    }
}

/// Check that `size` bytes at `offset` are inside a file of `len` bytes;
/// `at` is where the header field that gave them is.
fn check_section(
    what: &'static str,
    at: u64,
    offset: u64,
    size: u64,
    len: usize,
) -> Result<(), ReadError> {
    let len = len as u64;
    if offset > len {
        return Err(invalid(
            what,
            at,
            format!("section at {offset:#x} starts past the end of the {len}-byte file"),
        ));
    }
    if size > len - offset {
        return Err(ReadError::Truncated {
            what,
            offset,
            need: size,
            left: len - offset,
        });
    }
    Ok(())
}

impl std::fmt::Debug for PerfFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfFile")
            .field("len", &self.bytes().len())
            .field("attrs", &self.attrs)
            .field("data", &(self.data_start, self.data_end))
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl PerfFile {
    /// Read and parse a perf.data file.
    pub fn open(path: impl AsRef<Path>) -> Result<PerfFile, ReadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        PerfFile::from_bytes(bytes)
    }

    /// Parse a perf.data file held in memory: the header, attributes and
    /// feature sections. Records are parsed as they are iterated.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<PerfFile, ReadError> {
        PerfFile::from_source(Box::new(bytes))
    }

    /// [`PerfFile::from_bytes`] for bytes held elsewhere: only the header,
    /// attributes and feature sections are read now, so a mapped file's data
    /// section is touched only as records are iterated.
    pub fn from_source(source: Source) -> Result<PerfFile, ReadError> {
        let bytes: &[u8] = (*source).as_ref();
        let len = bytes.len();
        let mut c = Cursor::new(bytes, 0);
        let magic = c.u64("perf.data magic")?;
        if magic != PERF_MAGIC {
            let unsupported = |msg: &str| ReadError::Unsupported {
                what: "perf.data header",
                offset: 0,
                msg: msg.to_string(),
            };
            return Err(if magic == PERF_MAGIC.swap_bytes() {
                unsupported("big-endian file")
            } else if bytes.get(..8) == Some(b"PERFFILE") {
                unsupported("legacy PERFFILE format")
            } else {
                invalid(
                    "perf.data header",
                    0,
                    "no PERFILE2 magic: not a perf.data file",
                )
            });
        }
        let header_size = c.u64("header size")?;
        if header_size == PIPE_HEADER_SIZE {
            return Err(ReadError::Unsupported {
                what: "perf.data header",
                offset: 8,
                msg: "pipe-mode file (record with `-o FILE`, not to a pipe)".to_string(),
            });
        }
        const NO_FEATURES_HEADER_SIZE: u64 = 72;
        if header_size != FILE_HEADER_SIZE && header_size != NO_FEATURES_HEADER_SIZE {
            return Err(invalid(
                "perf.data header",
                8,
                format!("header size {header_size}, expected {FILE_HEADER_SIZE}"),
            ));
        }
        let attr_size = c.u64("attr size")?;
        let attrs_at = c.offset();
        let attrs_off = c.u64("attrs section")?;
        let attrs_size = c.u64("attrs section")?;
        let data_at = c.offset();
        let data_off = c.u64("data section")?;
        let data_size = c.u64("data section")?;
        let _event_types = (c.u64("event types section")?, c.u64("event types section")?);
        let mut feature_bits = [0u64; 4];
        if header_size == FILE_HEADER_SIZE {
            for w in &mut feature_bits {
                *w = c.u64("feature bitmap")?;
            }
        }
        // Bit 0 is HEADER_RESERVED: "always cleared".
        feature_bits[0] &= !1;

        check_section("attrs section", attrs_at, attrs_off, attrs_size, len)?;
        check_section("data section", data_at, data_off, data_size, len)?;
        if data_off < header_size {
            return Err(invalid(
                "data section",
                data_at,
                format!("starts at {data_off:#x}, inside the header"),
            ));
        }
        // An unfinished recording: data runs to the end, features unknown.
        let unfinished = data_size == 0;
        let data_end = if unfinished {
            len as u64
        } else {
            data_off + data_size
        };

        let attrs = read_attrs(bytes, attr_size, attrs_at, attrs_off, attrs_size)?;

        let mut file = PerfFile {
            attrs,
            ids: FxHashMap::default(),
            data_start: data_off,
            data_end,
            feature_bits: if unfinished { [0; 4] } else { feature_bits },
            sections: Vec::new(),
            features: Features::default(),
            bytes: Box::new(Vec::new()),
        };
        if !unfinished {
            // A damaged feature section is skipped and reported (the
            // samples do not need it), like perf does; only the tracing
            // data, without which no sample decodes, is required.
            let (sections, damaged) = read_feature_index(bytes, data_end, &feature_bits);
            file.features.damaged = damaged;
            for &(bit, off, size) in &sections {
                let sec = bytes
                    .get(off as usize..(off + size) as usize)
                    .unwrap_or(&[]);
                if let Err(e) = parse_feature(&mut file.features, bit, sec, off) {
                    if bit == feature::TRACING_DATA {
                        return Err(e);
                    }
                    file.features.damaged.push(DamagedFeature {
                        bit,
                        offset: e.offset().unwrap_or(off),
                        error: e.to_string(),
                    });
                }
            }
            if let Some(d) = file
                .features
                .damaged
                .iter()
                .find(|d| d.bit == feature::TRACING_DATA)
            {
                return Err(invalid(
                    "feature section index",
                    data_end,
                    format!("TRACING_DATA (the event formats) is damaged: {}", d.error),
                ));
            }
            file.sections = sections;
        }
        file.bytes = source;
        file.link_attrs();
        Ok(file)
    }

    /// Names, formats and the id → event map, once features are known.
    fn link_attrs(&mut self) {
        let desc = self.features.event_desc.as_deref().unwrap_or(&[]);
        let td = self.features.tracing_data.as_ref();
        for (i, a) in self.attrs.iter_mut().enumerate() {
            if a.attr.type_ == abi::event_type::TRACEPOINT {
                a.format = td.and_then(|td| td.event_by_id(a.attr.config)).cloned();
            }
            a.name = desc
                .get(i)
                .map(|d| d.name.clone())
                .or_else(|| a.format.as_ref().map(EventFormat::full_name));
            for &id in &a.ids {
                self.ids.entry(id).or_insert(i);
            }
        }
    }

    /// The events, in file order.
    pub fn attrs(&self) -> &[EventAttr] {
        &self.attrs
    }

    /// The index of the event that owns sample id `id`.
    pub fn attr_index_of_id(&self, id: u64) -> Option<usize> {
        self.ids.get(&id).copied()
    }

    /// The parsed feature sections.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// True if the header's feature bitmap has `bit` ([`abi::feature`]).
    pub fn has_feature(&self, bit: u32) -> bool {
        let w = (bit / 64) as usize;
        self.feature_bits
            .get(w)
            .is_some_and(|word| word >> (bit % 64) & 1 == 1)
    }

    /// The feature sections as `(bit, file offset, size)`, in bit order.
    pub fn feature_sections(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.sections.iter().copied()
    }

    /// The raw bytes of feature section `bit`.
    pub fn feature_section(&self, bit: u32) -> Option<&[u8]> {
        let &(_, off, size) = self.sections.iter().find(|s| s.0 == bit)?;
        (*self.bytes)
            .as_ref()
            .get(off as usize..(off + size) as usize)
    }

    /// The tracing data, if the file has it.
    pub fn tracing_data(&self) -> Option<&TracingData> {
        self.features.tracing_data.as_ref()
    }

    /// The format of tracepoint `system:name` from the tracing data.
    pub fn event_format(&self, system: &str, name: &str) -> Option<&EventFormat> {
        self.tracing_data()?.event(system, name)
    }

    /// The kallsyms copy of the tracing data as a symbol table (empty when
    /// perf wrote none, as perf 6.1 does).
    pub fn kallsyms(&self) -> Kallsyms {
        self.tracing_data()
            .map(TracingData::kallsyms)
            .unwrap_or_default()
    }

    /// The clock of sample times: the first event's `clockid` if it set
    /// `use_clockid`, else `CLOCK_DATA`'s.
    pub fn clockid(&self) -> Option<i32> {
        self.attrs
            .first()
            .and_then(|a| a.attr.clock())
            .or_else(|| self.features.clock_data.map(|c| c.clockid as i32))
    }

    /// File offsets of the data section: `[start, end)`.
    pub fn data_range(&self) -> (u64, u64) {
        (self.data_start, self.data_end)
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }

    /// Iterate the data section's records, framed but not parsed. A framing
    /// error (bad size) is returned once and ends the iteration.
    pub fn raw_records(&self) -> RawRecords<'_> {
        RawRecords {
            bytes: self.bytes(),
            pos: self.data_start,
            end: self.data_end,
            done: false,
        }
    }

    /// Iterate the data section's records in file order, parsed. A framing
    /// error ends the iteration; an error inside one record is returned and
    /// the iteration goes on with the next record.
    pub fn records(&self) -> Records<'_> {
        Records {
            file: self,
            raw: self.raw_records(),
        }
    }

    /// The samples, in file order (other records skipped, errors kept).
    pub fn samples(&self) -> impl Iterator<Item = Result<Sample<'_>, ReadError>> + '_ {
        self.records().filter_map(|r| match r {
            Ok(Record::Sample(s)) => Some(Ok(s)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    }

    /// All samples sorted by time (stable; see [`sort_by_time`]). Fails on
    /// the first bad record.
    pub fn samples_by_time(&self) -> Result<Vec<Sample<'_>>, ReadError> {
        let mut v = self.samples().collect::<Result<Vec<_>, _>>()?;
        sort_by_time(&mut v);
        Ok(v)
    }

    /// Parse one framed record.
    pub fn parse_record<'a>(&'a self, raw: &RawRecord<'a>) -> Result<Record<'a>, ReadError> {
        match raw.kind {
            record_type::SAMPLE => self.parse_sample(raw).map(Record::Sample),
            record_type::COMM => {
                let (body, sample_id) = self.split_trailer(raw)?;
                let mut c = Cursor::new(body, raw.offset + 8);
                let pid = c.u32("COMM pid")? as i32;
                let tid = c.u32("COMM tid")? as i32;
                Ok(Record::Comm(Comm {
                    pid,
                    tid,
                    comm: nul_str(c.rest()),
                    exec: raw.misc & misc::COMM_EXEC != 0,
                    sample_id,
                }))
            }
            record_type::MMAP => {
                let (body, sample_id) = self.split_trailer(raw)?;
                let mut c = Cursor::new(body, raw.offset + 8);
                let mut map = mmap_head(&mut c, raw.misc, sample_id)?;
                map.filename = nul_str(c.rest());
                Ok(Record::Mmap(map))
            }
            record_type::MMAP2 => {
                let (body, sample_id) = self.split_trailer(raw)?;
                let mut c = Cursor::new(body, raw.offset + 8);
                let mut map = mmap_head(&mut c, raw.misc, sample_id)?;
                let inode = if raw.misc & misc::MMAP_BUILD_ID != 0 {
                    let n = c.u8("MMAP2 build id size")?;
                    c.skip(3, "MMAP2 reserved")?;
                    let id = c.take(20, "MMAP2 build id")?;
                    Mmap2Inode::BuildId(id.get(..usize::from(n).min(20)).unwrap_or(id))
                } else {
                    Mmap2Inode::Device {
                        maj: c.u32("MMAP2 maj")?,
                        min: c.u32("MMAP2 min")?,
                        ino: c.u64("MMAP2 ino")?,
                        ino_generation: c.u64("MMAP2 ino_generation")?,
                    }
                };
                let prot = c.u32("MMAP2 prot")?;
                let flags = c.u32("MMAP2 flags")?;
                map.filename = nul_str(c.rest());
                Ok(Record::Mmap2(Mmap2 {
                    map,
                    inode,
                    prot,
                    flags,
                }))
            }
            record_type::LOST => {
                let (body, sample_id) = self.split_trailer(raw)?;
                let mut c = Cursor::new(body, raw.offset + 8);
                Ok(Record::Lost(Lost {
                    id: c.u64("LOST id")?,
                    lost: c.u64("LOST count")?,
                    sample_id,
                }))
            }
            record_type::LOST_SAMPLES => {
                let (body, sample_id) = self.split_trailer(raw)?;
                let mut c = Cursor::new(body, raw.offset + 8);
                Ok(Record::LostSamples(LostSamples {
                    lost: c.u64("LOST_SAMPLES count")?,
                    sample_id,
                }))
            }
            record_type::FINISHED_ROUND => Ok(Record::FinishedRound),
            record_type::COMPRESSED => Err(ReadError::Unsupported {
                what: "record",
                offset: raw.offset,
                msg: "zstd-compressed records (record without -z)".to_string(),
            }),
            _ => Ok(Record::Other {
                kind: raw.kind,
                misc: raw.misc,
                offset: raw.offset,
                bytes: raw.bytes,
            }),
        }
    }

    /// Which event a record with this id belongs to, as perf's
    /// `evlist__event2evsel`: the only one, the first for id 0, else by id.
    fn attr_for_id(&self, id: u64) -> Option<usize> {
        if self.attrs.len() == 1 || id == 0 {
            return Some(0);
        }
        self.attr_index_of_id(id)
    }

    /// Split a kernel record's payload into body and `sample_id` trailer.
    fn split_trailer<'a>(&self, raw: &RawRecord<'a>) -> Result<(&'a [u8], SampleId), ReadError> {
        let payload = raw.payload();
        let Some(first) = self.attrs.first() else {
            return Ok((payload, SampleId::default()));
        };
        if raw.kind >= record_type::USER_TYPE_START || !first.attr.sample_id_all() {
            return Ok((payload, SampleId::default()));
        }
        let idx = match first.attr.trailer_id_pos() {
            Some(p) if self.attrs.len() > 1 => payload
                .len()
                .checked_sub(8 * p)
                .and_then(|o| payload.get(o..o + 8))
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .and_then(|id| self.attr_for_id(id))
                .unwrap_or(0),
            _ => 0,
        };
        let attr = self.attrs.get(idx).map_or(&first.attr, |a| &a.attr);
        let n = 8 * attr.sample_id_len();
        let Some(body_len) = payload.len().checked_sub(n) else {
            return Err(invalid(
                "record",
                raw.offset,
                format!(
                    "type {} is {} bytes, too short for its {n}-byte sample_id trailer",
                    raw.kind,
                    raw.bytes.len()
                ),
            ));
        };
        let (body, trailer) = payload.split_at(body_len);
        let mut c = Cursor::new(trailer, raw.offset + 8 + body_len as u64);
        let st = attr.sample_type;
        let mut sid = SampleId::default();
        if st & sample_type::TID != 0 {
            sid.pid = Some(c.u32("sample_id pid")? as i32);
            sid.tid = Some(c.u32("sample_id tid")? as i32);
        }
        if st & sample_type::TIME != 0 {
            sid.time = Some(c.u64("sample_id time")?);
        }
        if st & sample_type::ID != 0 {
            sid.id = Some(c.u64("sample_id id")?);
        }
        if st & sample_type::STREAM_ID != 0 {
            sid.stream_id = Some(c.u64("sample_id stream_id")?);
        }
        if st & sample_type::CPU != 0 {
            sid.cpu = Some(c.u32("sample_id cpu")?);
            c.skip(4, "sample_id cpu res")?;
        }
        if st & sample_type::IDENTIFIER != 0 {
            sid.id = Some(c.u64("sample_id identifier")?);
        }
        Ok((body, sid))
    }

    fn parse_sample<'a>(&'a self, raw: &RawRecord<'a>) -> Result<Sample<'a>, ReadError> {
        let payload = raw.payload();
        let base = raw.offset + 8;
        let Some(first) = self.attrs.first() else {
            return Err(invalid(
                "sample",
                raw.offset,
                "the file has no event attributes",
            ));
        };
        let idx = if self.attrs.len() == 1 {
            0
        } else {
            let Some(pos) = first.attr.sample_id_pos() else {
                return Err(ReadError::Unsupported {
                    what: "sample",
                    offset: raw.offset,
                    msg: format!(
                        "{} events but sample_type has neither ID nor IDENTIFIER",
                        self.attrs.len()
                    ),
                });
            };
            let mut c = Cursor::new(payload, base);
            c.skip(8 * pos as u64, "sample fields before id")?;
            let id = c.u64("sample id")?;
            self.attr_for_id(id).ok_or_else(|| {
                invalid("sample", raw.offset, format!("id {id} belongs to no event"))
            })?
        };
        let ea = self.attrs.get(idx).unwrap_or(first);
        let st = ea.attr.sample_type;
        let unsupported = st & !sample_type::SUPPORTED;
        if unsupported != 0 {
            let bit = unsupported & unsupported.wrapping_neg();
            return Err(ReadError::Unsupported {
                what: "sample",
                offset: raw.offset,
                msg: format!(
                    "sample_type bit {} ({bit:#x}) of event {}",
                    sample_type::name(bit),
                    ea.name.as_deref().unwrap_or("?")
                ),
            });
        }
        let mut s = Sample {
            offset: raw.offset,
            misc: raw.misc,
            attr_index: idx,
            format: ea.format.as_ref(),
            ..Sample::default()
        };
        // The fields before CALLCHAIN are 8 bytes each (TID and CPU two
        // u32s): one bounds check for all of them, then plain loads. This
        // runs for every sample of a recording.
        let fixed = 8 * (st & FIXED_SAMPLE_FIELDS).count_ones() as usize;
        let Some(head) = payload.get(..fixed) else {
            return Err(ReadError::Truncated {
                what: "sample fields",
                offset: base,
                need: fixed as u64,
                left: payload.len() as u64,
            });
        };
        let mut words = head
            .chunks_exact(8)
            .map(|w| w.try_into().map_or(0, u64::from_le_bytes));
        let mut next = |bit: u64| (st & bit != 0).then(|| words.next().unwrap_or(0));
        s.id = next(sample_type::IDENTIFIER);
        s.ip = next(sample_type::IP);
        if let Some(w) = next(sample_type::TID) {
            s.pid = Some(w as u32 as i32);
            s.tid = Some((w >> 32) as u32 as i32);
        }
        s.time = next(sample_type::TIME);
        s.addr = next(sample_type::ADDR);
        if let Some(id) = next(sample_type::ID) {
            s.id = Some(id);
        }
        s.stream_id = next(sample_type::STREAM_ID);
        s.cpu = next(sample_type::CPU).map(|w| w as u32);
        s.period = next(sample_type::PERIOD);
        let mut c = Cursor::new(payload, base);
        c.skip(fixed as u64, "sample fields")?;
        if st & sample_type::CALLCHAIN != 0 {
            let nr = c.u64("callchain length")?;
            let need = nr.saturating_mul(8);
            let at = c.offset();
            let ips = c
                .take(need, "callchain")
                .map_err(|_| ReadError::Truncated {
                    what: "callchain",
                    offset: at,
                    need,
                    left: c.left() as u64,
                })?;
            s.callchain = ips
                .chunks_exact(8)
                .filter_map(|b| b.try_into().ok().map(u64::from_le_bytes))
                .collect();
        }
        if st & sample_type::RAW != 0 {
            let n = c.u32("raw size")?;
            s.raw = c.take(u64::from(n), "raw data")?;
        }
        Ok(s)
    }
}

/// The `sample_type` fields that come before CALLCHAIN, in record order,
/// each 8 bytes.
const FIXED_SAMPLE_FIELDS: u64 = sample_type::IDENTIFIER
    | sample_type::IP
    | sample_type::TID
    | sample_type::TIME
    | sample_type::ADDR
    | sample_type::ID
    | sample_type::STREAM_ID
    | sample_type::CPU
    | sample_type::PERIOD;

fn mmap_head<'a>(
    c: &mut Cursor<'a>,
    misc_bits: u16,
    sample_id: SampleId,
) -> Result<Mmap<'a>, ReadError> {
    Ok(Mmap {
        pid: c.u32("MMAP pid")? as i32,
        tid: c.u32("MMAP tid")? as i32,
        addr: c.u64("MMAP addr")?,
        len: c.u64("MMAP len")?,
        pgoff: c.u64("MMAP pgoff")?,
        filename: Cow::Borrowed(""),
        cpumode: misc_bits & misc::CPUMODE_MASK,
        sample_id,
    })
}

fn read_attrs(
    bytes: &[u8],
    attr_size: u64,
    attrs_at: u64,
    off: u64,
    size: u64,
) -> Result<Vec<EventAttr>, ReadError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let min = u64::from(ATTR_SIZE_VER0) + 16;
    if attr_size < min || attr_size > 4096 {
        return Err(invalid(
            "perf.data header",
            16,
            format!("attr_size {attr_size} is not in {min}..=4096"),
        ));
    }
    let n = size / attr_size;
    let mut attrs = Vec::new();
    for i in 0..n {
        let at = off + i * attr_size;
        let entry = bytes
            .get(at as usize..(at + attr_size) as usize)
            .ok_or_else(|| invalid("attrs section", attrs_at, "entry outside the file"))?;
        let mut c = Cursor::new(entry, at);
        c.skip(4, "attr type")?;
        let mut sz = c.u32("attr size")?;
        if sz == 0 {
            sz = ATTR_SIZE_VER0;
        }
        if sz < ATTR_SIZE_VER0 || u64::from(sz) + 16 != attr_size {
            return Err(invalid(
                "attr",
                at + 4,
                format!("size {sz} does not match the header's {attr_size}-byte entries"),
            ));
        }
        let attr = PerfEventAttr::parse(entry.get(..sz as usize).unwrap_or(entry))
            .ok_or_else(|| invalid("attr", at, "shorter than 64 bytes"))?;
        if attr.flags & abi::attr_flag::RESERVED != 0 {
            return Err(invalid("attr", at + 40, "reserved flag bits are set"));
        }
        let mut c = Cursor::new(entry, at);
        c.skip(u64::from(sz), "attr")?;
        let ids_at = c.offset();
        let ids_off = c.u64("attr ids section")?;
        let ids_size = c.u64("attr ids section")?;
        check_section("attr ids", ids_at, ids_off, ids_size, bytes.len())?;
        let ids_bytes = bytes
            .get(ids_off as usize..(ids_off + ids_size) as usize)
            .unwrap_or(&[]);
        let ids = ids_bytes
            .chunks_exact(8)
            .filter_map(|b| b.try_into().ok().map(u64::from_le_bytes))
            .collect();
        attrs.push(EventAttr {
            attr,
            ids,
            name: None,
            format: None,
        });
    }
    Ok(attrs)
}

fn read_feature_index(
    bytes: &[u8],
    feat_off: u64,
    bits: &[u64; 4],
) -> (Vec<(u32, u64, u64)>, Vec<DamagedFeature>) {
    let mut c = Cursor::new(bytes.get(feat_off as usize..).unwrap_or(&[]), feat_off);
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    for bit in 0..256u32 {
        let set = bits
            .get((bit / 64) as usize)
            .is_some_and(|w| w >> (bit % 64) & 1 == 1);
        if !set {
            continue;
        }
        let at = c.offset();
        let entry = c
            .u64("feature section index")
            .and_then(|off| Ok((off, c.u64("feature section index")?)));
        let (off, size) = match entry {
            Ok(e) => e,
            Err(e) => {
                damaged.push(DamagedFeature {
                    bit,
                    offset: at,
                    error: e.to_string(),
                });
                continue;
            }
        };
        match off.checked_add(size) {
            Some(end) if end <= bytes.len() as u64 => out.push((bit, off, size)),
            _ => damaged.push(DamagedFeature {
                bit,
                offset: at,
                error: invalid(
                    "feature section index",
                    at,
                    format!(
                        "{} section {off:#x}+{size} runs past the end of the {}-byte file",
                        feature::name(bit),
                        bytes.len()
                    ),
                )
                .to_string(),
            }),
        }
    }
    (out, damaged)
}

/// A perf header string: `u32 len`, then `len` bytes, NUL-padded.
fn feat_string(c: &mut Cursor<'_>, what: &'static str) -> Result<String, ReadError> {
    let n = c.u32(what)?;
    Ok(nul_str(c.take(u64::from(n), what)?).into_owned())
}

fn parse_feature(f: &mut Features, bit: u32, sec: &[u8], off: u64) -> Result<(), ReadError> {
    let mut c = Cursor::new(sec, off);
    match bit {
        feature::TRACING_DATA => f.tracing_data = Some(TracingData::parse(sec, off)?),
        feature::HOSTNAME => f.hostname = Some(feat_string(&mut c, "HOSTNAME feature")?),
        feature::OSRELEASE => f.os_release = Some(feat_string(&mut c, "OSRELEASE feature")?),
        feature::VERSION => f.version = Some(feat_string(&mut c, "VERSION feature")?),
        feature::ARCH => f.arch = Some(feat_string(&mut c, "ARCH feature")?),
        feature::CPUDESC => f.cpu_desc = Some(feat_string(&mut c, "CPUDESC feature")?),
        feature::CPUID => f.cpu_id = Some(feat_string(&mut c, "CPUID feature")?),
        feature::NRCPUS => {
            f.nr_cpus = Some(NrCpus {
                available: c.u32("NRCPUS feature")?,
                online: c.u32("NRCPUS feature")?,
            })
        }
        feature::TOTAL_MEM => f.total_mem_kb = Some(c.u64("TOTAL_MEM feature")?),
        feature::CMDLINE => {
            let n = c.u32("CMDLINE feature")?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(feat_string(&mut c, "CMDLINE feature")?);
            }
            f.cmdline = Some(v);
        }
        feature::EVENT_DESC => {
            let n = c.u32("EVENT_DESC feature")?;
            let sz_at = c.offset();
            let sz = c.u32("EVENT_DESC feature")?;
            if sz < ATTR_SIZE_VER0 {
                return Err(invalid(
                    "EVENT_DESC feature",
                    sz_at,
                    format!("attr size {sz} is below 64"),
                ));
            }
            let mut v = Vec::new();
            for _ in 0..n {
                let at = c.offset();
                let raw = c.take(u64::from(sz), "EVENT_DESC attr")?;
                let attr = PerfEventAttr::parse(raw)
                    .ok_or_else(|| invalid("EVENT_DESC attr", at, "shorter than 64 bytes"))?;
                let nr = c.u32("EVENT_DESC id count")?;
                let name = feat_string(&mut c, "EVENT_DESC name")?;
                let ids = c.take(u64::from(nr) * 8, "EVENT_DESC ids")?;
                let ids = ids
                    .chunks_exact(8)
                    .filter_map(|b| b.try_into().ok().map(u64::from_le_bytes))
                    .collect();
                v.push(EventDesc { attr, name, ids });
            }
            f.event_desc = Some(v);
        }
        feature::SAMPLE_TIME => {
            f.sample_time = Some((c.u64("SAMPLE_TIME feature")?, c.u64("SAMPLE_TIME feature")?))
        }
        feature::CLOCKID => f.clock_res_ns = Some(c.u64("CLOCKID feature")?),
        feature::KSW_COUNTERS => {
            f.ksw_counters = Some(String::from_utf8_lossy(sec).into_owned());
        }
        feature::CLOCK_DATA => {
            let at = c.offset();
            let version = c.u32("CLOCK_DATA feature")?;
            if version != 1 {
                return Err(invalid(
                    "CLOCK_DATA feature",
                    at,
                    format!("version {version}, expected 1"),
                ));
            }
            f.clock_data = Some(ClockData {
                clockid: c.u32("CLOCK_DATA feature")?,
                wall_clock_ns: c.u64("CLOCK_DATA feature")?,
                clockid_time_ns: c.u64("CLOCK_DATA feature")?,
            });
        }
        _ => {}
    }
    Ok(())
}

/// Iterator over framed records; see [`PerfFile::raw_records`].
#[derive(Clone, Debug)]
pub struct RawRecords<'a> {
    bytes: &'a [u8],
    pos: u64,
    end: u64,
    done: bool,
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = Result<RawRecord<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.end {
            return None;
        }
        let at = self.pos;
        let left = self.end - at;
        let window = self
            .bytes
            .get(at as usize..self.end as usize)
            .unwrap_or(&[]);
        let (kind, misc_bits, size) = match record_header(window, at) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let size = u64::from(size);
        if size < 8 {
            self.done = true;
            return Some(Err(invalid(
                "record",
                at,
                format!("size {size} is smaller than its 8-byte header"),
            )));
        }
        if size > left {
            self.done = true;
            return Some(Err(ReadError::RecordOverrun {
                offset: at,
                size,
                left,
            }));
        }
        let bytes = window.get(..size as usize).unwrap_or(&[]);
        let mut next = at + size;
        if kind == record_type::AUXTRACE {
            // struct perf_record_auxtrace { header; u64 size; ... }: the AUX
            // data (`size` bytes) follows the record.
            let aux = bytes
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            if aux > self.end - next {
                self.done = true;
                return Some(Err(ReadError::RecordOverrun {
                    offset: at,
                    size: size.saturating_add(aux),
                    left,
                }));
            }
            next += aux;
        }
        self.pos = next;
        Some(Ok(RawRecord {
            offset: at,
            kind,
            misc: misc_bits,
            bytes,
        }))
    }
}

fn record_header(window: &[u8], at: u64) -> Result<(u32, u16, u16), ReadError> {
    let mut c = Cursor::new(window, at);
    Ok((
        c.u32("record header")?,
        c.u16("record header")?,
        c.u16("record header")?,
    ))
}

/// Iterator over parsed records; see [`PerfFile::records`].
#[derive(Clone, Debug)]
pub struct Records<'a> {
    file: &'a PerfFile,
    raw: RawRecords<'a>,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = match self.raw.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        Some(self.file.parse_record(&raw))
    }
}
