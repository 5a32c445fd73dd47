//! Decoding kstackwatch events out of a perf.data file into one typed,
//! time-ordered stream. `ksw record` and `perf record` files both come
//! through here (samply's model: every source feeds one pipeline).
//!
//! Fields are found by name in the file's own format descriptions, never
//! by offset, so a module with more or reordered fields still decodes.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ksw_core::events::{field, DisarmReason, ARM, DISARM, HIT, SYSTEM};
use ksw_perf::{Kallsyms, PerfFile, ReadError, Record, Sample};
use serde::Serialize;

/// Where and when an event happened: the sample's own header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    pub time_ns: u64,
    pub cpu: Option<u32>,
    pub pid: i32,
    pub tid: i32,
    /// Task name from the recording's COMM records, if any.
    pub comm: Option<String>,
    /// Kernel call chain (innermost first), when recorded with `-g`.
    #[serde(skip)]
    pub callchain: Vec<u64>,
    /// File offset of the sample, for error messages.
    #[serde(skip)]
    pub offset: u64,
}

/// `kstackwatch:ksw_arm`: a frame is watched (victim's context).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disarm {
    pub ctx: Context,
    pub id: u64,
    pub slot: u8,
    pub addr: u64,
    pub arm_value: u64,
    pub exit_value: u64,
    pub hits: u32,
    pub corrupted: bool,
    #[serde(serialize_with = "reason_name")]
    pub reason: Option<DisarmReason>,
}

fn reason_name<S: serde::Serializer>(r: &Option<DisarmReason>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.map_or("unknown", DisarmReason::as_str))
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

/// Everything a report needs from one recording.
#[derive(Debug)]
pub struct Recording {
    pub path: PathBuf,
    /// kstackwatch events, sorted by time.
    pub events: Vec<Event>,
    /// Events the kernel could not store (PERF_RECORD_LOST / LOST_SAMPLES).
    pub lost: u64,
    /// Kernel symbols: the recording's own copy if it has one.
    pub kallsyms: Kallsyms,
    /// Clock of the timestamps (1 = CLOCK_MONOTONIC), if known.
    pub clockid: Option<i32>,
    pub hostname: Option<String>,
    pub os_release: Option<String>,
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

/// Reads a perf.data file and decodes its kstackwatch samples.
pub fn load(path: &Path) -> Result<Recording, LoadError> {
    let file = PerfFile::open(path)?;
    decode(path, &file)
}

/// Decodes the kstackwatch samples of an opened file.
pub fn decode(path: &Path, file: &PerfFile) -> Result<Recording, LoadError> {
    let mut comms: HashMap<i32, String> = HashMap::new();
    let mut events = Vec::new();
    let mut lost = 0;
    let mut saw_ksw_format = false;
    for record in file.records() {
        match record? {
            Record::Comm(c) => {
                comms.insert(c.tid, c.comm.to_string());
            }
            Record::Lost(l) => lost += l.lost,
            Record::LostSamples(l) => lost += l.lost,
            Record::Sample(s) => {
                let Some(format) = s.format else { continue };
                if format.system != SYSTEM {
                    continue;
                }
                saw_ksw_format = true;
                if let Some(event) = decode_sample(path, &s, &comms)? {
                    events.push(event);
                }
            }
            _ => {}
        }
    }
    if events.is_empty() && !saw_ksw_format && file.event_format(SYSTEM, HIT).is_none() {
        return Err(LoadError::NoKswEvents(path.to_path_buf()));
    }
    // Stable: same-time events keep file order (arm before hit on one CPU).
    events.sort_by_key(|e| e.ctx().time_ns);
    let features = file.features();
    Ok(Recording {
        path: path.to_path_buf(),
        events,
        lost,
        kallsyms: file.kallsyms(),
        clockid: file.clockid(),
        hostname: features.hostname.clone(),
        os_release: features.os_release.clone(),
    })
}

fn decode_sample(
    path: &Path,
    s: &Sample<'_>,
    comms: &HashMap<i32, String>,
) -> Result<Option<Event>, LoadError> {
    let Some(format) = s.format else {
        return Ok(None);
    };
    let name: &'static str = match format.name.as_str() {
        n if n == ARM => ARM,
        n if n == HIT => HIT,
        n if n == DISARM => DISARM,
        _ => return Ok(None),
    };
    let err = |source| LoadError::Field {
        path: path.to_path_buf(),
        offset: s.offset,
        event: name,
        source: Box::new(source),
    };
    let u = |f: &str| s.u64(f).map_err(err);
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
            victim_pid: s.i64(field::VICTIM_PID).map_err(err)? as i32,
            victim_comm: s.str(field::VICTIM_COMM).map_err(err)?.into_owned(),
            writer_comm: format
                .field(field::WRITER_COMM)
                .map(|_| s.str(field::WRITER_COMM).map(|c| c.into_owned()))
                .transpose()
                .map_err(err)?,
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
