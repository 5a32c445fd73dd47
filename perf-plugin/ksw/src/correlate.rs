//! Tying hits (the writer's context) to victims (the armed frames), online:
//! events come in time order and only the frames armed right now are kept,
//! so memory does not grow with the recording.
//!
//! Two independent matches for every hit:
//! - by watch id: the module puts the same id in ksw_arm, ksw_hit and
//!   ksw_disarm;
//! - by time and address: the frames armed at the hit's time whose watched
//!   bytes overlap the hit's.
//!
//! They agree on every healthy recording; a disagreement (ids reused
//! across module loads, lost events, clocks from different machines) is
//! counted and reported, never papered over. A hit is attached to the
//! frame its id names.
//!
//! Under loss (a full ring buffer drops records) nothing is guessed:
//! - a frame whose slot is armed again while it is open lost its disarm
//!   (the module frees a slot before it emits the disarm, so a re-arm may
//!   come a little before the disarm in time: the old frame waits
//!   [`SUPERSEDE_GRACE_NS`] for it before it is closed as "disarm lost");
//! - hits and disarms of a watch whose arm is not in the recording make a
//!   frame of their own, marked "armed before the recording started" (its
//!   id is older than every recorded arm) or "arm not recorded";
//! - the kernel's own count of a frame's hits (`ksw_disarm.hits`) is kept
//!   beside the number recorded.

use std::collections::{BTreeMap, BTreeSet};

use ksw_core::events::{ExitState, Verdict};
use rustc_hash::FxHashMap;

use crate::events::{Arm, Comm, Disarm, Event, Fork, Hit, TaskComm};

/// How many hits each frame and each writer site keep for display; the
/// rest are counted.
pub const HITS_KEPT: usize = 10;
/// How long a frame whose slot was re-armed waits for its own disarm.
pub const SUPERSEDE_GRACE_NS: u64 = 50_000_000;
/// Hits whose two matches disagree kept as examples.
const EXAMPLES_KEPT: usize = 3;

/// The time-and-address match of a hit: frames armed at that time whose
/// bytes overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeMatch {
    One(u64),
    None,
    Ambiguous(Vec<u64>),
}

/// How the two matches of a hit compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Agreement {
    Agree,
    Disagree,
    Ambiguous,
    IdOnly,
    TimeOnly,
    /// No recorded arm matches it either way.
    Unmatched,
}

impl Agreement {
    pub const ALL: [Agreement; 6] = [
        Agreement::Agree,
        Agreement::Disagree,
        Agreement::Ambiguous,
        Agreement::IdOnly,
        Agreement::TimeOnly,
        Agreement::Unmatched,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Agreement::Agree => "agree",
            Agreement::Disagree => "disagree",
            Agreement::Ambiguous => "ambiguous",
            Agreement::IdOnly => "id only",
            Agreement::TimeOnly => "time only",
            Agreement::Unmatched => "unmatched",
        }
    }

    /// What it means, for a note.
    pub fn meaning(self) -> &'static str {
        match self {
            Agreement::Agree => "both matches name the same frame",
            Agreement::Disagree => "the watch id names one armed frame, the time and address another",
            Agreement::Ambiguous => "several armed frames hold the address at that time",
            Agreement::IdOnly => "the frame its id names does not hold the address at that time",
            Agreement::TimeOnly => "its id names no armed frame, a frame armed at that time holds the address",
            Agreement::Unmatched => "no recorded arm: its frame was armed before the recording started or its arm was lost",
        }
    }
}

/// A hit with both of its matches.
#[derive(Clone, Debug)]
pub struct MatchedHit {
    pub hit: Hit,
    /// The writer's name: the event's own `writer_comm`, else the
    /// recording's name for its task at that time.
    pub writer_name: Option<TaskComm>,
    /// Watch id of the armed frame the hit's id names, if that frame's arm
    /// is recorded and it is open.
    pub by_id: Option<u64>,
    pub by_time: TimeMatch,
}

impl MatchedHit {
    pub fn agreement(&self) -> Agreement {
        match (self.by_id, &self.by_time) {
            (Some(a), TimeMatch::One(b)) if a == *b => Agreement::Agree,
            (None, TimeMatch::None) => Agreement::Unmatched,
            (Some(_), TimeMatch::One(_)) => Agreement::Disagree,
            (_, TimeMatch::Ambiguous(_)) => Agreement::Ambiguous,
            (Some(_), TimeMatch::None) => Agreement::IdOnly,
            (None, TimeMatch::One(_)) => Agreement::TimeOnly,
        }
    }
}

/// Why a frame has no recorded arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingArm {
    /// Its id is older than every recorded arm: armed before the recording.
    BeforeRecording,
    /// Its arm should be in the recording but is not (lost or removed).
    Lost,
}

/// How a frame's watch ended, as far as the recording tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Its `ksw_disarm` is recorded.
    Disarmed,
    /// Its slot was armed again (or its id reused) and no disarm came: the
    /// disarm was lost. The time is the re-arm's.
    DisarmLost(u64),
    /// The recording ended first.
    StillArmed,
}

/// What a frame's verdict is, from what was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrameVerdict {
    /// Writes were caught (by the kernel's count, or recorded).
    Hit,
    SilentlyCorrupted,
    Clean,
    /// Disarmed after it died: the value at death is unknown.
    Unknown,
    /// No disarm (yet), no write recorded.
    StillArmed,
    /// No disarm recorded though the frame ended, no write recorded.
    DisarmLost,
}

