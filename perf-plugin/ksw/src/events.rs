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

use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ksw_core::events::{
    field, flags, DisarmReason, ExitState, WriterContext, ARM, DISARM, HIT, SYSTEM,
};
use ksw_perf::abi::record_type;
use ksw_perf::{
    DecodeError, EventFormat, Field, Kallsyms, PerfFile, ReadError, Record, Sample, Value,
};

use crate::idmap::{IdHasher, IdMap};
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
    /// The value at arm; 0 for a canary watch (the kernel withholds it).
    pub value: u64,
    /// A canary watch (`flags::ARM_CANARY`; absent in old recordings).
    pub canary: bool,
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
    pub victim_comm: Arc<str>,
    /// The writer's name as the kernel saw it (absent in old recordings).
    pub writer_comm: Option<Arc<str>>,
    pub probe_ip: u64,
    /// What the writer ran as (absent in old recordings).
    pub context: Option<WriterContext>,
    /// The writer is the victim task itself (its code, or an interrupt
    /// that came in while it ran on its CPU).
    pub by_victim: bool,
    /// `old_value` / `new_value` were the canary, withheld by the kernel.
    pub old_is_canary: bool,
    pub new_is_canary: bool,
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
    /// The value when the frame died against the value at arm (old
    /// recordings: 0 intact, 1 changed).
    pub corrupted: ExitState,
    pub reason: Option<DisarmReason>,
    /// A canary watch: `arm_value` withheld.
    pub canary: bool,
    /// `exit_value` is the canary, intact (withheld).
    pub exit_is_canary: bool,
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

/// Puts items in time order, round by round. Items arrive CPU by CPU,
/// each CPU's in order; a round end promises that nothing later is older
/// than the round before it, so everything up to the previous round's
/// newest time can go. Ties keep arrival order.
struct Reorder<T> {
    /// (time, arrival number, item) of the rounds not yet final.
    queue: Vec<(u64, u64, T)>,
    arrivals: u64,
    newest: u64,
    /// Newest time of the previous round.
    final_up_to: u64,
}

impl<T> Reorder<T> {
    fn new() -> Self {
        Reorder {
            queue: Vec::new(),
            arrivals: 0,
            newest: 0,
            final_up_to: 0,
        }
    }

    fn push(&mut self, time: u64, item: T) {
        self.newest = self.newest.max(time);
        self.queue.push((time, self.arrivals, item));
        self.arrivals += 1;
    }

    fn end_round(&mut self, sink: impl FnMut(T)) {
        self.emit_up_to(self.final_up_to, sink);
        self.final_up_to = self.newest;
    }

    fn finish(mut self, sink: impl FnMut(T)) {
        self.emit_up_to(u64::MAX, sink);
    }

    fn emit_up_to(&mut self, limit: u64, mut sink: impl FnMut(T)) {
        // Sorting a few per-CPU runs that are each in order is close to
        // linear, cheaper than a heap.
        self.queue.sort_unstable_by_key(|&(time, n, _)| (time, n));
        let ready = self.queue.partition_point(|&(time, _, _)| time <= limit);
        for (_, _, item) in self.queue.drain(..ready) {
            sink(item);
        }
    }
}

impl Recording {
    /// Hands every kstackwatch event to `sink` in time order (ties in file
    /// order), in one pass.
    pub fn stream(&self, mut sink: impl FnMut(Event)) -> Result<StreamStats, LoadError> {
        let mut stats = StreamStats::default();
        let mut comms: IdMap<i32, Arc<str>> = IdMap::default();
        let mut names = Names::default();
        // One entry per kstackwatch format (three): a scan beats hashing.
        let mut fields: Vec<FieldSet<'_>> = Vec::new();
        // Boxed: sorting moves entries, a pointer is cheap to move.
        let mut queue: Reorder<Box<Event>> = Reorder::new();
        let mut released = self.file.data_range().0;
        for raw in self.file.raw_records() {
            let raw = raw?;
            if raw.kind == record_type::FINISHED_ROUND {
                // Everything up to the previous round's newest time is final.
                queue.end_round(|e| sink(*e));
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
                    let set = match fields.iter().position(|f| std::ptr::eq(f.format, format)) {
                        Some(i) => &fields[i],
                        None => {
                            fields.push(FieldSet::new(format));
                            &fields[fields.len() - 1]
                        }
                    };
                    if let Some(event) = decode_sample(&self.path, &s, set, &comms, &mut names)? {
                        queue.push(event.ctx().time_ns, Box::new(event));
                        stats.events += 1;
                    }
                }
                _ => {}
            }
        }
        queue.finish(|e| sink(*e));
        Ok(stats)
    }
}

/// Task names seen in event fields, shared: a recording repeats a few names
/// in every hit, and a shared one costs no allocation.
#[derive(Default)]
struct Names(HashSet<Arc<str>, BuildHasherDefault<IdHasher>>);

impl Names {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(name);
        self.0.insert(new.clone());
        new
    }
}

/// The fields of one kstackwatch event format, looked up by name once.
struct FieldSet<'f> {
    format: &'f EventFormat,
    fields: [Option<&'f Field>; NAMES.len()],
}

/// Every field the decoder reads; [`FieldSet`] indexes them in this order.
const NAMES: [&str; 22] = [
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
    field::FLAGS,
    field::CONTEXT,
];

