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
//! reported, never papered over. A hit is attached to the frame its id
//! names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ksw_core::events::Verdict;

use crate::events::{Arm, Disarm, Event, Hit};
use crate::idmap::IdMap;

/// How many hits each frame and each writer site keep for display; the
/// rest are counted.
pub const HITS_KEPT: usize = 10;
/// Hits matching no frame kept for display.
const UNMATCHED_KEPT: usize = 100;

/// The time-and-address match of a hit: frames armed at that time whose
/// bytes overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeMatch {
    One(u64),
    None,
    Ambiguous(Vec<u64>),
}

/// A hit with both of its matches.
#[derive(Clone, Debug)]
pub struct MatchedHit {
    pub hit: Hit,
    /// Watch id of the armed frame the hit's id names, if that frame is armed.
    pub by_id: Option<u64>,
    pub by_time: TimeMatch,
}

impl MatchedHit {
    pub fn agreement(&self) -> &'static str {
        match (self.by_id, &self.by_time) {
            (Some(a), TimeMatch::One(b)) if a == *b => "agree",
            (None, TimeMatch::None) => "unmatched",
            (Some(_), TimeMatch::One(_)) => "disagree",
            (_, TimeMatch::Ambiguous(_)) => "ambiguous",
            (Some(_), TimeMatch::None) => "id only",
            (None, TimeMatch::One(_)) => "time only",
        }
    }
}

/// One watched frame, from arm to disarm (or the end of the recording).
#[derive(Clone, Debug)]
pub struct Frame {
    pub arm: Arm,
    pub disarm: Option<Disarm>,
    /// The first [`HITS_KEPT`] hits.
    pub hits: Vec<MatchedHit>,
    pub hit_count: u64,
}

impl Frame {
    /// None while the recording ends before the frame was disarmed.
    pub fn verdict(&self) -> Option<Verdict> {
        self.disarm
            .as_ref()
            .map(|d| Verdict::of(u64::from(d.hits), d.corrupted))
    }

    fn overlaps(&self, addr: u64, len: u8) -> bool {
        let (a0, a1) = (self.arm.addr, self.arm.addr + u64::from(self.arm.len));
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
    pub comm: String,
    pub sites: Vec<Site>,
}

impl Writer {
    pub fn hit_count(&self) -> u64 {
        self.sites.iter().map(|s| s.count).sum()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Caught writes plus silent corruptions.
    pub corruptions: u64,
    /// Frames that were written or silently corrupted.
    pub victims: u64,
    /// Distinct writer tasks.
    pub writers: u64,
    pub frames: u64,
    pub hit: u64,
    pub clean: u64,
    pub silent: u64,
    /// Frames disarmed after they died (backstop): value at death unknown.
    pub unknown: u64,
    pub still_armed: u64,
    pub unmatched_hits: u64,
    pub disagreements: u64,
    pub orphan_disarms: u64,
}

impl Summary {
    /// "N corruptions of M victims by K writers".
    pub fn headline(&self) -> String {
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        format!(
            "{} of {} by {}",
            plural(self.corruptions, "corruption"),
            plural(self.victims, "victim"),
            plural(self.writers, "writer")
        )
    }
}

/// The name a writer is shown under: the kernel's own record of it if the
/// event has one, else the recording's COMM tracking.
pub fn writer_comm(hit: &Hit) -> Arc<str> {
    hit.writer_comm
        .clone()
        .or_else(|| hit.ctx.comm.clone())
        .unwrap_or_else(|| Arc::from("?"))
}

type SiteKey = (u64, Vec<u64>);
/// Cuts a hit's recorded call chain to the writer's part.
type ChainFn<'c> = Box<dyn Fn(&Hit) -> Vec<u64> + 'c>;

/// Consumes the event stream; closed frames go to the `on_frame` callback.
pub struct Correlator<'c> {
    open: IdMap<u64, Frame>,
    writers: BTreeMap<(i32, Arc<str>), BTreeMap<SiteKey, Site>>,
    summary: Summary,
    unmatched: Vec<MatchedHit>,
    /// Agreements other than "agree", with the hit (for notes).
    pub disagreements: Vec<MatchedHit>,
    writer_chain: ChainFn<'c>,
    on_frame: Box<dyn FnMut(Frame) + 'c>,
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
    pub unmatched: Vec<MatchedHit>,
    pub disagreements: Vec<MatchedHit>,
}

impl<'c> Correlator<'c> {
    pub fn new(
        writer_chain: impl Fn(&Hit) -> Vec<u64> + 'c,
        on_frame: impl FnMut(Frame) + 'c,
    ) -> Correlator<'c> {
        Correlator {
            open: IdMap::default(),
            writers: BTreeMap::new(),
            summary: Summary::default(),
            unmatched: Vec::new(),
            disagreements: Vec::new(),
            writer_chain: Box::new(writer_chain),
            on_frame: Box::new(on_frame),
        }
    }