impl FrameVerdict {
    /// Machine-readable code (JSON `verdict`).
    pub fn code(self) -> &'static str {
        match self {
            FrameVerdict::Hit => "hit",
            FrameVerdict::SilentlyCorrupted => "silently_corrupted",
            FrameVerdict::Clean => "clean",
            FrameVerdict::Unknown => "unknown",
            FrameVerdict::StillArmed => "still_armed",
            FrameVerdict::DisarmLost => "disarm_lost",
        }
    }

    /// Words (text report, per-function counts).
    pub fn words(self) -> &'static str {
        match self {
            FrameVerdict::Hit => "hit",
            FrameVerdict::SilentlyCorrupted => "silently corrupted",
            FrameVerdict::Clean => "clean",
            FrameVerdict::Unknown => "unknown",
            FrameVerdict::StillArmed => "still armed at end of recording",
            FrameVerdict::DisarmLost => "disarm not recorded",
        }
    }
}

/// One watched frame: one watch id, from arm to disarm, as recorded.
#[derive(Clone, Debug)]
pub struct Frame {
    pub id: u64,
    pub arm: Option<Arm>,
    pub missing_arm: Option<MissingArm>,
    pub disarm: Option<Disarm>,
    pub end: End,
    /// The first [`HITS_KEPT`] recorded hits.
    pub hits: Vec<MatchedHit>,
    /// Hits recorded for it.
    pub hit_count: u64,
    /// The victim task's name: the kernel's (the arm's or a hit's
    /// `victim_comm`), else the recording's name for the task.
    pub task_name: Option<TaskComm>,
    /// The victim task, when known (the arm's tid, else a hit's victim_pid).
    pub tid: Option<i32>,
    /// Slot, address and length (from the arm, else a hit or the disarm).
    pub slot: u8,
    pub addr: u64,
    pub len: u8,
    /// Where it was armed (the arm's, else a hit's `probe_ip`).
    pub probe_ip: Option<u64>,
    /// Time of the first event of the frame.
    pub first_ns: u64,
}

impl Frame {
    fn partial(id: u64, missing: MissingArm, time: u64) -> Frame {
        Frame {
            id,
            arm: None,
            missing_arm: Some(missing),
            disarm: None,
            end: End::StillArmed,
            hits: Vec::new(),
            hit_count: 0,
            task_name: None,
            tid: None,
            slot: 0,
            addr: 0,
            len: 0,
            probe_ip: None,
            first_ns: time,
        }
    }

    /// Writes into the frame: the kernel's count when its disarm is
    /// recorded, else the hits recorded.
    pub fn writes(&self) -> u64 {
        self.disarm
            .as_ref()
            .map_or(self.hit_count, |d| u64::from(d.hits))
    }

    /// The kernel's count of the frame's writes, when its disarm is recorded.
    pub fn kernel_hits(&self) -> Option<u64> {
        self.disarm.as_ref().map(|d| u64::from(d.hits))
    }

    pub fn verdict(&self) -> FrameVerdict {
        if self.writes() > 0 || self.hit_count > 0 {
            return FrameVerdict::Hit;
        }
        match (&self.disarm, self.end) {
            (Some(d), _) => match Verdict::of(0, d.corrupted) {
                Verdict::SilentCorruption => FrameVerdict::SilentlyCorrupted,
                Verdict::Unknown => FrameVerdict::Unknown,
                _ => FrameVerdict::Clean,
            },
            (None, End::DisarmLost(_)) => FrameVerdict::DisarmLost,
            (None, _) => FrameVerdict::StillArmed,
        }
    }

    /// The value at death, when it was read.
    pub fn exit_known(&self) -> bool {
        self.disarm
            .as_ref()
            .is_some_and(|d| d.corrupted != ExitState::Unknown)
    }

    fn overlaps(&self, addr: u64, len: u8) -> bool {
        let (a0, a1) = (self.addr, self.addr + u64::from(self.len));
        addr < a1 && a0 < addr + u64::from(len)
    }
}

/// Hits of one writer task at one instruction with one call chain.
#[derive(Clone, Debug)]
pub struct Site {
    pub writer_ip: u64,
    pub chain: Vec<u64>,
    pub count: u64,
    pub cpus: BTreeSet<u32>,
    /// Watch ids written (the first thousand).
    pub victims: BTreeSet<u64>,
    /// The first [`HITS_KEPT`] hits.
    pub examples: Vec<MatchedHit>,
}

#[derive(Clone, Debug)]
pub struct Writer {
    pub tid: i32,
    pub comm: Option<TaskComm>,
    pub sites: Vec<Site>,
}

impl Writer {
    pub fn hit_count(&self) -> u64 {
        self.sites.iter().map(|s| s.count).sum()
    }
}

/// The counts of a report. The headline's definition is here, once:
/// "N corruptions of M victims by K writers".
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// N: writes into watched frames (the kernel's count for a frame whose
    /// disarm is recorded, else the hits recorded) plus frames silently
    /// corrupted (changed with no write caught).
    pub corruptions: u64,
    /// M: frames (watch ids) written or silently corrupted.
    pub victims: u64,
    /// K: distinct writer tasks among the recorded hits.
    pub writers: u64,
    /// Frames: one per watch id (a recorded arm, or hits/disarm without one).
    pub frames: u64,
    pub hit: u64,
    pub clean: u64,
    pub silent: u64,
    /// Disarmed after death (backstop): value at death unknown.
    pub unknown: u64,
    /// Armed, no write recorded, no disarm yet when the recording ended.
    pub still_armed: u64,
    /// Ended with no write recorded and no disarm recorded.
    pub disarm_lost: u64,
    /// Frames whose disarm was not recorded (slot re-armed, id reused),
    /// with or without writes.
    pub disarms_missing: u64,
    /// Frames without a recorded arm, by why.
    pub armed_before_recording: u64,
    pub arms_missing: u64,
    /// Hits recorded, and the kernel's count for frames with a disarm.
    pub hits_recorded: u64,
    pub hits_in_kernel: u64,
    /// Frames whose kernel count exceeds the hits recorded, and by how much.
    pub frames_missing_hits: u64,
    pub hits_missing: u64,
    /// Frames with more hits recorded than the kernel counted.
    pub frames_extra_hits: u64,
    /// Hits whose matches are not "agree", by agreement.
    pub agreements: BTreeMap<Agreement, u64>,
    /// Hits of frames without a recorded arm.
    pub unmatched_hits: u64,
}

