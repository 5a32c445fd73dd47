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
//! back to the kernel. Task names (COMM records) and forks go through the
//! same ordering, so a name is known from the moment the task had it,
//! whichever CPU's buffer the record came in.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use ksw_core::events::{
    field, flags, DisarmReason, ExitState, WriterContext, ARM, DISARM, HIT, SYSTEM,
};
use ksw_perf::abi::{feature, record_type};
use ksw_perf::read::Mmap;
use ksw_perf::{DecodeError, EventFormat, Field, FieldKind, PerfFile, ReadError, Record, Sample};

use crate::mapping::Mapping;

/// Where and when an event happened: the sample's own header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub time_ns: u64,
    /// 16 bits (Linux has at most 8192 CPUs): with the tid, 8 bytes, and
    /// [`Event`] stays within an inline copy (see its size test).
    pub cpu: Option<u16>,
    /// The task (thread) the sample was taken in.
    pub tid: i32,
    /// Kernel call chain (innermost first), when recorded with `-g`.
    pub callchain: Box<[u64]>,
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
    /// The victim's name as the kernel saw it (absent in old recordings).
    pub victim_comm: Option<TaskComm>,
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
    pub victim_comm: TaskComm,
    /// The writer's name as the kernel saw it (absent in old recordings).
    pub writer_comm: Option<TaskComm>,
    pub probe_ip: u64,
    /// What the writer ran as (absent in old recordings).
    pub context: Option<WriterContext>,
    /// The writer is the victim task itself (its code, or an interrupt
    /// that came in while it ran on its CPU).
    pub by_victim: bool,
    /// `old_value` / `new_value` were the canary, withheld by the kernel.
    pub old_is_canary: bool,
    pub new_is_canary: bool,
    /// The write was made by the instruction the arming kprobe replaced,
    /// run from the kprobe's out-of-line copy (`writer_ip` is mapped back).
    pub out_of_line: bool,
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
    /// Writes the kernel reported for this frame (its ksw_hit events).
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

/// A task got a name (`PERF_RECORD_COMM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comm {
    pub time_ns: u64,
    pub pid: i32,
    pub tid: i32,
    pub name: TaskComm,
}

/// A task was created (`PERF_RECORD_FORK`): it has its parent's name until
/// it gets its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fork {
    pub time_ns: u64,
    pub tid: i32,
    pub parent_tid: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Arm(Arm),
    Hit(Hit),
    Disarm(Disarm),
    Comm(Comm),
    Fork(Fork),
}