    pub fn push(&mut self, event: Event) {
        match event {
            Event::Arm(a) => {
                // A reused id (module reloaded mid-recording) ends the old frame.
                if let Some(old) = self.open.remove(&a.id) {
                    self.close(old);
                }
                self.open.insert(
                    a.id,
                    Frame {
                        arm: a,
                        disarm: None,
                        hits: Vec::new(),
                        hit_count: 0,
                    },
                );
            }
            Event::Disarm(d) => match self.open.remove(&d.id) {
                Some(mut frame) => {
                    frame.disarm = Some(d);
                    self.close(frame);
                }
                None => self.summary.orphan_disarms += 1,
            },
            Event::Hit(h) => self.hit(h),
        }
    }

    fn hit(&mut self, h: Hit) {
        let by_id = self.open.get(&h.id).map(|f| f.arm.id);
        // Open frames are few (one per hardware slot, plus any whose
        // disarm was lost): a scan is the index.
        let mut candidates: Vec<u64> = self
            .open
            .values()
            .filter(|f| f.arm.ctx.time_ns <= h.ctx.time_ns && f.overlaps(h.addr, h.len))
            .map(|f| f.arm.id)
            .collect();
        candidates.sort_unstable();
        let by_time = match candidates.as_slice() {
            [] => TimeMatch::None,
            [one] => TimeMatch::One(*one),
            _ => TimeMatch::Ambiguous(candidates),
        };
        let m = MatchedHit {
            hit: h,
            by_id,
            by_time,
        };
        self.summary.corruptions += 1;
        match m.agreement() {
            "agree" => {}
            "unmatched" => {
                self.summary.unmatched_hits += 1;
                if self.unmatched.len() < UNMATCHED_KEPT {
                    self.unmatched.push(m.clone());
                }
            }
            _ => {
                self.summary.disagreements += 1;
                if self.disagreements.len() < UNMATCHED_KEPT {
                    self.disagreements.push(m.clone());
                }
            }
        }

        let chain = (self.writer_chain)(&m.hit);
        let site = self
            .writers
            .entry((m.hit.ctx.tid, writer_comm(&m.hit)))
            .or_default()
            .entry((m.hit.writer_ip, chain))
            // The chain is copied only for a new site, not for every hit.
            .or_insert_with_key(|(writer_ip, chain)| Site {
                writer_ip: *writer_ip,
                chain: chain.clone(),
                count: 0,
                cpus: BTreeSet::new(),
                victims: BTreeSet::new(),
                examples: Vec::new(),
            });
        site.count += 1;
        site.cpus.extend(m.hit.ctx.cpu);
        if site.victims.len() < 1000 {
            site.victims.extend(by_id);
        }
        if site.examples.len() < HITS_KEPT {
            site.examples.push(m.clone());
        }
        if let Some(frame) = by_id.and_then(|id| self.open.get_mut(&id)) {
            frame.hit_count += 1;
            if frame.hits.len() < HITS_KEPT {
                frame.hits.push(m);
            }
        }
    }

