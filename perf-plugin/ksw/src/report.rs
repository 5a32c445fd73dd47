//! The report: one model built from an analysis, printed as text or JSON,
//! so both outputs always say the same thing.

use std::fmt::Write as _;

use serde::Serialize;

use crate::correlate::{Analysis, TimeMatch};
use crate::events::{Hit, Recording};
use crate::graph::Graph;
use crate::symbols::{self, Symbols};

#[derive(Debug, Serialize)]
pub struct Report {
    pub recording: RecordingInfo,
    pub summary: SummaryOut,
    pub victims: Vec<VictimOut>,
    pub writers: Vec<WriterOut>,
    pub hits: Vec<HitOut>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RecordingInfo {
    pub path: String,
    pub hostname: Option<String>,
    pub os_release: Option<String>,
    pub clock: String,
    pub events: usize,
    pub lost: u64,
    pub symbols: String,
    pub graph: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SummaryOut {
    pub headline: String,
    pub corruptions: usize,
    pub victims: usize,
    pub writers: usize,
    pub frames: usize,
    pub clean: usize,
    pub silently_corrupted: usize,
    pub still_armed: usize,
    pub unmatched_hits: usize,
    pub disagreements: usize,
}

#[derive(Debug, Serialize)]
pub struct Task {
    pub pid: i32,
    pub comm: String,
}

#[derive(Debug, Serialize)]
pub struct VictimOut {
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
    /// Indices into `hits`.
    pub hits: Vec<usize>,
    pub call_chain: Vec<String>,
    pub graph: Option<GraphOut>,
}

#[derive(Debug, Serialize)]
pub struct SiteOut {
    pub instruction: String,
    pub count: usize,
    /// Indices into `hits`.
    pub hits: Vec<usize>,
    pub cpus: Vec<u32>,
    /// Watch ids of the frames written.
    pub victims: Vec<u64>,
    pub call_chain: Vec<String>,
    pub graph: Option<GraphOut>,
}

#[derive(Debug, Serialize)]
pub struct WriterOut {
    pub task: Task,
    pub hits: usize,
    pub sites: Vec<SiteOut>,
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

fn hex(v: u64) -> String {
    format!("{v:#x}")
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

pub fn build(
    recording: &Recording,
    analysis: &Analysis<'_>,
    symbols: &Symbols,
    graph: Option<(&str, &Graph)>,
) -> Report {
    let mut notes = Vec::new();
    let watch_id = |v: usize| analysis.victims[v].arm.id;

    let hits: Vec<HitOut> = analysis
        .hits
        .iter()
        .map(|m| {
            let h = m.hit;
            HitOut {
                id: h.id,
                time_ns: h.ctx.time_ns,
                cpu: h.ctx.cpu,
                writer: writer_task(h),
                instruction: symbols.describe(h.writer_ip),
                address: hex(h.addr),
                old_value: hex(h.old_value),
                new_value: hex(h.new_value),
                victim: Task {
                    pid: h.victim_pid,
                    comm: h.victim_comm.clone(),
                },
                matched_by_id: m.by_id.map(watch_id),
                matched_by_time: match &m.by_time {
                    TimeMatch::One(v) => Some(watch_id(*v)),
                    _ => None,
                },
                agreement: m.agreement().to_string(),
            }
        })
        .collect();
    for (m, out) in analysis.hits.iter().zip(&hits) {
        match m.agreement() {
            "agree" => {}
            "unmatched" => notes.push(format!(
                "hit on watch {} at {} matches no recorded arm (armed before the recording started?)",
                out.id, out.address
            )),
            other => notes.push(format!(
                "hit on watch {} at {}: id and time/address matches {other} (by id: {:?}, by time: {:?})",
                out.id, out.address, out.matched_by_id, m.by_time
            )),
        }
    }

    let victims: Vec<VictimOut> = analysis
        .victims
        .iter()
        .map(|v| {
            let a = v.arm;
            let chain = symbols::victim_chain(&a.ctx.callchain, a.probe_ip);
            VictimOut {
                id: a.id,
                function: symbols.function(a.probe_ip),
                probe: symbols.describe(a.probe_ip),
                depth: a.depth,
                task: Task {
                    pid: a.ctx.tid,
                    comm: victim_comm(recording, analysis, v),
                },
                cpu: a.ctx.cpu,
                address: hex(a.addr),
                len: a.len,
                sp_offset: a.addr.wrapping_sub(a.sp),
                armed_ns: a.ctx.time_ns,
                disarmed_ns: v.disarm.map(|d| d.ctx.time_ns),
                value_at_arm: hex(a.value),
                value_at_exit: v.disarm.map(|d| hex(d.exit_value)),
                verdict: v
                    .verdict()
                    .map_or("still armed at end of recording".into(), |x| {
                        x.as_str().to_string()
                    }),
                disarm_reason: v
                    .disarm
                    .and_then(|d| d.reason)
                    .map(|r| r.as_str().to_string()),
                hits: v.hits.clone(),
                call_chain: chain
                    .iter()
                    .map(|&ip| symbols.describe_return(ip))
                    .collect(),
                graph: graph.map(|(_, g)| {
                    victim_graph(
                        g,
                        a.id,
                        a.addr,
                        a.ctx.tid,
                        a.ctx.time_ns,
                        v.disarm.map(|d| d.ctx.time_ns),
                    )
                }),
            }
        })
        .collect();

    let writers: Vec<WriterOut> = analysis
        .writers
        .iter()
        .map(|w| WriterOut {
            task: Task {
                pid: w.tid,
                comm: w.comm.clone(),
            },
            hits: w.hit_count(),
            sites: w
                .sites
                .iter()
                .map(|s| {
                    let first = analysis.hits[s.hits[0]].hit;
                    SiteOut {
                        instruction: symbols.describe(s.writer_ip),
                        count: s.hits.len(),
                        hits: s.hits.clone(),
                        cpus: s.cpus.iter().copied().collect(),
                        victims: s.victims.iter().map(|&v| watch_id(v)).collect(),
                        call_chain: s
                            .chain
                            .iter()
                            .enumerate()
                            // The first entry is the writer ip itself (not a return address).
                            .map(|(i, &ip)| {
                                if i == 0 {
                                    symbols.describe(ip)
                                } else {
                                    symbols.describe_return(ip)
                                }
                            })
                            .collect(),
                        graph: graph.map(|(_, g)| writer_graph(g, first)),
                    }
                })
                .collect(),
        })
        .collect();

    if recording.lost > 0 {
        notes.push(format!(
            "{} events were lost while recording: verdicts may be incomplete",
            recording.lost
        ));
    }
    if !analysis.orphan_disarms.is_empty() {
        notes.push(format!(
            "{} disarm(s) without a recorded arm (frames armed before the recording started)",
            analysis.orphan_disarms.len()
        ));
    }
    if symbols.is_empty() && !recording.events.is_empty() {
        notes.push("no kernel symbols: pass --kallsyms (a copy of the recording machine's /proc/kallsyms) or record with `ksw record`".into());
    }

    let s = &analysis.summary;
    Report {
        recording: RecordingInfo {
            path: recording.path.display().to_string(),
            hostname: recording.hostname.clone(),
            os_release: recording.os_release.clone(),
            clock: clock_name(recording.clockid),
            events: recording.events.len(),
            lost: recording.lost,
            symbols: symbols.source.to_string(),
            graph: graph.map(|(p, _)| p.to_string()),
        },
        summary: SummaryOut {
            headline: s.headline(),
            corruptions: s.corruptions,
            victims: s.victims,
            writers: s.writers,
            frames: s.frames,
            clean: s.clean,
            silently_corrupted: s.silent,
            still_armed: s.still_armed,
            unmatched_hits: s.unmatched_hits,
            disagreements: s.disagreements,
        },
        victims,
        writers,
        hits,
        notes,
    }
}

fn writer_task(h: &Hit) -> Task {
    Task {
        pid: h.ctx.tid,
        comm: h
            .writer_comm
            .clone()
            .or_else(|| h.ctx.comm.clone())
            .unwrap_or_else(|| "?".into()),
    }
}

/// The victim's name: what the kernel put in a hit if the frame was hit,
/// else the recording's COMM tracking.
fn victim_comm(
    _recording: &Recording,
    analysis: &Analysis<'_>,
    v: &crate::correlate::Victim<'_>,
) -> String {
    v.hits
        .first()
        .map(|&i| analysis.hits[i].hit.victim_comm.clone())
        .or_else(|| v.arm.ctx.comm.clone())
        .unwrap_or_else(|| "?".into())
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

/// Hits listed per writer site in text (JSON has them all).
const HITS_SHOWN: usize = 10;

/// The human-readable report.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let rec = &r.recording;
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
    let s = &r.summary;
    let _ = writeln!(o, "\n{}", s.headline);
    let _ = writeln!(
        o,
        "  {} watched frame(s): {} hit, {} silently corrupted, {} clean, {} still armed",
        s.frames,
        s.frames - s.clean - s.silently_corrupted - s.still_armed,
        s.silently_corrupted,
        s.clean,
        s.still_armed
    );

    let _ = writeln!(o, "\nVictim frames");
    if r.victims.is_empty() {
        let _ = writeln!(o, "  (none armed in this recording)");
    }
    for v in &r.victims {
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
        let writers: Vec<String> = v
            .hits
            .iter()
            .map(|&i| format!("{}/{}", r.hits[i].writer.comm, r.hits[i].writer.pid))
            .collect();
        let verdict = match v.verdict.as_str() {
            "hit" => format!(
                "HIT: {} write(s) caught, by {}{}",
                v.hits.len(),
                writers.join(", "),
                if v.value_at_exit.as_deref() != Some(v.value_at_arm.as_str()) {
                    "; value changed"
                } else {
                    "; value restored"
                }
            ),
            "silently corrupted" => {
                "SILENTLY CORRUPTED: the value changed but no write was caught".into()
            }
            "clean" => "clean".into(),
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
            render_graph(&mut o, "victim", g);
        }
    }

    let _ = writeln!(o, "\nWriters");
    if r.writers.is_empty() {
        let _ = writeln!(o, "  (no write caught)");
    }
    for w in &r.writers {
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
            for hit in r
                .hits
                .iter()
                .filter(|h| h.writer.pid == w.task.pid && h.instruction == site.instruction)
            {
                let _ = writeln!(
                    o,
                    "      {}  watch {} ({}/{}): {} -> {} at {}",
                    secs(hit.time_ns),
                    hit.id,
                    hit.victim.comm,
                    hit.victim.pid,
                    hit.old_value,
                    hit.new_value,
                    hit.address
                );
            }
            if site.hits.len() > HITS_SHOWN {
                let _ = writeln!(
                    o,
                    "      ... {} more (all in --format json)",
                    site.hits.len() - HITS_SHOWN
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
    if !r.notes.is_empty() {
        let _ = writeln!(o, "\nNotes");
        for n in &r.notes {
            let _ = writeln!(o, "  - {n}");
        }
    }
    o
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