impl Event {
    pub fn time_ns(&self) -> u64 {
        match self {
            Event::Arm(e) => e.ctx.time_ns,
            Event::Hit(e) => e.ctx.time_ns,
            Event::Disarm(e) => e.ctx.time_ns,
            Event::Comm(c) => c.time_ns,
            Event::Fork(f) => f.time_ns,
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
    /// The kallsyms copy `ksw record` stores (empty from perf).
    pub kallsyms_text: String,
    /// Clock of the timestamps (1 = CLOCK_MONOTONIC), if known.
    pub clockid: Option<i32>,
    pub hostname: Option<String>,
    pub os_release: Option<String>,
    /// Where the recording's kernel map says the kernel text starts (the
    /// address of `_text`, from the `[kernel.kallsyms]` MMAP record).
    pub kernel_text: Option<u64>,
    /// Task names from the tracing data's saved cmdlines.
    pub cmdlines: Vec<(i32, TaskComm)>,
    /// The module's counters at the start and end (`ksw record` only).
    pub counters: Option<String>,
    /// Feature sections skipped because they are damaged: (name, error).
    pub damaged_features: Vec<(&'static str, String)>,
}

/// What streaming counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub events: u64,
    /// Events the kernel could not store (PERF_RECORD_LOST / LOST_SAMPLES).
    pub lost: u64,
    /// Number of PERF_RECORD_LOST / LOST_SAMPLES records.
    pub lost_records: u64,
}

/// Why a recording cannot be reported on. The messages name no file: the
/// caller ([`crate::error::Error`]) puts its path in front.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is unreadable, truncated or corrupt (the message has the offset).
    #[error("{0}")]
    Read(Box<ReadError>),
    /// A kstackwatch event lacks a field this tool needs.
    #[error("{event} sample at offset {offset:#x} cannot be decoded: {source}")]
    Field {
        offset: u64,
        event: &'static str,
        source: Box<ReadError>,
    },
    /// The recording has no kstackwatch events at all.
    #[error("no {SYSTEM} events in this recording (record with `ksw record` or `perf record -e '{SYSTEM}:*' -k mono`)")]
    NoKswEvents,
    /// A trace-cmd file: not read by this tool.
    #[error("a trace-cmd trace.dat, not a perf.data file: `ksw report` reads perf.data (`ksw record`, `perf record`); for trace-cmd recordings use `trace-cmd report` with the plugin, or pass its text output to `ksw report --graph`")]
    TraceDat,
}

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
        Ok(m) => {
            if m.as_ref().starts_with(ksw_perf::tracing_data::MAGIC) {
                return Err(LoadError::TraceDat);
            }
            (PerfFile::from_source(Box::new(m.clone()))?, Some(m))
        }
        // Not mappable (a pipe, an empty file): read it whole.
        Err(_) => {
            let bytes = std::fs::read(path).map_err(io_err)?;
            if bytes.starts_with(ksw_perf::tracing_data::MAGIC) {
                return Err(LoadError::TraceDat);
            }
            (PerfFile::from_bytes(bytes)?, None)
        }
    };
    if !file
        .attrs()
        .iter()
        .any(|a| a.format.as_ref().is_some_and(|f| f.system == SYSTEM))
    {
        return Err(LoadError::NoKswEvents);
    }
    let features = file.features();
    let td = file.tracing_data();
    let cmdlines = td
        .map(|t| {
            t.cmdlines()
                .into_iter()
                .map(|(pid, name)| (pid, TaskComm::from(name.as_str())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Recording {
        path: path.to_path_buf(),
        kallsyms_text: td.map(|t| t.kallsyms.clone()).unwrap_or_default(),
        clockid: file.clockid(),
        hostname: features.hostname.clone(),
        os_release: features.os_release.clone(),
        kernel_text: kernel_map(&file),
        cmdlines,
        counters: features.ksw_counters.clone(),
        damaged_features: features
            .damaged
            .iter()
            .map(|d| (feature::name(d.bit), d.error.clone()))
            .collect(),
        file,
        mapping,
    })
}

/// The kernel's text start from the first `[kernel.kallsyms]` map (its
/// `pgoff` is the address of `_text`, as perf and `ksw record` write it).
fn kernel_map(file: &PerfFile) -> Option<u64> {
    for raw in file.raw_records().take(100_000) {
        let raw = raw.ok()?;
        if raw.kind == record_type::SAMPLE {
            // Maps are synthesized before the first sample.
            return None;
        }
        if raw.kind != record_type::MMAP && raw.kind != record_type::MMAP2 {
            continue;
        }
        let map: Mmap<'_> = match file.parse_record(&raw) {
            Ok(Record::Mmap(m)) => m,
            Ok(Record::Mmap2(m)) => m.map,
            _ => continue,
        };
        if map.pid == -1 && map.filename.starts_with("[kernel.kallsyms]") && map.pgoff != 0 {
            return Some(map.pgoff);
        }
    }
    None
}

/// How much of a mapped recording is read before its pages are given back.
const RELEASE_STEP: u64 = 4 << 20;

/// Puts items in time order, round by round. Items arrive CPU by CPU,
/// each CPU's in order; a round end promises that nothing later is older
/// than the round before it, so everything up to the previous round's
/// newest time can go. Ties keep arrival order.
///
/// An item is moved twice (in, out): it waits in a slot of `items` that
/// is reused once it has gone, and only the small keys are sorted.
struct Reorder<T> {
    /// Items not yet final, by slot; `None` for a free slot.
    items: Vec<Option<T>>,
    /// Slots of `items` free for reuse.
    free: Vec<u32>,
    /// (time, slot) of the queued items in arrival order, sorted by time
    /// when a round ends.
    keys: Vec<(u64, u32)>,
    newest: u64,
    /// Newest time of the previous round.
    final_up_to: u64,
}

impl<T> Reorder<T> {
    fn new() -> Self {
        Reorder {
            items: Vec::new(),
            free: Vec::new(),
            keys: Vec::new(),
            newest: 0,
            final_up_to: 0,
        }
    }

    fn push(&mut self, time: u64, item: T) {
        self.newest = self.newest.max(time);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.items[slot as usize] = Some(item);
                slot
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        };
        self.keys.push((time, slot));
    }

    fn end_round(&mut self, sink: impl FnMut(T)) {
        self.emit_up_to(self.final_up_to, sink);
        self.final_up_to = self.newest;
    }

    fn finish(mut self, sink: impl FnMut(T)) {
        self.emit_up_to(u64::MAX, sink);
    }

    fn emit_up_to(&mut self, limit: u64, mut sink: impl FnMut(T)) {
        // Per-CPU runs, each in order: a stable sort of the small keys
        // (merge sort on runs is close to linear); ties keep arrival order.
        self.keys.sort_by_key(|&(time, _)| time);
        let ready = self.keys.partition_point(|&(time, _)| time <= limit);
        for &(_, slot) in &self.keys[..ready] {
            if let Some(item) = self.items[slot as usize].take() {
                sink(item);
            }
            self.free.push(slot);
        }
        self.keys.drain(..ready);
        if self.keys.is_empty() {
            self.items.clear();
            self.free.clear();
        }
    }
}