/// Position of `name` in [`NAMES`], at compile time (see [`at!`]): the
/// decoder reads ~10 fields per event and must not compare strings to
/// find them.
const fn index_of(name: &str) -> usize {
    let mut i = 0;
    while i < NAMES.len() {
        if const_str_eq(NAMES[i], name) {
            return i;
        }
        i += 1;
    }
    panic!("field missing from NAMES")
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The [`FieldSet`] index of a field name constant, checked when compiled.
macro_rules! at {
    ($name:expr) => {
        const { index_of($name) }
    };
}

impl<'f> FieldSet<'f> {
    fn new(format: &'f EventFormat) -> FieldSet<'f> {
        FieldSet {
            format,
            fields: NAMES.map(|n| format.field(n)),
        }
    }

    /// Field `NAMES[index]` of `raw`.
    fn get(&self, index: usize, raw: &'f [u8]) -> Result<Value<'f>, DecodeError> {
        match self.fields[index] {
            Some(f) => f.value(raw, self.format.big_endian),
            None => Err(DecodeError::NoSuchField {
                event: self.format.full_name(),
                field: NAMES[index].to_string(),
            }),
        }
    }

    fn has(&self, index: usize) -> bool {
        self.fields[index].is_some()
    }
}

fn decode_sample<'f>(
    path: &Path,
    s: &Sample<'f>,
    set: &FieldSet<'f>,
    comms: &IdMap<i32, Arc<str>>,
    names: &mut Names,
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
    let u = |f: usize| -> Result<u64, LoadError> {
        let v = set.get(f, raw).map_err(err)?;
        v.as_u64().ok_or_else(|| {
            err(DecodeError::NotInteger {
                field: NAMES[f].to_string(),
            })
        })
    };
    let mut text = |f: usize| -> Result<Arc<str>, LoadError> {
        match set.get(f, raw).map_err(err)? {
            Value::Str(t) => Ok(names.intern(&t)),
            _ => Err(err(DecodeError::NotString {
                field: NAMES[f].to_string(),
            })),
        }
    };
    // Fields newer modules added: absent means 0.
    let optional = |f: usize| -> Result<u64, LoadError> {
        if set.has(f) {
            u(f)
        } else {
            Ok(0)
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
            id: u(at!(field::ID))?,
            slot: u(at!(field::SLOT))? as u8,
            spec: u(at!(field::SPEC))? as u8,
            depth: u(at!(field::DEPTH))? as u32,
            probe_ip: u(at!(field::PROBE_IP))?,
            addr: u(at!(field::ADDR))?,
            len: u(at!(field::LEN))? as u8,
            sp: u(at!(field::SP))?,
            value: u(at!(field::VALUE))?,
            canary: optional(at!(field::FLAGS))? as u8 & flags::ARM_CANARY != 0,
            ctx,
        }),
        HIT => Event::Hit(Hit {
            id: u(at!(field::ID))?,
            slot: u(at!(field::SLOT))? as u8,
            addr: u(at!(field::ADDR))?,
            len: u(at!(field::LEN))? as u8,
            writer_ip: u(at!(field::WRITER_IP))?,
            old_value: u(at!(field::OLD_VALUE))?,
            new_value: u(at!(field::NEW_VALUE))?,
            victim_pid: u(at!(field::VICTIM_PID))? as i32,
            victim_comm: text(at!(field::VICTIM_COMM))?,
            writer_comm: if set.has(at!(field::WRITER_COMM)) {
                Some(text(at!(field::WRITER_COMM))?)
            } else {
                None
            },
            probe_ip: u(at!(field::PROBE_IP))?,
            context: if set.has(at!(field::CONTEXT)) {
                WriterContext::from_raw(u(at!(field::CONTEXT))?)
            } else {
                None
            },
            by_victim: optional(at!(field::FLAGS))? as u8 & flags::HIT_BY_VICTIM != 0,
            old_is_canary: optional(at!(field::FLAGS))? as u8 & flags::HIT_OLD_CANARY != 0,
            new_is_canary: optional(at!(field::FLAGS))? as u8 & flags::HIT_NEW_CANARY != 0,
            ctx,
        }),
        _ => Event::Disarm(Disarm {
            id: u(at!(field::ID))?,
            slot: u(at!(field::SLOT))? as u8,
            addr: u(at!(field::ADDR))?,
            arm_value: u(at!(field::ARM_VALUE))?,
            exit_value: u(at!(field::EXIT_VALUE))?,
            hits: u(at!(field::HITS))? as u32,
            corrupted: ExitState::from_raw(u(at!(field::CORRUPTED))?).unwrap_or(ExitState::Unknown),
            reason: DisarmReason::from_raw(u(at!(field::REASON))?),
            canary: optional(at!(field::FLAGS))? as u8 & flags::DISARM_CANARY != 0,
            exit_is_canary: optional(at!(field::FLAGS))? as u8 & flags::DISARM_EXIT_CANARY != 0,
            ctx,
        }),
    };
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::Reorder;

    fn drain(r: &mut Reorder<&'static str>) -> Vec<&'static str> {
        let mut out = Vec::new();
        r.end_round(|x| out.push(x));
        out
    }

    #[test]
    fn rounds_release_only_what_is_final() {
        let mut r = Reorder::new();
        // Round 1: CPU 0's events, then CPU 1's (older ones among them).
        r.push(10, "a10");
        r.push(30, "a30");
        r.push(20, "b20");
        // Nothing is final before the first round ends.
        assert_eq!(drain(&mut r), Vec::<&str>::new());
        // Round 2 may still hold events older than round 1's newest (30).
        r.push(25, "b25");
        r.push(40, "a40");
        assert_eq!(drain(&mut r), ["a10", "b20", "b25", "a30"]);
        let mut rest = Vec::new();
        r.finish(|x| rest.push(x));
        assert_eq!(rest, ["a40"]);
    }

    #[test]
    fn ties_keep_file_order() {
        let mut r = Reorder::new();
        for name in ["x", "y", "z"] {
            r.push(5, name);
        }
        let mut out = Vec::new();
        r.finish(|x| out.push(x));
        assert_eq!(out, ["x", "y", "z"]);
    }
}
