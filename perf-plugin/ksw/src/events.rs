//! Decoding kstackwatch events out of a perf.data file into one typed,
//! time-ordered stream. `ksw record` and `perf record` files both come
//! through here (samply's model: every source feeds one pipeline).
//!
//! Fields are found by name in the file's own format descriptions, never
//! by offset, so a module with more or reordered fields still decodes.
//!
//! The stream is built in one pass with bounded memory: the file is mapped,
//! samples are put in time order round by round (a `FINISHED_ROUND` record
//! promises no later record is older than the round before it, as perf's
//! own ordered-events queue assumes), and pages already read are given
//! back to the kernel.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ksw_core::events::{field, DisarmReason, ARM, DISARM, HIT, SYSTEM};
use ksw_perf::abi::record_type;
use ksw_perf::{
    DecodeError, EventFormat, Field, Kallsyms, PerfFile, ReadError, Record, Sample, Value,
};

use crate::mapping::Mapping;

/// Where and when an event happened: the sample's own header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub time_ns: u64,
    pub cpu: Option<u32>,
    pub pid: i32,
    pub tid: i32,
    /// Task name from the recording's COMM records, if any.
    pub comm: Option<Arc<str>>,
    /// Kernel call chain (innermost first), when recorded with `-g`.
    pub callchain: Vec<u64>,
    /// File offset of the sample, for error messages.
    pub offset: u64,
}

/// `kstackwatch:ksw_arm`: a frame is watched (victim's context).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arm {
    pub ctx: Context,
    pub id: u64,
    pub slot: u8,
    pub spec: u8,
    pub depth: u32,
    pub probe_ip: u64,
    pub addr: u64,
    pub len: u8,
    pub sp: u64,
    pub value: u64,
}

/// `kstackwatch:ksw_hit`: a watched slot was written (writer's context).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub ctx: Context,
    pub id: u64,
    pub slot: u8,
    pub addr: u64,
    pub len: u8,
    /// Instruction after the write (data breakpoints trap after it).
    pub writer_ip: u64,
    pub old_value: u64,
    pub new_value: u64,
    pub victim_pid: i32,
    pub victim_comm: String,
    /// The writer's name as the kernel saw it (absent in old recordings).
    pub writer_comm: Option<String>,
    pub probe_ip: u64,
}

/// `kstackwatch:ksw_disarm`: a watch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disarm {
    pub ctx: Context,
    pub id: u64,
    pub slot: u8,
    pub addr: u64,
    pub arm_value: u64,
    pub exit_value: u64,
    pub hits: u32,
    pub corrupted: bool,
    pub reason: Option<DisarmReason>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Arm(Arm),
    Hit(Hit),
    Disarm(Disarm),
}

impl Event {
    pub fn ctx(&self) -> &Context {
        match self {
            Event::Arm(e) => &e.ctx,
            Event::Hit(e) => &e.ctx,
            Event::Disarm(e) => &e.ctx,
        }
    }
}

/// An opened recording: what a report needs besides the events, and the
/// file to stream them from.
#[derive(Debug)]
pub struct Recording {
    pub path: PathBuf,
    file: PerfFile,
    mapping: Option<Mapping>,
    /// Kernel symbols: the recording's own copy if it has one.
    pub kallsyms: Kallsyms,
    /// Clock of the timestamps (1 = CLOCK_MONOTONIC), if known.
    pub clockid: Option<i32>,
    pub hostname: Option<String>,
    pub os_release: Option<String>,
}

/// What streaming counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub events: u64,
    /// Events the kernel could not store (PERF_RECORD_LOST / LOST_SAMPLES).
    pub lost: u64,
}