    fn close(&mut self, frame: Frame) {
        let s = &mut self.summary;
        s.frames += 1;
        match frame.verdict() {
            Some(Verdict::Clean) => s.clean += 1,
            Some(Verdict::SilentCorruption) => {
                s.silent += 1;
                s.corruptions += 1;
                s.victims += 1;
            }
            Some(Verdict::Hit) => {
                s.hit += 1;
                s.victims += 1;
            }
            Some(Verdict::Unknown) => s.unknown += 1,
            None => {
                s.still_armed += 1;
                if frame.hit_count > 0 {
                    s.victims += 1;
                }
            }
        }
        (self.on_frame)(frame);
    }

    /// Closes the frames still armed and returns the totals.
    pub fn finish(mut self) -> Outcome {
        let mut still: Vec<Frame> = self.open.drain().map(|(_, f)| f).collect();
        still.sort_by_key(|f| f.arm.ctx.time_ns);
        for frame in still {
            self.close(frame);
        }
        let writers: Vec<Writer> = std::mem::take(&mut self.writers)
            .into_iter()
            .map(|((tid, comm), sites)| Writer {
                tid,
                comm: comm.to_string(),
                sites: sites.into_values().collect(),
            })
            .collect();
        self.summary.writers = writers.len() as u64;
        Outcome {
            summary: self.summary.clone(),
            writers,
            unmatched: std::mem::take(&mut self.unmatched),
            disagreements: std::mem::take(&mut self.disagreements),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Context;
    use ksw_core::events::{DisarmReason, ExitState, WriterContext};

    fn ctx(time_ns: u64, tid: i32, cpu: u32) -> Context {
        Context {
            time_ns,
            cpu: Some(cpu),
            pid: tid,
            tid,
            ..Context::default()
        }
    }

    fn arm(id: u64, t: u64, addr: u64) -> Event {
        Event::Arm(Arm {
            ctx: ctx(t, 100 + id as i32, 0),
            id,
            slot: 0,
            spec: 0,
            depth: 0,
            probe_ip: 0xffff_ffff_a000_1000,
            addr,
            len: 8,
            sp: addr - 0x40,
            value: 0xdead,
            canary: false,
        })
    }

    fn hit(id: u64, t: u64, addr: u64, tid: i32, ip: u64) -> Event {
        Event::Hit(Hit {
            ctx: ctx(t, tid, 1),
            id,
            slot: 0,
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
        })
    }

    fn disarm(id: u64, t: u64, addr: u64, hits: u32, corrupted: bool) -> Event {
        Event::Disarm(Disarm {
            ctx: ctx(t, 100 + id as i32, 0),
            id,
            slot: 0,
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
            let mut c = Correlator::new(move |_| chain.clone(), |f| frames.push(f));
            for e in events {
                c.push(e);
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
        assert_eq!(frames[0].verdict(), Some(Verdict::Hit));
        assert_eq!(frames[0].hits[0].agreement(), "agree");
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
        assert_eq!(o.summary.disagreements, 1);
        let m = &o.disagreements[0];
        assert_eq!((m.by_id, &m.by_time), (Some(2), &TimeMatch::One(1)));
        assert_eq!(m.agreement(), "disagree");
        // Attached to the frame its id names.
        assert_eq!(frames.iter().find(|f| f.arm.id == 2).unwrap().hit_count, 1);
    }

    #[test]
    fn hits_and_disarms_without_arms() {
        let (_, o) = run(
            vec![hit(9, 20, 0x1000, 7, 0xa0), disarm(8, 30, 0x1000, 0, false)],
            vec![],
        );
        assert_eq!(o.unmatched[0].agreement(), "unmatched");
        assert_eq!(o.summary.unmatched_hits, 1);
        assert_eq!(o.summary.orphan_disarms, 1);
    }

    #[test]
    fn a_frame_still_armed_at_the_end() {
        let (frames, o) = run(
            vec![arm(1, 10, 0x1000), hit(1, 20, 0x1000, 7, 0xa0)],
            vec![],
        );
        assert_eq!(frames[0].verdict(), None);
        assert_eq!(frames[0].hits[0].agreement(), "agree");
        assert_eq!(o.summary.still_armed, 1);
        assert_eq!(o.summary.victims, 1);
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
}