impl Recording {
    /// Hands every kstackwatch event (and task name and fork) to `sink` in
    /// time order (ties in file order), in one pass. On a damaged record
    /// the events before it are still handed over, then the error is
    /// returned with what was counted.
    ///
    /// The file is decoded on a thread of its own while the caller's
    /// thread runs `sink` (correlation, output): the two halves of a report
    /// take about as long as each other, and a bounded queue of batches
    /// between them keeps memory flat.
    pub fn stream(&self, sink: impl FnMut(Event)) -> (StreamStats, Result<(), LoadError>) {
        crate::pipeline::split(|out| self.stream_here(|event| out.emit(event)), sink)
    }

    /// As [`Self::stream`], all on the caller's thread.
    pub fn stream_here(&self, mut sink: impl FnMut(Event)) -> (StreamStats, Result<(), LoadError>) {
        let mut stats = StreamStats::default();
        // One entry per kstackwatch format (three), and per event of the
        // file its entry (None: not kstackwatch's), looked up once here.
        let mut fields: Vec<FieldSet<'_>> = Vec::new();
        let field_set_of_attr: Vec<Option<usize>> = self
            .file
            .attrs()
            .iter()
            .map(|a| {
                let format = a.format.as_ref().filter(|f| f.system == SYSTEM)?;
                Some(
                    match fields.iter().position(|f| std::ptr::eq(f.format, format)) {
                        Some(i) => i,
                        None => {
                            fields.push(FieldSet::new(format));
                            fields.len() - 1
                        }
                    },
                )
            })
            .collect();
        let mut queue: Reorder<Event> = Reorder::new();
        let mut released = self.file.data_range().0;
        let mut result = Ok(());
        for raw in self.file.raw_records() {
            let raw = match raw {
                Ok(r) => r,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            };
            match raw.kind {
                record_type::FINISHED_ROUND => {
                    // Everything up to the previous round's newest time is final.
                    queue.end_round(&mut sink);
                    // Pages go back in large steps: each release is a TLB
                    // flush on every CPU this process runs on.
                    if let Some(m) = &self.mapping {
                        if raw.offset - released >= RELEASE_STEP {
                            m.release(released, raw.offset);
                            released = raw.offset;
                        }
                    }
                    continue;
                }
                record_type::SAMPLE
                | record_type::COMM
                | record_type::FORK
                | record_type::LOST
                | record_type::LOST_SAMPLES => {}
                _ => continue,
            }
            // Matched by reference: a record is 192 bytes, and moving it
            // out of the Result is a call to memcpy per sample.
            let parsed = self.file.parse_record(&raw);
            let record = match &parsed {
                Ok(r) => r,
                Err(_) => {
                    result = parsed.map(drop).map_err(LoadError::from);
                    break;
                }
            };
            match record {
                Record::Comm(c) => {
                    let time = c.sample_id.time.unwrap_or(0);
                    let name = TaskComm::new(c.comm.as_bytes());
                    queue.push(
                        time,
                        Event::Comm(Comm {
                            time_ns: time,
                            pid: c.pid,
                            tid: c.tid,
                            name,
                        }),
                    );
                }
                Record::Lost(l) => {
                    stats.lost += l.lost;
                    stats.lost_records += 1;
                }
                Record::LostSamples(l) => {
                    stats.lost += l.lost;
                    stats.lost_records += 1;
                }
                Record::Other { kind, bytes, .. } if *kind == record_type::FORK => {
                    // u32 pid, ppid, tid, ptid; u64 time.
                    let word = |at: usize| {
                        bytes
                            .get(at..at + 4)
                            .and_then(|b| b.try_into().ok())
                            .map(i32::from_le_bytes)
                    };
                    let time = bytes
                        .get(24..32)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_le_bytes);
                    if let (Some(tid), Some(ptid), Some(time)) = (word(16), word(20), time) {
                        queue.push(
                            time,
                            Event::Fork(Fork {
                                time_ns: time,
                                tid,
                                parent_tid: ptid,
                            }),
                        );
                    }
                }
                Record::Sample(s) => {
                    let index = field_set_of_attr.get(s.attr_index).copied().flatten();
                    let Some(set) = index.map(|i| &fields[i]) else {
                        continue;
                    };
                    match decode_sample(s, set) {
                        Ok(Some(event)) => {
                            queue.push(event.time_ns(), event);
                            stats.events += 1;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        queue.finish(&mut sink);
        (stats, result)
    }
}

/// A task's name as the kernel keeps it (`comm`: at most 15 bytes, up to
/// its first NUL), held inline and copied. Not a shared string: events
/// are decoded on one thread and reported on another, and a shared
/// name's reference count would bounce between the two CPUs at every
/// hit. Names are arbitrary bytes; they are shown lossily.
///
/// 16 bytes, and `Option<TaskComm>` too (the terminating NUL is a type
/// with one value, so `None` fits in it): a hit carries two names, and
/// an [`Event`] small enough is copied inline instead of through memcpy.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C)]
pub struct TaskComm {
    /// The name, then zeros.
    name: [u8; TaskComm::MAX],
    nul: Nul,
}

/// The NUL that ends a [`TaskComm`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Nul {
    Nul = 0,
}

impl TaskComm {
    /// `TASK_COMM_LEN` less its NUL; a longer name (never from the kernel)
    /// is cut.
    pub const MAX: usize = 15;

    pub fn new(raw: &[u8]) -> TaskComm {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let len = end.min(Self::MAX);
        let mut name = [0u8; Self::MAX];
        name[..len].copy_from_slice(&raw[..len]);
        TaskComm {
            name,
            nul: Nul::Nul,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(Self::MAX);
        &self.name[..len]
    }

    /// The name as text (invalid UTF-8 replaced).
    pub fn to_str(&self) -> Cow<'_, str> {
        match std::str::from_utf8(self.as_bytes()) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(self.as_bytes()),
        }
    }
}

impl std::hash::Hash for TaskComm {
    /// Two words (the bytes after the name are zero, so equal names hash
    /// equal): names key the report's maps at every hit.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Bytes 0..8 and 7..15: overlapping, all 15 covered.
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.name[at..at + 8]);
            u64::from_le_bytes(w)
        };
        state.write_u64(word(0));
        state.write_u64(word(Self::MAX - 8));
    }
}