/// Why a recording cannot be reported on.
#[derive(Debug)]
pub enum LoadError {
    /// The file is unreadable, truncated or corrupt (the message has the offset).
    Read(Box<ReadError>),
    /// A kstackwatch event lacks a field this tool needs.
    Field {
        path: PathBuf,
        offset: u64,
        event: &'static str,
        source: Box<ReadError>,
    },
    /// The recording has no kstackwatch events at all.
    NoKswEvents(PathBuf),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read(e) => write!(f, "{e}"),
            LoadError::Field {
                path,
                offset,
                event,
                source,
            } => write!(
                f,
                "{}: {event} sample at offset {offset:#x} cannot be decoded: {source}",
                path.display()
            ),
            LoadError::NoKswEvents(path) => write!(
                f,
                "{}: no {SYSTEM} events in this recording (record with `ksw record` or `perf record -e '{SYSTEM}:*' -k mono`)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<ReadError> for LoadError {
    fn from(e: ReadError) -> Self {
        LoadError::Read(Box::new(e))
    }
}

/// Opens a perf.data file: header, attributes, formats, symbols. The
/// events are read by [`Recording::stream`].
pub fn open(path: &Path) -> Result<Recording, LoadError> {
    let io_err = |source| {
        LoadError::from(ReadError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let (file, mapping) = match Mapping::open(path) {
        Ok(m) => (PerfFile::from_source(Box::new(m.clone()))?, Some(m)),
        // Not mappable (a pipe, an empty file): read it whole.
        Err(_) => (
            PerfFile::from_bytes(std::fs::read(path).map_err(io_err)?)?,
            None,
        ),
    };
    if !file
        .attrs()
        .iter()
        .any(|a| a.format.as_ref().is_some_and(|f| f.system == SYSTEM))
    {
        return Err(LoadError::NoKswEvents(path.to_path_buf()));
    }
    let features = file.features();
    Ok(Recording {
        path: path.to_path_buf(),
        kallsyms: file.kallsyms(),
        clockid: file.clockid(),
        hostname: features.hostname.clone(),
        os_release: features.os_release.clone(),
        file,
        mapping,
    })
}

/// An event waiting in the reorder queue, smallest (time, file order) first.
struct Queued {
    time: u64,
    seq: u64,
    /// Boxed: the heap moves entries around, a pointer is cheap to move.
    event: Box<Event>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

impl Recording {
    /// Hands every kstackwatch event to `sink` in time order (ties in file
    /// order), in one pass.
    pub fn stream(&self, mut sink: impl FnMut(Event)) -> Result<StreamStats, LoadError> {
        let mut stats = StreamStats::default();
        let mut comms: HashMap<i32, Arc<str>> = HashMap::new();
        let mut fields: HashMap<*const EventFormat, FieldSet<'_>> = HashMap::new();
        let mut queue: BinaryHeap<Reverse<Queued>> = BinaryHeap::new();
        let mut seq = 0u64;
        let (mut max_time, mut flush_limit) = (0u64, 0u64);
        let mut released = self.file.data_range().0;
        let flush =
            |queue: &mut BinaryHeap<Reverse<Queued>>, limit: u64, sink: &mut dyn FnMut(Event)| {
                while queue.peek().is_some_and(|q| q.0.time <= limit) {
                    if let Some(Reverse(q)) = queue.pop() {
                        sink(*q.event);
                    }
                }
            };
        for raw in self.file.raw_records() {
            let raw = raw?;
            if raw.kind == record_type::FINISHED_ROUND {
                // Everything up to the previous round's newest time is final.
                flush(&mut queue, flush_limit, &mut sink);
                flush_limit = max_time;
                if let Some(m) = &self.mapping {
                    m.release(released, raw.offset);
                    released = raw.offset;
                }
                continue;
            }
            match self.file.parse_record(&raw)? {
                Record::Comm(c) => {
                    comms.insert(c.tid, Arc::from(c.comm.as_ref()));
                }
                Record::Lost(l) => stats.lost += l.lost,
                Record::LostSamples(l) => stats.lost += l.lost,
                Record::Sample(s) => {
                    let Some(format) = s.format.filter(|f| f.system == SYSTEM) else {
                        continue;
                    };
                    let set = fields
                        .entry(format as *const EventFormat)
                        .or_insert_with(|| FieldSet::new(format));
                    if let Some(event) = decode_sample(&self.path, &s, set, &comms)? {
                        let time = event.ctx().time_ns;
                        max_time = max_time.max(time);
                        queue.push(Reverse(Queued {
                            time,
                            seq,
                            event: Box::new(event),
                        }));
                        seq += 1;
                        stats.events += 1;
                    }
                }
                _ => {}
            }
        }
        flush(&mut queue, u64::MAX, &mut sink);
        Ok(stats)
    }
}

/// The fields of one kstackwatch event format, looked up by name once.
struct FieldSet<'f> {
    format: &'f EventFormat,
    fields: [Option<&'f Field>; NAMES.len()],
}

/// Every field the decoder reads; [`FieldSet`] indexes them in this order.
const NAMES: [&str; 20] = [
    field::ID,
    field::SLOT,
    field::SPEC,
    field::DEPTH,
    field::PROBE_IP,
    field::ADDR,
    field::LEN,
    field::SP,
    field::VALUE,
    field::WRITER_IP,
    field::OLD_VALUE,
    field::NEW_VALUE,
    field::VICTIM_PID,
    field::VICTIM_COMM,
    field::WRITER_COMM,
    field::ARM_VALUE,
    field::EXIT_VALUE,
    field::HITS,
    field::CORRUPTED,
    field::REASON,
];

fn index_of(name: &str) -> usize {
    NAMES.iter().position(|n| *n == name).unwrap_or(0)
}

impl<'f> FieldSet<'f> {
    fn new(format: &'f EventFormat) -> FieldSet<'f> {
        FieldSet {
            format,
            fields: NAMES.map(|n| format.field(n)),
        }
    }

    fn get(&self, name: &str, raw: &'f [u8]) -> Result<Value<'f>, DecodeError> {
        match self.fields[index_of(name)] {
            Some(f) => f.value(raw, self.format.big_endian),
            None => Err(DecodeError::NoSuchField {
                event: self.format.full_name(),
                field: name.to_string(),
            }),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.fields[index_of(name)].is_some()
    }
}

fn decode_sample<'f>(
    path: &Path,
    s: &Sample<'f>,
    set: &FieldSet<'f>,
    comms: &HashMap<i32, Arc<str>>,
) -> Result<Option<Event>, LoadError> {
    let name: &'static str = match set.format.name.as_str() {
        n if n == ARM => ARM,
        n if n == HIT => HIT,
        n if n == DISARM => DISARM,
        _ => return Ok(None),
    };
    let err = |source: DecodeError| LoadError::Field {
        path: path.to_path_buf(),
        offset: s.offset,
        event: name,
        source: Box::new(ReadError::Field {
            offset: s.offset,
            event: set.format.full_name(),
            source,
        }),
    };
    let raw = s.raw;
    let u = |f: &str| -> Result<u64, LoadError> {
        let v = set.get(f, raw).map_err(err)?;
        v.as_u64().ok_or_else(|| {
            err(DecodeError::NotInteger {
                field: f.to_string(),
            })
        })
    };
    let text = |f: &str| -> Result<String, LoadError> {
        match set.get(f, raw).map_err(err)? {
            Value::Str(t) => Ok(t.into_owned()),
            _ => Err(err(DecodeError::NotString {
                field: f.to_string(),
            })),
        }
    };
    let tid = s.tid.unwrap_or(-1);
    let ctx = Context {
        time_ns: s.time.unwrap_or(0),
        cpu: s.cpu,
        pid: s.pid.unwrap_or(-1),
        tid,
        comm: comms.get(&tid).cloned(),
        callchain: s.callchain_addresses(),
        offset: s.offset,
    };
    let event = match name {
        ARM => Event::Arm(Arm {
            id: u(field::ID)?,
            slot: u(field::SLOT)? as u8,
            spec: u(field::SPEC)? as u8,
            depth: u(field::DEPTH)? as u32,
            probe_ip: u(field::PROBE_IP)?,
            addr: u(field::ADDR)?,
            len: u(field::LEN)? as u8,
            sp: u(field::SP)?,
            value: u(field::VALUE)?,
            ctx,
        }),
        HIT => Event::Hit(Hit {
            id: u(field::ID)?,
            slot: u(field::SLOT)? as u8,
            addr: u(field::ADDR)?,
            len: u(field::LEN)? as u8,
            writer_ip: u(field::WRITER_IP)?,
            old_value: u(field::OLD_VALUE)?,
            new_value: u(field::NEW_VALUE)?,
            victim_pid: u(field::VICTIM_PID)? as i32,
            victim_comm: text(field::VICTIM_COMM)?,
            writer_comm: if set.has(field::WRITER_COMM) {
                Some(text(field::WRITER_COMM)?)
            } else {
                None
            },
            probe_ip: u(field::PROBE_IP)?,
            ctx,
        }),
        _ => Event::Disarm(Disarm {
            id: u(field::ID)?,
            slot: u(field::SLOT)? as u8,
            addr: u(field::ADDR)?,
            arm_value: u(field::ARM_VALUE)?,
            exit_value: u(field::EXIT_VALUE)?,
            hits: u(field::HITS)? as u32,
            corrupted: u(field::CORRUPTED)? != 0,
            reason: DisarmReason::from_raw(u(field::REASON)?),
            ctx,
        }),
    };
    Ok(Some(event))
}
