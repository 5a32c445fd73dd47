//! The report: one model (built frame by frame as the stream goes), printed
//! as text or JSON, so both outputs always say the same thing.

use std::collections::BTreeMap;

use crate::idmap::IdMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::correlate::{self, Frame, MatchedHit, Outcome, Summary, TimeMatch, Writer};
use crate::events::{Hit, Recording, StreamStats};
use crate::graph::Graph;
use crate::symbols::{self, Symbols};
use ksw_core::events::ExitState;

#[derive(Debug, Serialize)]
pub struct Task {
    pub pid: i32,
    pub comm: String,
}

#[derive(Debug, Serialize)]
pub struct HitOut {
    pub id: u64,
    pub time_ns: u64,
    pub cpu: Option<u32>,
    pub writer: Task,
    pub instruction: String,
    pub address: String,
    pub old_value: String,
    pub new_value: String,
    /// What the writer ran as: "task", "softirq", "hardirq", "nmi" (None
    /// in recordings of older modules).
    pub context: Option<String>,
    /// The writer is the victim task itself: its own code, or an
    /// interrupt that came in on its CPU while it ran.
    pub by_victim: bool,
    pub victim: Task,
    /// The victim frame's watch id by each matching method.
    pub matched_by_id: Option<u64>,
    pub matched_by_time: Option<u64>,
    pub agreement: String,
}

/// What function_graph shows around an event.
#[derive(Debug, Serialize)]
pub struct GraphOut {
    /// "by event id", "by time", or why nothing matched.
    pub anchor: String,
    /// Open calls at the event, outermost first.
    pub path: Vec<String>,
    /// For a victim: calls it made while armed (depth, function, duration ns).
    pub calls: Vec<(usize, String, Option<u64>)>,
}

#[derive(Debug, Serialize)]
pub struct FrameOut {
    pub id: u64,
    pub function: Option<String>,
    pub probe: String,
    pub depth: u32,
    pub task: Task,
    pub cpu: Option<u32>,
    pub address: String,
    pub len: u8,
    pub sp_offset: u64,
    pub armed_ns: u64,
    pub disarmed_ns: Option<u64>,
    pub value_at_arm: String,
    pub value_at_exit: Option<String>,
    pub verdict: String,
    pub disarm_reason: Option<String>,
    pub hit_count: u64,
    /// The first hits (see `hit_count` for all).
    pub hits: Vec<HitOut>,
    pub call_chain: Vec<String>,
    pub graph: Option<GraphOut>,
}

#[derive(Debug, Serialize)]
pub struct SiteOut {
    pub instruction: String,
    pub count: u64,
    pub cpus: Vec<u32>,
    /// Watch ids of the frames written.
    pub victims: Vec<u64>,
    /// The first hits.
    pub examples: Vec<HitOut>,
    pub call_chain: Vec<String>,
    pub graph: Option<GraphOut>,
}

#[derive(Debug, Serialize)]
pub struct WriterOut {
    pub task: Task,
    pub hits: u64,
    pub sites: Vec<SiteOut>,
}

#[derive(Debug, Serialize)]
pub struct RecordingInfo {
    pub path: String,
    pub hostname: Option<String>,
    pub os_release: Option<String>,
    pub clock: String,
    pub events: u64,
    pub lost: u64,
    pub symbols: String,
    pub graph: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SummaryOut {
    pub headline: String,
    pub corruptions: u64,
    pub victims: u64,
    pub writers: u64,
    pub frames: u64,
    pub hit: u64,
    pub clean: u64,
    pub silently_corrupted: u64,
    /// Frames whose value at death is unknown (backstop disarms).
    pub unknown: u64,
    pub still_armed: u64,
    pub unmatched_hits: u64,
    pub disagreements: u64,
}

/// Everything but the frames (those stream).
#[derive(Debug, Serialize)]
pub struct Tail {
    pub recording: RecordingInfo,
    pub summary: SummaryOut,
    pub writers: Vec<WriterOut>,
    pub unmatched_hits: Vec<HitOut>,
    pub notes: Vec<String>,
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// A value as the report shows it: the kernel never puts the task's stack
/// canary in an event, it says "canary" instead.
fn shown(v: u64, is_canary: bool) -> String {
    if is_canary {
        "canary".into()
    } else {
        hex(v)
    }
}

fn clock_name(clockid: Option<i32>) -> String {
    match clockid {
        Some(1) => "monotonic".into(),
        Some(4) => "monotonic_raw".into(),
        Some(7) => "boottime".into(),
        Some(0) => "realtime".into(),
        Some(c) => format!("clockid {c}"),
        None => "perf clock (not monotonic: function_graph times will not match)".into(),
    }
}

/// Turns correlator output into the report model.
#[derive(Debug)]
pub struct Renderer<'a> {
    pub symbols: &'a Symbols,
    pub graph: Option<(&'a str, &'a Graph)>,
}

impl Renderer<'_> {
    pub fn hit(&self, m: &MatchedHit) -> HitOut {
        let h = &m.hit;
        HitOut {
            id: h.id,
            time_ns: h.ctx.time_ns,
            cpu: h.ctx.cpu,
            writer: Task {
                pid: h.ctx.tid,
                comm: correlate::writer_comm(h).to_string(),
            },
            instruction: self.symbols.describe(h.writer_ip),
            address: hex(h.addr),
            old_value: shown(h.old_value, h.old_is_canary),
            new_value: shown(h.new_value, h.new_is_canary),
            context: h.context.map(|c| c.as_str().to_string()),
            by_victim: h.by_victim,
            victim: Task {
                pid: h.victim_pid,
                comm: h.victim_comm.to_string(),
            },
            matched_by_id: m.by_id,
            matched_by_time: match m.by_time {
                TimeMatch::One(id) => Some(id),
                _ => None,
            },
            agreement: m.agreement().to_string(),
        }
    }