impl Summary {
    /// "N corruptions of M victims by K writers".
    pub fn headline(&self) -> String {
        headline(self.corruptions, self.victims, self.writers)
    }

    /// Hits whose two matches differ (anything but agree or unmatched).
    pub fn disagreements(&self) -> u64 {
        self.agreements
            .iter()
            .filter(|(a, _)| !matches!(a, Agreement::Agree | Agreement::Unmatched))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The headline text for the three counts (see [`Summary`]).
pub fn headline(corruptions: u64, victims: u64, writers: u64) -> String {
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{} of {} by {}",
        plural(corruptions, "corruption"),
        plural(victims, "victim"),
        plural(writers, "writer")
    )
}

/// Two call chains are the same. Most are short or empty (recorded
/// without -g), and this runs for every hit: the length decides most
/// cases without a call into memcmp.
#[inline]
fn same_chain(a: &[u64], b: &[u64]) -> bool {
    a.len() == b.len() && (a.is_empty() || (a[0] == b[0] && a == b))
}

/// Cuts a hit's recorded call chain to the writer's part.
type ChainFn<'c> = Box<dyn Fn(&Hit) -> &[u64] + 'c>;

/// The frames not yet closed, each written once into a slot of `frames`
/// and handed out by reference: a frame is ~300 bytes, and moving it into
/// a map, out of it and into the callback was a copy each time.
#[derive(Default)]
struct Frames {
    frames: Vec<Frame>,
    /// Slots of `frames` whose frame was closed, for reuse.
    free: Vec<usize>,
}

impl Frames {
    fn insert(&mut self, mut frame: Frame) -> usize {
        match self.free.pop() {
            Some(slot) => {
                // The closed frame's list of hits, emptied, serves the new
                // one: no allocation per frame.
                if frame.hits.is_empty() {
                    frame.hits = std::mem::take(&mut self.frames[slot].hits);
                    frame.hits.clear();
                }
                self.frames[slot] = frame;
                slot
            }
            None => {
                self.frames.push(frame);
                self.frames.len() - 1
            }
        }
    }
}

/// Consumes the event stream; closed frames go to the `on_frame` callback.
pub struct Correlator<'c> {
    frames: Frames,
    /// Open frames: watch id to slot in `frames`.
    open: FxHashMap<u64, usize>,
    /// The frame last armed (or, without an arm, last hit) on each slot.
    slot_owner: FxHashMap<u8, u64>,
    /// Frames whose slot was armed again, waiting a little for their
    /// disarm: (time of the re-arm, slot in `frames`).
    superseded: Vec<(u64, usize)>,
    /// Task names, as the recording knows them at the current time.
    names: FxHashMap<i32, TaskComm>,
    /// Lowest watch id armed so far: ids below it were armed before.
    lowest_arm_id: Option<u64>,
    writers: Vec<Writer>,
    /// Index in `writers` by (tid, name), and the last one found: a
    /// writer mostly writes many times in a row.
    writer_index: FxHashMap<(i32, Option<TaskComm>), usize>,
    last_writer: Option<((i32, Option<TaskComm>), usize)>,
    summary: Summary,
    /// The first hits of each agreement other than agree.
    pub examples: Vec<MatchedHit>,
    writer_chain: ChainFn<'c>,
    on_frame: Box<dyn FnMut(&Frame) + 'c>,
}

impl std::fmt::Debug for Correlator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlator")
            .field("open", &self.open.len())
            .field("summary", &self.summary)
            .finish()
    }
}

/// What is left once the stream ended.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub writers: Vec<Writer>,
    /// Example hits whose matches are not "agree" (a few of each kind).
    pub examples: Vec<MatchedHit>,
}

