//! Tying hits (the writer's context) to victims (the armed frames).
//!
//! Two independent matches for every hit:
//! - by watch id: the module puts the same id in ksw_arm, ksw_hit and
//!   ksw_disarm;
//! - by time and address: the victim frames whose watch window (arm to
//!   disarm) contains the hit's time and whose watched bytes overlap the
//!   hit's.
//!
//! They agree on every healthy recording; a disagreement (ids reused
//! across module loads in one file, lost events, clocks from different
//! machines) is reported, never papered over.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ksw_core::events::Verdict;

use crate::events::{Arm, Disarm, Event, Hit};

/// How many earlier frames of one address a hit's time match looks at.
const OVERLAP_LOOKBACK: usize = 16;

/// One watched frame: its arm, its disarm (if recorded) and its hits.
#[derive(Debug)]
pub struct Victim<'r> {
    pub arm: &'r Arm,
    pub disarm: Option<&'r Disarm>,
    /// Indices into [`Analysis::hits`] whose id names this frame.
    pub hits: Vec<usize>,
}

impl Victim<'_> {
    /// None while the recording ends before the frame was disarmed.
    pub fn verdict(&self) -> Option<Verdict> {
        self.disarm
            .map(|d| Verdict::of(u64::from(d.hits), d.corrupted))
    }

    fn window_contains(&self, time_ns: u64) -> bool {
        self.arm.ctx.time_ns <= time_ns && self.disarm.is_none_or(|d| time_ns <= d.ctx.time_ns)
    }

    fn overlaps(&self, addr: u64, len: u8) -> bool {
        let (a0, a1) = (self.arm.addr, self.arm.addr + u64::from(self.arm.len));
        addr < a1 && a0 < addr + u64::from(len)
    }
}

/// The time-and-address match of a hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeMatch {
    One(usize),
    None,
    Ambiguous(Vec<usize>),
}

#[derive(Debug)]
pub struct HitMatch<'r> {
    pub hit: &'r Hit,
    /// The victim whose arm carries the hit's id.
    pub by_id: Option<usize>,
    pub by_time: TimeMatch,
}

impl HitMatch<'_> {
    /// The victim this hit belongs to, if both matches say the same.
    pub fn victim(&self) -> Option<usize> {
        match (self.by_id, &self.by_time) {
            (Some(a), TimeMatch::One(b)) if a == *b => Some(a),
            _ => None,
        }
    }

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

/// Hits of one writer task at one instruction with one call chain.
#[derive(Debug)]
pub struct Site {
    pub writer_ip: u64,
    pub chain: Vec<u64>,
    pub hits: Vec<usize>,
    pub cpus: BTreeSet<u32>,
    pub victims: BTreeSet<usize>,
}

#[derive(Debug)]
pub struct Writer {
    pub tid: i32,
    pub comm: String,
    pub sites: Vec<Site>,
}

impl Writer {
    pub fn hit_count(&self) -> usize {
        self.sites.iter().map(|s| s.hits.len()).sum()
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Caught writes plus silent corruptions.
    pub corruptions: usize,
    /// Frames that were written or silently corrupted.
    pub victims: usize,
    /// Distinct writer tasks.
    pub writers: usize,
    pub frames: usize,
    pub clean: usize,
    pub silent: usize,
    pub still_armed: usize,
    pub unmatched_hits: usize,
    pub disagreements: usize,
}

impl Summary {
    /// "N corruptions of M victims by K writers".
    pub fn headline(&self) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        format!(
            "{} of {} by {}",
            plural(self.corruptions, "corruption"),
            plural(self.victims, "victim"),
            plural(self.writers, "writer")
        )
    }
}

#[derive(Debug)]
pub struct Analysis<'r> {
    pub victims: Vec<Victim<'r>>,
    pub hits: Vec<HitMatch<'r>>,
    pub writers: Vec<Writer>,
    /// Disarms whose arm is not in the recording (armed before it began).
    pub orphan_disarms: Vec<&'r Disarm>,
    pub summary: Summary,
}

/// The name a writer is shown under: the kernel's own record of it if the
/// event has one, else the recording's COMM tracking.
fn writer_comm(hit: &Hit) -> String {
    hit.writer_comm
        .clone()
        .or_else(|| hit.ctx.comm.clone())
        .unwrap_or_else(|| "?".to_string())
}