    pub fn frame(&self, f: &Frame) -> FrameOut {
        let a = &f.arm;
        let chain = symbols::victim_chain(&a.ctx.callchain, a.probe_ip);
        FrameOut {
            id: a.id,
            function: self.symbols.function(a.probe_ip),
            probe: self.symbols.describe(a.probe_ip),
            depth: a.depth,
            // The kernel's own name for the victim (in hits), else COMM tracking.
            task: Task {
                pid: a.ctx.tid,
                comm: f
                    .hits
                    .first()
                    .map(|m| m.hit.victim_comm.to_string())
                    .or_else(|| a.ctx.comm.as_deref().map(str::to_string))
                    .unwrap_or_else(|| "?".into()),
            },
            cpu: a.ctx.cpu,
            address: hex(a.addr),
            len: a.len,
            sp_offset: a.addr.wrapping_sub(a.sp),
            armed_ns: a.ctx.time_ns,
            disarmed_ns: f.disarm.as_ref().map(|d| d.ctx.time_ns),
            value_at_arm: shown(a.value, a.canary),
            value_at_exit: f.disarm.as_ref().and_then(|d| match d.corrupted {
                ExitState::Unknown => None,
                _ => Some(shown(d.exit_value, d.exit_is_canary)),
            }),
            verdict: f
                .verdict()
                .map_or("still armed at end of recording".into(), |v| {
                    v.as_str().to_string()
                }),
            disarm_reason: f
                .disarm
                .as_ref()
                .and_then(|d| d.reason)
                .map(|r| r.as_str().to_string()),
            hit_count: f.hit_count,
            hits: f.hits.iter().map(|m| self.hit(m)).collect(),
            call_chain: chain
                .iter()
                .map(|&ip| self.symbols.describe_return(ip))
                .collect(),
            graph: self.graph.map(|(_, g)| {
                victim_graph(
                    g,
                    a.id,
                    a.addr,
                    a.ctx.tid,
                    a.ctx.time_ns,
                    f.disarm.as_ref().map(|d| d.ctx.time_ns),
                )
            }),
        }
    }

    fn writer(&self, w: &Writer) -> WriterOut {
        WriterOut {
            task: Task {
                pid: w.tid,
                comm: w.comm.clone(),
            },
            hits: w.hit_count(),
            sites: w
                .sites
                .iter()
                .map(|s| SiteOut {
                    instruction: self.symbols.describe(s.writer_ip),
                    count: s.count,
                    cpus: s.cpus.iter().copied().collect(),
                    victims: s.victims.iter().copied().collect(),
                    examples: s.examples.iter().map(|m| self.hit(m)).collect(),
                    call_chain: s
                        .chain
                        .iter()
                        .enumerate()
                        // The first entry is the writer ip itself, not a return address.
                        .map(|(i, &ip)| {
                            if i == 0 {
                                self.symbols.describe(ip)
                            } else {
                                self.symbols.describe_return(ip)
                            }
                        })
                        .collect(),
                    graph: match (self.graph, s.examples.first()) {
                        (Some((_, g)), Some(m)) => Some(writer_graph(g, &m.hit)),
                        _ => None,
                    },
                })
                .collect(),
        }
    }