impl<'c> Correlator<'c> {
    pub fn new(
        writer_chain: impl Fn(&Hit) -> &[u64] + 'c,
        on_frame: impl FnMut(&Frame) + 'c,
    ) -> Correlator<'c> {
        Correlator {
            frames: Frames::default(),
            open: FxHashMap::default(),
            slot_owner: FxHashMap::default(),
            superseded: Vec::new(),
            names: FxHashMap::default(),
            lowest_arm_id: None,
            writers: Vec::new(),
            writer_index: FxHashMap::default(),
            last_writer: None,
            summary: Summary::default(),
            examples: Vec::new(),
            writer_chain: Box::new(writer_chain),
            on_frame: Box::new(on_frame),
        }
    }

    /// Names known before the first event (e.g. the tracing data's saved
    /// cmdlines); later COMM records and event fields override them.
    pub fn add_names(&mut self, names: impl IntoIterator<Item = (i32, TaskComm)>) {
        for (tid, name) in names {
            self.names.entry(tid).or_insert(name);
        }
    }

    pub fn push(&mut self, event: Event) {
        if !self.superseded.is_empty() {
            self.expire_superseded(event.time_ns());
        }
        match event {
            Event::Arm(a) => self.arm(a),
            Event::Disarm(d) => self.disarm(d),
            Event::Hit(h) => self.hit(h),
            Event::Comm(Comm { tid, name, .. }) => {
                self.names.insert(tid, name);
            }
            Event::Fork(Fork {
                tid, parent_tid, ..
            }) => {
                if let Some(name) = self.names.get(&parent_tid).copied() {
                    self.names.insert(tid, name);
                }
            }
        }
    }

    fn frame(&self, slot: usize) -> &Frame {
        &self.frames.frames[slot]
    }

    fn frame_mut(&mut self, slot: usize) -> &mut Frame {
        &mut self.frames.frames[slot]
    }

    fn expire_superseded(&mut self, now: u64) {
        let mut i = 0;
        while i < self.superseded.len() {
            if now > self.superseded[i].0.saturating_add(SUPERSEDE_GRACE_NS) {
                let (at, slot) = self.superseded.swap_remove(i);
                self.frame_mut(slot).end = End::DisarmLost(at);
                self.close(slot);
            } else {
                i += 1;
            }
        }
    }

    /// Moves the open frame `id` aside: its slot was armed again at `at`.
    fn supersede(&mut self, id: u64, at: u64) {
        if let Some(slot) = self.open.remove(&id) {
            // A frame superseded before on the same watch slot cannot still
            // be waiting for its disarm: two arms came after it.
            let watch_slot = self.frame(slot).slot;
            if let Some(i) = self
                .superseded
                .iter()
                .position(|&(_, s)| self.frame(s).slot == watch_slot)
            {
                let (old_at, old) = self.superseded.swap_remove(i);
                self.frame_mut(old).end = End::DisarmLost(old_at);
                self.close(old);
            }
            self.superseded.push((at, slot));
        }
    }

    /// The superseded frame of watch `id`, as an index into `superseded`.
    fn superseded_position(&self, id: u64) -> Option<usize> {
        self.superseded
            .iter()
            .position(|&(_, s)| self.frame(s).id == id)
    }

    fn arm(&mut self, a: Arm) {
        let time = a.ctx.time_ns;
        // A reused id (module reloaded mid-recording) ends the old frame.
        if let Some(old) = self.open.remove(&a.id) {
            self.frame_mut(old).end = End::DisarmLost(time);
            self.close(old);
        }
        if let Some(&owner) = self.slot_owner.get(&a.slot) {
            self.supersede(owner, time);
        }
        // A stack address belongs to one live frame of a task: an open
        // frame of the same task over the same bytes has died (its disarm
        // was lost).
        let (lo, hi) = (a.addr, a.addr + u64::from(a.len));
        let dead: Vec<u64> = self
            .open
            .values()
            .map(|&s| self.frame(s))
            .filter(|f| f.tid == Some(a.ctx.tid) && f.addr < hi && lo < f.addr + u64::from(f.len))
            .map(|f| f.id)
            .collect();
        for id in dead {
            self.supersede(id, time);
        }
        // The kernel's name for the victim (a kernel thread created during
        // the recording has no COMM record).
        if let Some(name) = a.victim_comm {
            self.names.insert(a.ctx.tid, name);
        }
        self.lowest_arm_id = Some(self.lowest_arm_id.map_or(a.id, |l| l.min(a.id)));
        self.slot_owner.insert(a.slot, a.id);
        let id = a.id;
        let slot = self.frames.insert(Frame {
            id: a.id,
            missing_arm: None,
            disarm: None,
            end: End::StillArmed,
            hits: Vec::new(),
            hit_count: 0,
            task_name: a.victim_comm,
            tid: Some(a.ctx.tid),
            slot: a.slot,
            addr: a.addr,
            len: a.len,
            probe_ip: Some(a.probe_ip),
            first_ns: time,
            arm: Some(a),
        });
        self.open.insert(id, slot);
    }

    fn missing_arm(&self, id: u64) -> MissingArm {
        match self.lowest_arm_id {
            Some(lowest) if id > lowest => MissingArm::Lost,
            _ => MissingArm::BeforeRecording,
        }
    }

    fn disarm(&mut self, d: Disarm) {
        let slot = match self.open.remove(&d.id) {
            Some(s) => s,
            None => match self.superseded_position(d.id) {
                Some(i) => self.superseded.swap_remove(i).1,
                None => {
                    let mut f = Frame::partial(d.id, self.missing_arm(d.id), d.ctx.time_ns);
                    f.slot = d.slot;
                    f.addr = d.addr;
                    self.frames.insert(f)
                }
            },
        };
        if self.slot_owner.get(&d.slot) == Some(&d.id) {
            self.slot_owner.remove(&d.slot);
        }
        let frame = self.frame_mut(slot);
        frame.end = End::Disarmed;
        frame.disarm = Some(d);
        self.close(slot);
    }

    fn hit(&mut self, h: Hit) {
        let time = h.ctx.time_ns;
        // The kernel's own names: the victim's, and the writer's (always
        // the task the event's pid is, even for an interrupt).
        self.names.insert(h.victim_pid, h.victim_comm);
        if let Some(w) = h.writer_comm {
            self.names.insert(h.ctx.tid, w);
        }
        let armed = |s: usize| self.frame(s).id == h.id && self.frame(s).arm.is_some();
        let by_id = (self.open.get(&h.id).is_some_and(|&s| armed(s))
            || self.superseded.iter().any(|&(_, s)| armed(s)))
        .then_some(h.id);
        // Open frames are few (one per hardware slot, plus partial ones):
        // a scan is the index.
        let mut one = None;
        let mut more: Vec<u64> = Vec::new();
        for &s in self.open.values() {
            let f = self.frame(s);
            let Some(arm) = &f.arm else { continue };
            if arm.ctx.time_ns <= time && f.overlaps(h.addr, h.len) {
                if let Some(first) = one.take() {
                    more.push(first);
                }
                if more.is_empty() {
                    one = Some(f.id);
                } else {
                    more.push(f.id);
                }
            }
        }
        let by_time = match (one, more.is_empty()) {
            (None, true) => TimeMatch::None,
            (Some(id), true) => TimeMatch::One(id),
            _ => {
                more.extend(one);
                more.sort_unstable();
                TimeMatch::Ambiguous(more)
            }
        };
        let writer_name = h
            .writer_comm
            .or_else(|| self.names.get(&h.ctx.tid).copied());
        let m = MatchedHit {
            hit: h,
            writer_name,
            by_id,
            by_time,
        };
        let agreement = m.agreement();
        let s = &mut self.summary;
        s.hits_recorded += 1;
        if agreement != Agreement::Agree {
            *s.agreements.entry(agreement).or_default() += 1;
            let seen = self
                .examples
                .iter()
                .filter(|e| e.agreement() == agreement)
                .count();
            if seen < EXAMPLES_KEPT {
                self.examples.push(m.clone());
            }
        }

        let chain = (self.writer_chain)(&m.hit);
        let key = (m.hit.ctx.tid, m.writer_name);
        let at = match self.last_writer {
            Some((last, at)) if last == key => at,
            _ => {
                let writers = &mut self.writers;
                let at = *self.writer_index.entry(key).or_insert_with(|| {
                    writers.push(Writer {
                        tid: m.hit.ctx.tid,
                        comm: m.writer_name,
                        sites: Vec::new(),
                    });
                    writers.len() - 1
                });
                self.last_writer = Some((key, at));
                at
            }
        };
        let writer = &mut self.writers[at];
        let site = match writer
            .sites
            .iter()
            .position(|s| s.writer_ip == m.hit.writer_ip && same_chain(&s.chain, chain))
        {
            Some(i) => &mut writer.sites[i],
            None => {
                // The chain is copied only for a new site, not for every hit.
                writer.sites.push(Site {
                    writer_ip: m.hit.writer_ip,
                    chain: chain.to_vec(),
                    count: 0,
                    cpus: BTreeSet::new(),
                    victims: BTreeSet::new(),
                    examples: Vec::new(),
                });
                writer.sites.last_mut().expect("just pushed")
            }
        };
        site.count += 1;
        site.cpus.extend(m.hit.ctx.cpu.map(u32::from));
        if site.victims.len() < 1000 {
            site.victims.insert(m.hit.id);
        }
        if site.examples.len() < HITS_KEPT {
            site.examples.push(m.clone());
        }

        // The frame its id names: open, waiting for its disarm, or new
        // (its arm is not in the recording).
        let slot = match self.open.get(&m.hit.id) {
            Some(&s) => s,
            None => match self.superseded_position(m.hit.id) {
                Some(i) => self.superseded[i].1,
                None => {
                    let watch_slot = m.hit.slot;
                    // A frame without an arm ends when its slot is armed again.
                    if let Some(&owner) = self.slot_owner.get(&watch_slot) {
                        if self
                            .open
                            .get(&owner)
                            .is_some_and(|&s| self.frame(s).arm.is_none())
                        {
                            self.supersede(owner, time);
                        }
                    }
                    let mut f = Frame::partial(m.hit.id, self.missing_arm(m.hit.id), time);
                    f.slot = watch_slot;
                    f.addr = m.hit.addr;
                    f.len = m.hit.len;
                    f.probe_ip = Some(m.hit.probe_ip);
                    f.tid = Some(m.hit.victim_pid);
                    self.slot_owner.entry(watch_slot).or_insert(m.hit.id);
                    let s = self.frames.insert(f);
                    self.open.insert(m.hit.id, s);
                    s
                }
            },
        };
        let frame = &mut self.frames.frames[slot];
        if frame.arm.is_none() {
            self.summary.unmatched_hits += 1;
        }
        frame.hit_count += 1;
        if frame.task_name.is_none() {
            frame.task_name = Some(m.hit.victim_comm);
        }
        if frame.hits.len() < HITS_KEPT {
            frame.hits.push(m);
        }
    }

    /// Counts the frame in `slot`, hands it to the callback and frees the
    /// slot.
    fn close(&mut self, slot: usize) {
        let Correlator {
            frames,
            slot_owner,
            names,
            summary: s,
            on_frame,
            ..
        } = self;
        let frame = &mut frames.frames[slot];
        if frame.task_name.is_none() {
            frame.task_name = frame.tid.and_then(|t| names.get(&t).copied());
        }
        if slot_owner.get(&frame.slot) == Some(&frame.id) && frame.end != End::StillArmed {
            slot_owner.remove(&frame.slot);
        }
        s.frames += 1;
        let verdict = frame.verdict();
        match verdict {
            FrameVerdict::Hit => {
                s.hit += 1;
                s.victims += 1;
            }
            FrameVerdict::SilentlyCorrupted => {
                s.silent += 1;
                s.victims += 1;
                s.corruptions += 1;
            }
            FrameVerdict::Clean => s.clean += 1,
            FrameVerdict::Unknown => s.unknown += 1,
            FrameVerdict::StillArmed => s.still_armed += 1,
            FrameVerdict::DisarmLost => s.disarm_lost += 1,
        }
        s.corruptions += frame.writes();
        if matches!(frame.end, End::DisarmLost(_)) {
            s.disarms_missing += 1;
        }
        match frame.missing_arm {
            Some(MissingArm::BeforeRecording) => s.armed_before_recording += 1,
            Some(MissingArm::Lost) => s.arms_missing += 1,
            None => {}
        }
        if let Some(k) = frame.kernel_hits() {
            s.hits_in_kernel += k;
            if k > frame.hit_count {
                s.frames_missing_hits += 1;
                s.hits_missing += k - frame.hit_count;
            } else if k < frame.hit_count {
                s.frames_extra_hits += 1;
            }
        }
        on_frame(frame);
        // The frame stays in its slot until the slot is reused; what it
        // holds (its hits) is dropped then.
        frames.free.push(slot);
    }

    /// Closes the frames still armed and returns the totals.
    pub fn finish(mut self) -> Outcome {
        let mut superseded: Vec<(u64, usize)> = std::mem::take(&mut self.superseded);
        superseded.sort_by_key(|&(_, s)| self.frame(s).first_ns);
        for (at, slot) in superseded {
            self.frame_mut(slot).end = End::DisarmLost(at);
            self.close(slot);
        }
        let mut still: Vec<usize> = self.open.drain().map(|(_, s)| s).collect();
        still.sort_by_key(|&s| (self.frame(s).first_ns, self.frame(s).id));
        for slot in still {
            self.close(slot);
        }
        let mut writers: Vec<Writer> = std::mem::take(&mut self.writers);
        writers.sort_by(|a, b| (a.tid, &a.comm).cmp(&(b.tid, &b.comm)));
        for w in &mut writers {
            w.sites
                .sort_by(|a, b| (a.writer_ip, &a.chain).cmp(&(b.writer_ip, &b.chain)));
        }
        self.summary.writers = writers.len() as u64;
        Outcome {
            summary: self.summary.clone(),
            writers,
            examples: std::mem::take(&mut self.examples),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Context;
    use ksw_core::events::{DisarmReason, ExitState, WriterContext};

    fn ctx(time_ns: u64, tid: i32, cpu: u16) -> Context {
        Context {
            time_ns,
            cpu: Some(cpu),
            tid,
            ..Context::default()
        }
    }

    fn arm_on(id: u64, slot: u8, t: u64, addr: u64) -> Event {
        Event::Arm(Arm {
            ctx: ctx(t, 100 + id as i32, 0),
            id,
            slot,
            spec: 0,
            depth: 0,
            probe_ip: 0xffff_ffff_a000_1000,
            addr,
            len: 8,
            sp: addr - 0x40,
            value: 0xdead,
            canary: false,
            victim_comm: None,
        })
    }

    fn arm(id: u64, t: u64, addr: u64) -> Event {
        arm_on(id, (id % 4) as u8, t, addr)
    }

    fn hit(id: u64, t: u64, addr: u64, tid: i32, ip: u64) -> Event {
        Event::Hit(Hit {
            ctx: ctx(t, tid, 1),
            id,
            slot: (id % 4) as u8,
            addr,
            len: 8,
            writer_ip: ip,
            old_value: 0xdead,
            new_value: 0xbad,
            victim_pid: 100 + id as i32,
            victim_comm: "victim".into(),
            writer_comm: Some("writer".into()),
            probe_ip: 0xffff_ffff_a000_1000,
            context: Some(WriterContext::Task),
            by_victim: false,
            old_is_canary: false,
            new_is_canary: false,
            out_of_line: false,
        })
    }

    fn disarm(id: u64, t: u64, addr: u64, hits: u32, corrupted: bool) -> Event {
        Event::Disarm(Disarm {
            ctx: ctx(t, 100 + id as i32, 0),
            id,
            slot: (id % 4) as u8,
            addr,
            arm_value: 0xdead,
            exit_value: if corrupted { 0xbad } else { 0xdead },
            hits,
            corrupted: if corrupted {
                ExitState::Changed
            } else {
                ExitState::Intact
            },
            reason: Some(DisarmReason::Return),
            canary: false,
            exit_is_canary: false,
        })
    }

    fn run(events: Vec<Event>, chain: Vec<u64>) -> (Vec<Frame>, Outcome) {
        let mut frames = Vec::new();
        let outcome = {
            let mut c = Correlator::new(
                |h: &Hit| &h.ctx.callchain[..],
                |f: &Frame| frames.push(f.clone()),
            );
            for e in events {
                c.push(match e {
                    Event::Hit(mut h) => {
                        h.ctx.callchain = chain.clone().into_boxed_slice();
                        Event::Hit(h)
                    }
                    e => e,
                });
            }
            c.finish()
        };
        (frames, outcome)
    }

    #[test]
    fn one_victim_one_writer() {
        let (frames, o) = run(
            vec![
                arm(1, 10, 0x1000),
                hit(1, 20, 0x1000, 7, 0xa0),
                disarm(1, 30, 0x1000, 1, true),
            ],
            vec![],
        );
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].hit_count, 1);
        assert_eq!(frames[0].verdict(), FrameVerdict::Hit);
        assert_eq!(frames[0].hits[0].agreement(), Agreement::Agree);
        assert_eq!(frames[0].task_name, Some(TaskComm::from("victim")));
        assert_eq!(o.writers.len(), 1);
        assert_eq!(o.summary.headline(), "1 corruption of 1 victim by 1 writer");
    }

    #[test]
    fn repeated_identical_hits_group_into_one_site() {
        let (_, o) = run(
            vec![
                arm(1, 10, 0x1000),
                arm(2, 11, 0x2000),
                hit(1, 20, 0x1000, 7, 0xa0),
                hit(2, 21, 0x2000, 7, 0xa0),
                hit(2, 22, 0x2000, 7, 0xb0),
                disarm(1, 30, 0x1000, 1, true),
                disarm(2, 31, 0x2000, 2, true),
            ],
            vec![1, 2, 3],
        );
        assert_eq!(o.writers.len(), 1);
        let sites = &o.writers[0].sites;
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].count, 2);
        assert_eq!(sites[0].victims.len(), 2);
        assert_eq!(
            o.summary.headline(),
            "3 corruptions of 2 victims by 1 writer"
        );
    }

    #[test]
    fn clean_and_silent_verdicts() {
        let (_, o) = run(
            vec![
                arm(1, 10, 0x1000),
                arm(2, 11, 0x2000),
                disarm(1, 30, 0x1000, 0, false),
                disarm(2, 31, 0x2000, 0, true),
            ],
            vec![],
        );
        assert_eq!(o.summary.clean, 1);
        assert_eq!(o.summary.silent, 1);
        assert_eq!(
            o.summary.headline(),
            "1 corruption of 1 victim by 0 writers"
        );
    }

    #[test]
    fn the_two_matches_are_independent_and_disagreement_shows() {
        // The hit names id 2 (armed, elsewhere) but lands in frame 1's bytes.
        let (frames, o) = run(
            vec![
                arm(1, 10, 0x1000),
                arm(2, 15, 0x2000),
                hit(2, 20, 0x1000, 7, 0xa0),
                disarm(1, 30, 0x1000, 0, true),
                disarm(2, 50, 0x2000, 0, false),
            ],
            vec![],
        );
        assert_eq!(o.summary.disagreements(), 1);
        let m = &o.examples[0];
        assert_eq!((m.by_id, &m.by_time), (Some(2), &TimeMatch::One(1)));
        assert_eq!(m.agreement(), Agreement::Disagree);
        // Attached to the frame its id names.
        assert_eq!(frames.iter().find(|f| f.id == 2).unwrap().hit_count, 1);
    }

    #[test]
    fn hits_and_disarms_without_arms_make_frames_of_their_own() {
        let (frames, o) = run(
            vec![hit(9, 20, 0x1000, 7, 0xa0), disarm(8, 30, 0x3000, 0, false)],
            vec![],
        );
        assert_eq!(o.summary.unmatched_hits, 1);
        assert_eq!(o.summary.armed_before_recording, 2);
        assert_eq!(frames.len(), 2);
        let f9 = frames.iter().find(|f| f.id == 9).unwrap();
        assert_eq!(f9.hits[0].agreement(), Agreement::Unmatched);
        assert_eq!(f9.missing_arm, Some(MissingArm::BeforeRecording));
        assert_eq!(o.summary.headline(), "1 corruption of 1 victim by 1 writer");
    }

    #[test]
    fn a_frame_still_armed_at_the_end() {
        let (frames, o) = run(
            vec![arm(1, 10, 0x1000), hit(1, 20, 0x1000, 7, 0xa0)],
            vec![],
        );
        assert_eq!(frames[0].verdict(), FrameVerdict::Hit);
        assert_eq!(frames[0].end, End::StillArmed);
        assert_eq!(frames[0].hits[0].agreement(), Agreement::Agree);
        assert_eq!(o.summary.victims, 1);
        let (_, o) = run(vec![arm(1, 10, 0x1000)], vec![]);
        assert_eq!(o.summary.still_armed, 1);
    }

    #[test]
    fn deleted_hits_are_counted_by_the_kernel() {
        let (frames, o) = run(
            vec![arm(1, 10, 0x1000), disarm(1, 30, 0x1000, 3, true)],
            vec![],
        );
        assert_eq!(frames[0].verdict(), FrameVerdict::Hit);
        assert_eq!((frames[0].hit_count, frames[0].kernel_hits()), (0, Some(3)));
        assert_eq!(
            (o.summary.frames_missing_hits, o.summary.hits_missing),
            (1, 3)
        );
        assert_eq!(
            o.summary.headline(),
            "3 corruptions of 1 victim by 0 writers"
        );
    }

    #[test]
    fn a_lost_disarm_closes_the_frame_when_its_slot_is_armed_again() {
        // Frame 1 (slot 1) loses its disarm; frame 5 re-arms slot 1 much later.
        let events = vec![
            arm(1, 10, 0x1000),
            arm_on(5, 1, 10 + 2 * SUPERSEDE_GRACE_NS, 0x1000),
            hit(5, 20 + 2 * SUPERSEDE_GRACE_NS, 0x1000, 7, 0xa0),
            disarm(5, 30 + 2 * SUPERSEDE_GRACE_NS, 0x1000, 1, true),
        ];
        let (frames, o) = run(events, vec![]);
        let f1 = frames.iter().find(|f| f.id == 1).unwrap();
        assert!(matches!(f1.end, End::DisarmLost(_)));
        assert_eq!(f1.verdict(), FrameVerdict::DisarmLost);
        // Not ambiguous: frame 1 was closed before the hit.
        assert_eq!(o.summary.disagreements(), 0);
        assert_eq!(o.summary.disarms_missing, 1);
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn a_disarm_just_after_the_re_arm_of_its_slot_still_closes_its_frame() {
        // The module frees the slot before it emits the disarm: the next arm
        // on that slot can come first in time.
        let (frames, o) = run(
            vec![
                arm_on(1, 0, 10, 0x1000),
                arm_on(2, 0, 20, 0x2000),
                disarm(1, 25, 0x1000, 0, false),
                Event::Disarm(match disarm(2, 40, 0x2000, 0, false) {
                    Event::Disarm(mut d) => {
                        d.slot = 0;
                        d
                    }
                    _ => unreachable!(),
                }),
            ],
            vec![],
        );
        assert_eq!(o.summary.disarms_missing, 0);
        assert!(frames.iter().all(|f| f.end == End::Disarmed));
    }

    #[test]
    fn lost_arms_are_told_from_arms_before_the_recording() {
        let (frames, o) = run(
            vec![
                arm(5, 10, 0x1000),
                disarm(5, 20, 0x1000, 0, false),
                // Id 3 is older than the first arm: armed before.
                disarm(3, 21, 0x3000, 0, false),
                // Id 7 is newer: its arm was lost.
                hit(7, 30, 0x7000, 7, 0xa0),
                disarm(7, 40, 0x7000, 1, true),
            ],
            vec![],
        );
        assert_eq!(o.summary.armed_before_recording, 1);
        assert_eq!(o.summary.arms_missing, 1);
        let f7 = frames.iter().find(|f| f.id == 7).unwrap();
        assert_eq!(f7.missing_arm, Some(MissingArm::Lost));
        assert_eq!(f7.hit_count, 1);
        assert_eq!(f7.kernel_hits(), Some(1));
    }

    #[test]
    fn names_come_from_comm_records_in_time_order() {
        let (frames, _) = run(
            vec![
                Event::Comm(Comm {
                    time_ns: 5,
                    pid: 101,
                    tid: 101,
                    name: "kthread-new".into(),
                }),
                arm(1, 10, 0x1000),
                disarm(1, 30, 0x1000, 0, false),
            ],
            vec![],
        );
        assert_eq!(frames[0].task_name, Some(TaskComm::from("kthread-new")));
    }

    #[test]
    fn a_kernel_thread_without_a_comm_record_is_named_by_its_arm() {
        // Since 6.2 a kernel thread is named in copy_process: its FORK
        // record (parent kthreadd) is followed by no COMM record. The
        // arm's own victim_comm names it.
        let kthread_frame = |victim_comm: Option<TaskComm>| {
            let Event::Arm(mut a) = arm(1, 10, 0x1000) else {
                unreachable!()
            };
            a.victim_comm = victim_comm;
            let (frames, _) = run(
                vec![
                    Event::Comm(Comm {
                        time_ns: 1,
                        pid: 2,
                        tid: 2,
                        name: "kthreadd".into(),
                    }),
                    Event::Fork(Fork {
                        time_ns: 5,
                        tid: 101,
                        parent_tid: 2,
                    }),
                    Event::Arm(a),
                    disarm(1, 30, 0x1000, 0, false),
                ],
                vec![],
            );
            frames[0].task_name
        };
        assert_eq!(
            kthread_frame(Some(TaskComm::from("kworker-new"))),
            Some(TaskComm::from("kworker-new"))
        );
        // Without the field (old recordings), the fork's inherited name.
        assert_eq!(kthread_frame(None), Some(TaskComm::from("kthreadd")));
    }

    #[test]
    fn memory_stays_bounded_on_a_hit_storm() {
        let mut events = vec![arm(1, 10, 0x1000)];
        events.extend((0..10_000).map(|k| hit(1, 20 + k, 0x1000, 7, 0xa0)));
        events.push(disarm(1, 20_000, 0x1000, 10_000, true));
        let (frames, o) = run(events, vec![]);
        assert_eq!(frames[0].hit_count, 10_000);
        assert_eq!(frames[0].hits.len(), HITS_KEPT);
        assert_eq!(o.writers[0].sites[0].count, 10_000);
        assert_eq!(o.writers[0].sites[0].examples.len(), HITS_KEPT);
    }

    #[test]
    fn open_frames_stay_few_when_disarms_are_lost() {
        // 50k frames of one victim task at one address, on rotating slots,
        // every other disarm lost: never more than a few frames open, and
        // no hit is ambiguous.
        let step = 1_000;
        let mut max_open = 0;
        let mut c = Correlator::new(|_: &Hit| &[], |_: &Frame| {});
        for id in 0..50_000u64 {
            let t = id * step;
            let retag = |e: Event| match e {
                Event::Arm(mut a) => {
                    a.ctx.tid = 100;
                    Event::Arm(a)
                }
                Event::Hit(mut h) => {
                    h.victim_pid = 100;
                    Event::Hit(h)
                }
                Event::Disarm(mut d) => {
                    d.ctx.tid = 100;
                    Event::Disarm(d)
                }
                e => e,
            };
            c.push(retag(arm(id, t, 0x1000)));
            c.push(retag(hit(id, t + 1, 0x1000, 7, 0xa0)));
            if id % 2 == 0 {
                c.push(retag(disarm(id, t + 2, 0x1000, 1, true)));
            }
            max_open = max_open.max(c.open.len() + c.superseded.len());
        }
        let o = c.finish();
        assert!(max_open <= 8, "{max_open} frames open");
        assert_eq!(o.summary.disagreements(), 0);
        // The last frame's disarm is lost too, but the recording ends first.
        assert_eq!(o.summary.disarms_missing, 24_999);
        assert_eq!(o.summary.frames, 50_000);
    }
}