pub fn analyze<'r>(events: &'r [Event], writer_chain: impl Fn(&Hit) -> Vec<u64>) -> Analysis<'r> {
    let mut victims: Vec<Victim<'r>> = Vec::new();
    let mut by_id: HashMap<u64, usize> = HashMap::new();
    let mut orphan_disarms = Vec::new();
    let mut hits: Vec<HitMatch<'r>> = Vec::new();

    for event in events {
        match event {
            Event::Arm(a) => {
                // A reused id (module reloaded mid-recording) starts a new frame.
                by_id.insert(a.id, victims.len());
                victims.push(Victim {
                    arm: a,
                    disarm: None,
                    hits: Vec::new(),
                });
            }
            Event::Disarm(d) => match by_id.get(&d.id) {
                Some(&v) if victims[v].disarm.is_none() => victims[v].disarm = Some(d),
                _ => orphan_disarms.push(d),
            },
            Event::Hit(h) => hits.push(HitMatch {
                hit: h,
                by_id: by_id.get(&h.id).copied(),
                by_time: TimeMatch::None,
            }),
        }
    }

    // Second, independent pass: time window and address. Watched ranges
    // are at most 8 bytes and aligned to their length, so overlapping
    // ranges share their 8-byte granule: index frames by granule, in arm
    // order, and search each hit's granule by time.
    let mut by_granule: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, v) in victims.iter().enumerate() {
        by_granule.entry(v.arm.addr >> 3).or_default().push(i);
    }
    for list in by_granule.values_mut() {
        list.sort_by_key(|&i| victims[i].arm.ctx.time_ns);
    }
    for m in &mut hits {
        let t = m.hit.ctx.time_ns;
        let Some(list) = by_granule.get(&(m.hit.addr >> 3)) else {
            continue;
        };
        // Frames armed at or before the hit, newest first. One address is
        // one task's stack slot, so its windows follow each other: looking
        // at the newest few finds the match and any overlap.
        let armed_before = list.partition_point(|&i| victims[i].arm.ctx.time_ns <= t);
        let candidates: Vec<usize> = list[..armed_before]
            .iter()
            .rev()
            .take(OVERLAP_LOOKBACK)
            .copied()
            .filter(|&i| {
                victims[i].window_contains(t) && victims[i].overlaps(m.hit.addr, m.hit.len)
            })
            .collect();
        m.by_time = match candidates.as_slice() {
            [] => TimeMatch::None,
            [one] => TimeMatch::One(*one),
            _ => TimeMatch::Ambiguous(candidates),
        };
    }
    for (i, m) in hits.iter().enumerate() {
        if let Some(v) = m.by_id {
            victims[v].hits.push(i);
        }
    }

    // Group by writer task, then by instruction and call chain.
    type Sites = BTreeMap<(u64, Vec<u64>), Site>;
    let mut groups: BTreeMap<(i32, String), Sites> = BTreeMap::new();
    for (i, m) in hits.iter().enumerate() {
        let chain = writer_chain(m.hit);
        let site = groups
            .entry((m.hit.ctx.tid, writer_comm(m.hit)))
            .or_default()
            .entry((m.hit.writer_ip, chain.clone()))
            .or_insert_with(|| Site {
                writer_ip: m.hit.writer_ip,
                chain,
                hits: Vec::new(),
                cpus: BTreeSet::new(),
                victims: BTreeSet::new(),
            });
        site.hits.push(i);
        site.cpus.extend(m.hit.ctx.cpu);
        site.victims.extend(m.by_id);
    }
    let writers: Vec<Writer> = groups
        .into_iter()
        .map(|((tid, comm), sites)| Writer {
            tid,
            comm,
            sites: sites.into_values().collect(),
        })
        .collect();

    let mut summary = Summary {
        frames: victims.len(),
        writers: writers.len(),
        ..Summary::default()
    };
    for v in &victims {
        match v.verdict() {
            Some(Verdict::Clean) => summary.clean += 1,
            Some(Verdict::SilentCorruption) => {
                summary.silent += 1;
                summary.corruptions += 1;
                summary.victims += 1;
            }
            Some(Verdict::Hit) => summary.victims += 1,
            None if !v.hits.is_empty() => {
                summary.still_armed += 1;
                summary.victims += 1;
            }
            None => summary.still_armed += 1,
        }
    }
    summary.corruptions += hits.len();
    summary.unmatched_hits = hits
        .iter()
        .filter(|m| m.by_id.is_none() && m.by_time == TimeMatch::None)
        .count();
    summary.disagreements = hits
        .iter()
        .filter(|m| !matches!(m.agreement(), "agree" | "unmatched"))
        .count();

    Analysis {
        victims,
        hits,
        writers,
        orphan_disarms,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Context;
    use ksw_core::events::DisarmReason;

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
            corrupted,
            reason: Some(DisarmReason::Return),
        })
    }

    #[test]
    fn one_victim_one_writer() {
        let events = [
            arm(1, 10, 0x1000),
            hit(1, 20, 0x1000, 7, 0xa0),
            disarm(1, 30, 0x1000, 1, true),
        ];
        let a = analyze(&events, |_| vec![]);
        assert_eq!(a.victims.len(), 1);
        assert_eq!(a.victims[0].hits, [0]);
        assert_eq!(a.victims[0].verdict(), Some(Verdict::Hit));
        assert_eq!(a.hits[0].agreement(), "agree");
        assert_eq!(a.writers.len(), 1);
        assert_eq!(a.summary.headline(), "1 corruption of 1 victim by 1 writer");
    }

    #[test]
    fn repeated_identical_hits_group_into_one_site() {
        let events = [
            arm(1, 10, 0x1000),
            arm(2, 11, 0x2000),
            hit(1, 20, 0x1000, 7, 0xa0),
            hit(2, 21, 0x2000, 7, 0xa0),
            hit(2, 22, 0x2000, 7, 0xb0),
            disarm(1, 30, 0x1000, 1, true),
            disarm(2, 31, 0x2000, 2, true),
        ];
        let a = analyze(&events, |_| vec![1, 2, 3]);
        assert_eq!(a.writers.len(), 1);
        let sites = &a.writers[0].sites;
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].hits.len(), 2);
        assert_eq!(sites[0].victims.len(), 2);
        assert_eq!(
            a.summary.headline(),
            "3 corruptions of 2 victims by 1 writer"
        );
    }

    #[test]
    fn clean_and_silent_verdicts() {
        let events = [
            arm(1, 10, 0x1000),
            arm(2, 11, 0x2000),
            disarm(1, 30, 0x1000, 0, false),
            disarm(2, 31, 0x2000, 0, true),
        ];
        let a = analyze(&events, |_| vec![]);
        assert_eq!(a.summary.clean, 1);
        assert_eq!(a.summary.silent, 1);
        assert_eq!(
            a.summary.headline(),
            "1 corruption of 1 victim by 0 writers"
        );
    }

    #[test]
    fn the_two_matches_are_independent_and_disagreement_shows() {
        // The hit names id 2 but lands in frame 1's window and bytes.
        let events = [
            arm(1, 10, 0x1000),
            arm(2, 40, 0x2000),
            hit(2, 20, 0x1000, 7, 0xa0),
            disarm(1, 30, 0x1000, 0, true),
            disarm(2, 50, 0x2000, 0, false),
        ];
        let a = analyze(&events, |_| vec![]);
        assert_eq!(a.hits[0].by_id, Some(1));
        assert_eq!(a.hits[0].by_time, TimeMatch::One(0));
        assert_eq!(a.hits[0].agreement(), "disagree");
        assert_eq!(a.hits[0].victim(), None);
        assert_eq!(a.summary.disagreements, 1);
    }

    #[test]
    fn hits_and_disarms_without_arms() {
        let events = [hit(9, 20, 0x1000, 7, 0xa0), disarm(8, 30, 0x1000, 0, false)];
        let a = analyze(&events, |_| vec![]);
        assert_eq!(a.hits[0].agreement(), "unmatched");
        assert_eq!(a.summary.unmatched_hits, 1);
        assert_eq!(a.orphan_disarms.len(), 1);
    }

    #[test]
    fn a_frame_still_armed_at_the_end() {
        let events = [arm(1, 10, 0x1000), hit(1, 20, 0x1000, 7, 0xa0)];
        let a = analyze(&events, |_| vec![]);
        assert_eq!(a.victims[0].verdict(), None);
        assert_eq!(a.hits[0].agreement(), "agree");
        assert_eq!(a.summary.still_armed, 1);
    }
}