    pub fn tail(&self, recording: &Recording, stats: StreamStats, outcome: &Outcome) -> Tail {
        let mut notes = Vec::new();
        let s: &Summary = &outcome.summary;
        if stats.lost > 0 {
            notes.push(format!(
                "{} events were lost while recording: verdicts may be incomplete",
                stats.lost
            ));
        }
        if s.unmatched_hits > 0 {
            notes.push(format!(
                "{} hit(s) match no recorded arm (armed before the recording started?)",
                s.unmatched_hits
            ));
        }
        for m in &outcome.disagreements {
            notes.push(format!(
                "hit on watch {} at {:#x}: id and time/address matches {} (by id: {:?}, by time: {:?})",
                m.hit.id,
                m.hit.addr,
                m.agreement(),
                m.by_id,
                m.by_time
            ));
        }
        if s.disagreements > outcome.disagreements.len() as u64 {
            notes.push(format!(
                "... and {} more disagreements",
                s.disagreements - outcome.disagreements.len() as u64
            ));
        }
        if s.orphan_disarms > 0 {
            notes.push(format!(
                "{} disarm(s) without a recorded arm (frames armed before the recording started)",
                s.orphan_disarms
            ));
        }
        if self.symbols.is_empty() && stats.events > 0 {
            notes.push("no kernel symbols: pass --kallsyms (a copy of the recording machine's /proc/kallsyms) or record with `ksw record`".into());
        }
        Tail {
            recording: RecordingInfo {
                path: recording.path.display().to_string(),
                hostname: recording.hostname.clone(),
                os_release: recording.os_release.clone(),
                clock: clock_name(recording.clockid),
                events: stats.events,
                lost: stats.lost,
                symbols: self.symbols.source.to_string(),
                graph: self.graph.map(|(p, _)| p.to_string()),
            },
            summary: SummaryOut {
                headline: s.headline(),
                corruptions: s.corruptions,
                victims: s.victims,
                writers: s.writers,
                frames: s.frames,
                hit: s.hit,
                clean: s.clean,
                silently_corrupted: s.silent,
                unknown: s.unknown,
                still_armed: s.still_armed,
                unmatched_hits: s.unmatched_hits,
                disagreements: s.disagreements,
            },
            writers: outcome.writers.iter().map(|w| self.writer(w)).collect(),
            unmatched_hits: outcome.unmatched.iter().map(|m| self.hit(m)).collect(),
            notes,
        }
    }
}

fn unmatched(g: &Graph, tid: i32, time_ns: u64) -> GraphOut {
    let why = match g.time_range() {
        Some((a, b)) if time_ns + 1_000 < a || time_ns > b + 1_000 => format!(
            "unmatched: the graph covers {} .. {}, the event is at {} (record both on the mono clock)",
            secs(a),
            secs(b),
            secs(time_ns)
        ),
        _ => format!("unmatched: no function_graph lines of task {tid} at that time"),
    };
    GraphOut {
        anchor: why,
        path: Vec::new(),
        calls: Vec::new(),
    }
}

fn writer_graph(g: &Graph, h: &Hit) -> GraphOut {
    match g.locate(("ksw_hit", h.id, h.addr), h.ctx.tid, h.ctx.time_ns) {
        Some((at, anchor)) => GraphOut {
            anchor: anchor.as_str().into(),
            path: g.stack_at(h.ctx.tid, at),
            calls: Vec::new(),
        },
        None => unmatched(g, h.ctx.tid, h.ctx.time_ns),
    }
}

fn victim_graph(
    g: &Graph,
    id: u64,
    addr: u64,
    tid: i32,
    armed: u64,
    disarmed: Option<u64>,
) -> GraphOut {
    let Some((from, anchor)) = g.locate(("ksw_arm", id, addr), tid, armed) else {
        return unmatched(g, tid, armed);
    };
    let to = disarmed
        .and_then(|t| g.locate(("ksw_disarm", id, addr), tid, t))
        .map_or(g.lines.len().saturating_sub(1), |(i, _)| i);
    GraphOut {
        anchor: anchor.as_str().into(),
        path: g.stack_at(tid, from),
        calls: g.calls_between(tid, from, to),
    }
}