impl From<&str> for TaskComm {
    fn from(name: &str) -> TaskComm {
        TaskComm::new(name.as_bytes())
    }
}

impl fmt::Display for TaskComm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str())
    }
}

impl fmt::Debug for TaskComm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_str(), f)
    }
}

impl PartialEq<&str> for TaskComm {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
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

/// How to read one field fast: integers of 1, 2, 4 or 8 bytes straight
/// from the record; anything else through the general decoder.
#[derive(Clone, Copy)]
struct Slot<'f> {
    field: &'f Field,
    start: usize,
    size: usize,
    /// A little-endian integer of 1, 2, 4 or 8 bytes.
    integer: bool,
    /// The field's signedness, beside its offset: the fast path reads
    /// no further than the slot.
    signed: bool,
}

/// `N` bytes of `raw` at `at`, if there are that many.
#[inline]
fn le<const N: usize>(raw: &[u8], at: usize) -> Option<[u8; N]> {
    raw.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The three kstackwatch events (matched once per format, not by name
/// at every sample).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Arm,
    Hit,
    Disarm,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Arm => ARM,
            Kind::Hit => HIT,
            Kind::Disarm => DISARM,
        }
    }
}

/// The fields of one kstackwatch event format, looked up by name once.
struct FieldSet<'f> {
    format: &'f EventFormat,
    /// Which kstackwatch event, None for another of the system.
    kind: Option<Kind>,
    fields: [Option<Slot<'f>>; NAMES.len()],
}

impl<'f> FieldSet<'f> {
    fn new(format: &'f EventFormat) -> FieldSet<'f> {
        FieldSet {
            format,
            kind: [Kind::Arm, Kind::Hit, Kind::Disarm]
                .into_iter()
                .find(|k| k.name() == format.name),
            fields: NAMES.map(|n| {
                format.field(n).map(|field| Slot {
                    field,
                    start: field.offset as usize,
                    size: field.size as usize,
                    integer: field.kind == FieldKind::Integer
                        && matches!(field.size, 1 | 2 | 4 | 8)
                        && !format.big_endian,
                    signed: field.signed,
                })
            }),
        }
    }

    fn missing(&self, index: usize) -> DecodeError {
        DecodeError::NoSuchField {
            event: self.format.full_name(),
            field: NAMES[index].to_string(),
        }
    }

    /// Integer field `NAMES[index]` of `raw`, as u64 bits. Inlined into
    /// the decoder with a constant index, this is a load or two; anything
    /// unusual goes the general way.
    #[inline(always)]
    fn int(&self, index: usize, raw: &'f [u8]) -> Result<u64, DecodeError> {
        if let Some(slot) = &self.fields[index] {
            if slot.integer {
                let at = slot.start;
                // One fixed-size load per width: a copy of a run-time
                // length would be a libc call per field.
                let v = match slot.size {
                    1 => raw.get(at).map(|&b| u64::from(b)),
                    2 => le::<2>(raw, at).map(|b| u64::from(u16::from_le_bytes(b))),
                    4 => le::<4>(raw, at).map(|b| u64::from(u32::from_le_bytes(b))),
                    _ => le::<8>(raw, at).map(u64::from_le_bytes),
                };
                if let Some(v) = v {
                    return Ok(if slot.signed && slot.size < 8 {
                        let shift = 64 - 8 * slot.size as u32;
                        (((v << shift) as i64) >> shift) as u64
                    } else {
                        v
                    });
                }
            }
        }
        self.int_slow(index, raw)
    }

    #[cold]
    #[inline(never)]
    fn int_slow(&self, index: usize, raw: &'f [u8]) -> Result<u64, DecodeError> {
        let Some(slot) = self.fields[index] else {
            return Err(self.missing(index));
        };
        let v = slot.field.value(raw, self.format.big_endian)?;
        v.as_u64().ok_or_else(|| DecodeError::NotInteger {
            field: NAMES[index].to_string(),
        })
    }

    /// The bytes of a `char[]` field `NAMES[index]`.
    fn text(&self, index: usize, raw: &'f [u8]) -> Result<&'f [u8], DecodeError> {
        let Some(slot) = self.fields[index] else {
            return Err(self.missing(index));
        };
        if !matches!(slot.field.kind, FieldKind::CharArray { .. }) {
            return Err(DecodeError::NotString {
                field: NAMES[index].to_string(),
            });
        }
        slot.field.bytes(raw)
    }

    fn has(&self, index: usize) -> bool {
        self.fields[index].is_some()
    }
}

fn decode_sample<'f>(s: &Sample<'f>, set: &FieldSet<'f>) -> Result<Option<Event>, LoadError> {
    let Some(kind) = set.kind else {
        return Ok(None);
    };
    let name = kind.name();
    let err = |source: DecodeError| LoadError::Field {
        offset: s.offset,
        event: name,
        source: Box::new(ReadError::Field {
            offset: s.offset,
            event: set.format.full_name(),
            source,
        }),
    };
    let raw = s.raw;
    let u = |f: usize| -> Result<u64, LoadError> { set.int(f, raw).map_err(err) };
    // Fields newer modules added: absent means 0.
    let optional = |f: usize| -> Result<u64, LoadError> {
        if set.has(f) {
            u(f)
        } else {
            Ok(0)
        }
    };
    // A task name; absent (older modules) is None.
    let comm = |f: usize| -> Result<Option<TaskComm>, LoadError> {
        if set.has(f) {
            Ok(Some(TaskComm::new(set.text(f, raw).map_err(err)?)))
        } else {
            Ok(None)
        }
    };
    let ctx = Context {
        time_ns: s.time.unwrap_or(0),
        cpu: s.cpu.and_then(|c| u16::try_from(c).ok()),
        tid: s.tid.unwrap_or(-1),
        callchain: if s.callchain.is_empty() {
            Box::default()
        } else {
            s.callchain_addresses().into_boxed_slice()
        },
    };
    let event = match kind {
        Kind::Arm => Event::Arm(Arm {
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
            victim_comm: comm(at!(field::VICTIM_COMM))?,
            ctx,
        }),
        Kind::Hit => {
            let flags_v = optional(at!(field::FLAGS))? as u8;
            let victim_comm = TaskComm::new(set.text(at!(field::VICTIM_COMM), raw).map_err(err)?);
            let writer_comm = comm(at!(field::WRITER_COMM))?;
            Event::Hit(Hit {
                id: u(at!(field::ID))?,
                slot: u(at!(field::SLOT))? as u8,
                addr: u(at!(field::ADDR))?,
                len: u(at!(field::LEN))? as u8,
                writer_ip: u(at!(field::WRITER_IP))?,
                old_value: u(at!(field::OLD_VALUE))?,
                new_value: u(at!(field::NEW_VALUE))?,
                victim_pid: u(at!(field::VICTIM_PID))? as i32,
                victim_comm,
                writer_comm,
                probe_ip: u(at!(field::PROBE_IP))?,
                context: if set.has(at!(field::CONTEXT)) {
                    WriterContext::from_raw(u(at!(field::CONTEXT))?)
                } else {
                    None
                },
                by_victim: flags_v & flags::HIT_BY_VICTIM != 0,
                old_is_canary: flags_v & flags::HIT_OLD_CANARY != 0,
                new_is_canary: flags_v & flags::HIT_NEW_CANARY != 0,
                out_of_line: flags_v & flags::HIT_OUT_OF_LINE != 0,
                ctx,
            })
        }
        Kind::Disarm => {
            let flags_v = optional(at!(field::FLAGS))? as u8;
            Event::Disarm(Disarm {
                id: u(at!(field::ID))?,
                slot: u(at!(field::SLOT))? as u8,
                addr: u(at!(field::ADDR))?,
                arm_value: u(at!(field::ARM_VALUE))?,
                exit_value: u(at!(field::EXIT_VALUE))?,
                hits: u(at!(field::HITS))? as u32,
                corrupted: ExitState::from_raw(u(at!(field::CORRUPTED))?)
                    .unwrap_or(ExitState::Unknown),
                reason: DisarmReason::from_raw(u(at!(field::REASON))?),
                canary: flags_v & flags::DISARM_CANARY != 0,
                exit_is_canary: flags_v & flags::DISARM_EXIT_CANARY != 0,
                ctx,
            })
        }
    };
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::{Event, Reorder, TaskComm};

    #[test]
    fn an_event_is_copied_inline() {
        // Larger than 128 bytes (eight 16-byte moves, x86-64's baseline),
        // every move of an event is a call to memcpy: the decoder moved
        // each event three times that way, a fifth of its time.
        assert!(std::mem::size_of::<Event>() <= 128);
        assert_eq!(std::mem::size_of::<Option<TaskComm>>(), 16);
    }

    #[test]
    fn task_names_stop_at_the_nul_or_15_bytes() {
        assert_eq!(
            TaskComm::new(b"kworker/0:1\0junk").as_bytes(),
            b"kworker/0:1"
        );
        assert_eq!(
            TaskComm::new(b"0123456789abcdefgh").as_bytes(),
            b"0123456789abcde"
        );
        assert_eq!(TaskComm::new(b"").as_bytes(), b"");
        assert!(TaskComm::from("ab") < TaskComm::from("abc"));
        assert_eq!(TaskComm::new(b"abc\0x"), TaskComm::from("abc"));
    }

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
        r.push(35, "b35");
        let mut rest = Vec::new();
        r.finish(|x| rest.push(x));
        assert_eq!(rest, ["b35", "a40"]);
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