pub fn secs(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

fn duration(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else {
        format!("{:.3} us", ns as f64 / 1e3)
    }
}

/// The frames a text report lists, and how the others add up.
#[derive(Debug, Default)]
pub struct FrameListing {
    pub shown: Vec<FrameOut>,
    /// Frames not listed, by (function, verdict).
    pub others: BTreeMap<(String, &'static str), u64>,
    /// Function names by probe address: symbolizing (and demangling) once
    /// per probe point, not once per frame.
    functions: IdMap<u64, String>,
}

impl FrameListing {
    /// Lists `frame` if fewer than `max` are listed (0: list all), else
    /// counts it; only listed frames are rendered.
    pub fn add(&mut self, frame: &Frame, renderer: &Renderer<'_>, max: usize) {
        if max == 0 || self.shown.len() < max {
            self.shown.push(renderer.frame(frame));
            return;
        }
        let ip = frame.arm.probe_ip;
        let function = self.functions.entry(ip).or_insert_with(|| {
            renderer
                .symbols
                .function(ip)
                .unwrap_or_else(|| format!("{ip:#x}"))
        });
        let verdict = frame
            .verdict()
            .map_or("still armed at end of recording", |v| v.as_str());
        *self.others.entry((function.clone(), verdict)).or_default() += 1;
    }
}

/// The human-readable report.
pub fn render_text(tail: &Tail, frames: &FrameListing) -> String {
    let mut o = String::new();
    let rec = &tail.recording;
    let _ = writeln!(
        o,
        "ksw report: {} ({}{}clock {}, {} events, {} lost)",
        rec.path,
        rec.hostname
            .as_deref()
            .map(|h| format!("host {h}, "))
            .unwrap_or_default(),
        rec.os_release
            .as_deref()
            .map(|k| format!("kernel {k}, "))
            .unwrap_or_default(),
        rec.clock,
        rec.events,
        rec.lost
    );
    let _ = writeln!(o, "symbols: {}", rec.symbols);
    if let Some(g) = &rec.graph {
        let _ = writeln!(o, "function_graph: {g}");
    }
    let s = &tail.summary;
    let _ = writeln!(o, "\n{}", s.headline);
    let _ = write!(
        o,
        "  {} watched frame(s): {} hit, {} silently corrupted, {} clean, {} still armed",
        s.frames, s.hit, s.silently_corrupted, s.clean, s.still_armed
    );
    if s.unknown > 0 {
        let _ = write!(o, ", {} unknown (value at death not read)", s.unknown);
    }
    let _ = writeln!(o);

    let _ = writeln!(o, "\nVictim frames");
    if frames.shown.is_empty() {
        let _ = writeln!(o, "  (none armed in this recording)");
    }
    let mut shown: Vec<&FrameOut> = frames.shown.iter().collect();
    shown.sort_by_key(|f| (f.armed_ns, f.id));
    for v in shown {
        render_frame(&mut o, v);
    }
    if !frames.others.is_empty() {
        let more: u64 = frames.others.values().sum();
        let _ = writeln!(
            o,
            "  ... {more} more frame(s) (--max-frames 0 lists all; all are in --format json):"
        );
        for ((function, verdict), n) in &frames.others {
            let _ = writeln!(o, "      {n:>8} x {function}: {verdict}");
        }
    }

    let _ = writeln!(o, "\nWriters");
    if tail.writers.is_empty() {
        let _ = writeln!(o, "  (no write caught)");
    }
    for w in &tail.writers {
        let _ = writeln!(o, "  {}/{}: {} write(s)", w.task.comm, w.task.pid, w.hits);
        for site in &w.sites {
            let cpus: Vec<String> = site.cpus.iter().map(u32::to_string).collect();
            let _ = writeln!(
                o,
                "    {} x {} on cpu {}",
                site.count,
                site.instruction,
                cpus.join(",")
            );
            for hit in &site.examples {
                render_hit_line(&mut o, hit);
            }
            if site.count > site.examples.len() as u64 {
                let _ = writeln!(
                    o,
                    "      ... {} more",
                    site.count - site.examples.len() as u64
                );
            }
            if !site.call_chain.is_empty() {
                let _ = writeln!(o, "      call chain:");
                for frame in &site.call_chain {
                    let _ = writeln!(o, "        {frame}");
                }
            }
            if let Some(g) = &site.graph {
                render_graph(&mut o, "writer", g);
            }
        }
    }
    if !tail.unmatched_hits.is_empty() {
        let _ = writeln!(o, "\nHits without a recorded frame");
        for hit in &tail.unmatched_hits {
            render_hit_line(&mut o, hit);
        }
    }
    if !tail.notes.is_empty() {
        let _ = writeln!(o, "\nNotes");
        for n in &tail.notes {
            let _ = writeln!(o, "  - {n}");
        }
    }
    o
}

fn render_hit_line(o: &mut String, hit: &HitOut) {
    let _ = writeln!(
        o,
        "      {}  watch {} ({}/{}): {} -> {} at {}{}",
        secs(hit.time_ns),
        hit.id,
        hit.victim.comm,
        hit.victim.pid,
        hit.old_value,
        hit.new_value,
        hit.address,
        context_note(hit)
    );
}

/// ` [hardirq on the victim's CPU]` and the like; empty for a plain task.
fn context_note(hit: &HitOut) -> String {
    match (hit.context.as_deref(), hit.by_victim) {
        (None | Some("task"), false) => String::new(),
        (None | Some("task"), true) => " [the victim itself]".into(),
        (Some(c), true) => format!(" [{c} on the victim's CPU, interrupting it]"),
        (Some(c), false) => format!(" [{c}]"),
    }
}

/// Who wrote, as a verdict names them.
fn writer_label(hit: &HitOut) -> String {
    let task = format!("{}/{}", hit.writer.comm, hit.writer.pid);
    match (hit.context.as_deref(), hit.by_victim) {
        (None | Some("task"), _) => task,
        (Some(c), true) => format!("{c} on the victim's CPU (interrupting {task})"),
        (Some(c), false) => format!("{c} (interrupting {task})"),
    }
}

fn render_frame(o: &mut String, v: &FrameOut) {
    let _ = writeln!(
        o,
        "  watch {}: {} (probe {}, depth {})",
        v.id,
        v.function.as_deref().unwrap_or("?"),
        v.probe,
        v.depth
    );
    let _ = writeln!(
        o,
        "    task     {}/{}{}",
        v.task.comm,
        v.task.pid,
        v.cpu.map(|c| format!(" on cpu {c}")).unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "    address  {} ({} bytes, sp+{:#x})",
        v.address, v.len, v.sp_offset
    );
    match v.disarmed_ns {
        Some(end) => {
            let _ = writeln!(
                o,
                "    window   {} .. {} ({})",
                secs(v.armed_ns),
                secs(end),
                duration(end.saturating_sub(v.armed_ns))
            );
        }
        None => {
            let _ = writeln!(o, "    window   {} .. (still armed)", secs(v.armed_ns));
        }
    }
    let _ = writeln!(
        o,
        "    value    {} at arm -> {} at exit",
        v.value_at_arm,
        v.value_at_exit.as_deref().unwrap_or("?")
    );
    let mut writers: Vec<String> = v.hits.iter().map(writer_label).collect();
    writers.dedup();
    let verdict = match v.verdict.as_str() {
        "hit" => format!(
            "HIT: {} write(s) caught, by {}{}",
            v.hit_count,
            writers.join(", "),
            if v.value_at_exit.as_deref() != Some(v.value_at_arm.as_str()) {
                "; value changed"
            } else {
                "; value restored"
            }
        ),
        "silently corrupted" => format!(
            "SILENTLY CORRUPTED: {} at arm, {} when the frame died, and no write was caught",
            v.value_at_arm,
            v.value_at_exit.as_deref().unwrap_or("?")
        ),
        "clean" => "clean".into(),
        "unknown" => "UNKNOWN: no write caught, but the value at death was not read (disarmed after the frame died)".into(),
        other => other.to_string(),
    };
    let _ = writeln!(o, "    verdict  {verdict}");
    if let Some(reason) = &v.disarm_reason {
        if reason != "return" {
            let _ = writeln!(o, "    ended    by {reason}");
        }
    }
    if !v.call_chain.is_empty() {
        let _ = writeln!(o, "    armed in {}", v.call_chain.join(" <- "));
    }
    if let Some(g) = &v.graph {
        render_graph(o, "victim", g);
    }
}

fn render_graph(o: &mut String, who: &str, g: &GraphOut) {
    if g.path.is_empty() && g.calls.is_empty() {
        let _ = writeln!(o, "    function_graph ({who}): {}", g.anchor);
        return;
    }
    let _ = writeln!(
        o,
        "    function_graph ({who}, {}): {}",
        g.anchor,
        g.path.join(" > ")
    );
    if !g.calls.is_empty() {
        let _ = writeln!(o, "      calls while armed:");
        for (depth, func, dur) in &g.calls {
            let _ = writeln!(
                o,
                "        {}{}{}",
                "  ".repeat(*depth),
                func,
                dur.map(|d| format!(" ({})", duration(d)))
                    .unwrap_or_default()
            );
        }
    }
}
