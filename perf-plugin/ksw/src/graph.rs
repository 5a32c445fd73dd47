//! ftrace function_graph text, as printed by tracefs (`trace` with the
//! `funcgraph-abstime` and `funcgraph-proc` options) or by `trace-cmd
//! report`, turned into per-task call timelines so a report can show what
//! the writer was doing at a hit and what the victim did while armed.
//!
//! Two ways to line a graph up with a recording: kstackwatch events
//! recorded into the same trace appear inline (`/* ksw_hit: id=6 ... */`)
//! and anchor exactly by watch id and address; otherwise timestamps are
//! compared, which only means something when both used the same clock
//! (`trace_clock=mono` with `perf record -k mono`). Times are microseconds
//! in function_graph text.

use std::fmt;

use rustc_hash::FxHashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `func() {`: a call that stays open until its `}`.
    Enter(String),
    /// `func();`: a call that returned, lasting `duration_ns`.
    Leaf { func: String, duration_ns: u64 },
    /// `}` (with the function name when `funcgraph-tail` is on), closing
    /// a call that lasted `duration_ns`.
    Exit {
        func: Option<String>,
        duration_ns: Option<u64>,
    },
    /// An inline trace event, e.g. `ksw_hit: id=6 slot=0 ...`.
    Event { name: String, text: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Line number in the file (1-based).
    pub line: usize,
    pub time_ns: u64,
    pub cpu: u32,
    pub pid: i32,
    pub comm: String,
    pub kind: Kind,
}

/// A parsed function_graph trace.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub lines: Vec<Line>,
    /// Lines that looked like trace lines but could not be read: how many,
    /// and the first (line number, text).
    pub skipped: usize,
    pub first_skipped: Option<(usize, String)>,
    /// Lines with bytes that are not UTF-8 (read lossily).
    pub lossy_lines: usize,
    /// Each task's lines, in order (indices into `lines`).
    by_pid: FxHashMap<i32, Vec<usize>>,
    /// Inline kstackwatch events by (name, watch id, address).
    events: FxHashMap<(String, u64, u64), usize>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum GraphError {
    /// Not a function_graph trace with absolute timestamps and task names.
    Unsupported(String),
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::Unsupported(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for GraphError {}

/// How a graph position was found for a recorded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The same event is inline in the graph (same watch id and address).
    Event,
    /// By timestamp: the latest graph line of the task at or before it.
    Time,
}

impl Anchor {
    pub fn as_str(self) -> &'static str {
        match self {
            Anchor::Event => "by event id",
            Anchor::Time => "by time",
        }
    }
}

impl Graph {
    /// Parses function_graph text given as bytes: each line is decoded on
    /// its own, lossily (task names are arbitrary bytes), so one odd byte
    /// costs a character, not the file.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Graph, GraphError> {
        let mut graph = Graph::default();
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let text = String::from_utf8_lossy(raw);
            if matches!(text, std::borrow::Cow::Owned(_)) {
                graph.lossy_lines += 1;
            }
            graph.add_line(index + 1, text.trim_end_matches('\r'));
        }
        graph.finish()
    }

    pub fn parse(text: &str) -> Result<Graph, GraphError> {
        let mut graph = Graph::default();
        for (index, raw) in text.lines().enumerate() {
            graph.add_line(index + 1, raw);
        }
        graph.finish()
    }

    fn add_line(&mut self, number: usize, raw: &str) {
        let trimmed = raw.trim();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with("---")
            || trimmed.contains("=>")
            || trimmed.starts_with("cpus=")
            || trimmed.starts_with("version =")
        {
            return;
        }
        match parse_tracefs(raw).or_else(|| parse_trace_cmd(raw)) {
            Some(mut line) => {
                line.line = number;
                self.lines.push(line);
            }
            None => {
                self.skipped += 1;
                if self.first_skipped.is_none() {
                    self.first_skipped = Some((number, trimmed.chars().take(80).collect()));
                }
            }
        }
    }

    fn finish(mut self) -> Result<Graph, GraphError> {
        if self.lines.is_empty() {
            let first = match &self.first_skipped {
                Some((n, text)) => format!(" (line {n}: {text:?})"),
                None => String::new(),
            };
            return Err(GraphError::Unsupported(format!(
                "no function_graph lines with absolute times and task ids{first}: record with funcgraph-abstime and funcgraph-proc (tracefs) or use `trace-cmd report`"
            )));
        }
        for (i, l) in self.lines.iter().enumerate() {
            self.by_pid.entry(l.pid).or_default().push(i);
            if let Kind::Event { name, text } = &l.kind {
                if let (Some(id), Some(addr)) = (event_field(text, "id"), event_field(text, "addr"))
                {
                    self.events.entry((name.clone(), id, addr)).or_insert(i);
                }
            }
        }
        Ok(self)
    }

    /// First and last timestamp.
    pub fn time_range(&self) -> Option<(u64, u64)> {
        let first = self.lines.iter().map(|l| l.time_ns).min()?;
        let last = self.lines.iter().map(|l| l.time_ns).max()?;
        Some((first, last))
    }

    /// Index of the inline event `name` for watch `id` at `addr`.
    pub fn find_event(&self, name: &str, id: u64, addr: u64) -> Option<usize> {
        self.events.get(&(name.to_string(), id, addr)).copied()
    }

    /// Where an event of task `pid` at `time_ns` falls in the graph: the
    /// inline copy of the event if there is one, else the task's latest
    /// line at or before that time (None: the graph says nothing then).
    pub fn locate(
        &self,
        event: (&str, u64, u64),
        pid: i32,
        time_ns: u64,
    ) -> Option<(usize, Anchor)> {
        if let Some(i) = self.find_event(event.0, event.1, event.2) {
            return Some((i, Anchor::Event));
        }
        let (first, last) = self.time_range()?;
        // Graph times are whole microseconds.
        if time_ns.saturating_add(1_000) < first || time_ns > last.saturating_add(1_000) {
            return None;
        }
        let task = self.by_pid.get(&pid)?;
        let n = task.partition_point(|&i| self.lines[i].time_ns <= time_ns);
        task.get(n.checked_sub(1)?).map(|&i| (i, Anchor::Time))
    }

    /// The calls of task `pid` open at `time_ns` (outermost first), from its
    /// lines up to line `at`, plus a leaf call running at that moment (one
    /// that started at or before `time_ns` and had not returned yet).
    pub fn stack_at(&self, pid: i32, at: usize, time_ns: u64) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut running_leaf = None;
        let Some(task) = self.by_pid.get(&pid) else {
            return stack;
        };
        for &i in task.iter().take_while(|&&i| i <= at) {
            let line = &self.lines[i];
            running_leaf = None;
            match &line.kind {
                Kind::Enter(f) => stack.push(f.clone()),
                Kind::Exit { .. } => {
                    stack.pop();
                }
                Kind::Leaf { func, duration_ns } => {
                    if line.time_ns <= time_ns
                        && time_ns < line.time_ns.saturating_add(*duration_ns)
                    {
                        running_leaf = Some(func.clone());
                    }
                }
                Kind::Event { .. } => {}
            }
        }
        stack.extend(running_leaf);
        stack
    }

    /// The calls task `pid` made between lines `from` and `to`, with their
    /// depth below the frame open at `from` and, once returned, duration.
    pub fn calls_between(
        &self,
        pid: i32,
        from: usize,
        to: usize,
    ) -> Vec<(usize, String, Option<u64>)> {
        let mut out: Vec<(usize, String, Option<u64>)> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let end = to.min(self.lines.len().saturating_sub(1));
        let Some(task) = self.by_pid.get(&pid) else {
            return out;
        };
        if from > end {
            return out;
        }
        let first = task.partition_point(|&i| i < from);
        for &i in task[first..].iter().take_while(|&&i| i <= end) {
            let line = &self.lines[i];
            match &line.kind {
                Kind::Enter(f) => {
                    open.push(out.len());
                    out.push((open.len() - 1, f.clone(), None));
                }
                Kind::Leaf { func, duration_ns } => {
                    out.push((open.len(), func.clone(), Some(*duration_ns)))
                }
                Kind::Exit { duration_ns, .. } => {
                    // An exit of a call entered before `from` closes nothing here.
                    if let Some(i) = open.pop() {
                        out[i].2 = *duration_ns;
                    }
                }
                Kind::Event { .. } => {}
            }
        }
        out
    }
}

/// `key=value` of an inline event's text, as a number (decimal or 0x hex).
fn event_field(text: &str, key: &str) -> Option<u64> {
    text.split_whitespace().find_map(|kv| {
        let v = kv.strip_prefix(key)?.strip_prefix('=')?;
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

/// `seconds.micros` → ns.
fn parse_time(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    let secs: u64 = secs.trim().parse().ok()?;
    let frac = frac.trim();
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10u64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)?
        .checked_add(frac.parse::<u64>().ok()?.checked_mul(scale)?)
}

/// `comm-pid` (the comm may itself contain dashes).
fn parse_task(s: &str) -> Option<(String, i32)> {
    let (comm, pid) = s.trim().rsplit_once('-')?;
    Some((comm.to_string(), pid.parse().ok()?))
}

/// `12.345 us` (with an optional overhead mark before it) → ns.
fn parse_duration(s: &str) -> Option<u64> {
    let s = s
        .trim()
        .trim_start_matches(['+', '!', '#', '*', '@', '$'])
        .trim();
    let num = s.strip_suffix("us")?.trim();
    let (whole, frac) = num.split_once('.').unwrap_or((num, "0"));
    let whole: u64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_digits = &frac[..frac.len().min(3)];
    let frac_ns: u64 = format!("{frac_digits:0<3}").parse().ok()?;
    whole.checked_mul(1000)?.checked_add(frac_ns)
}

/// The `FUNCTION CALLS` column: `func() {`, `func();`, `}`, `} /* func */`,
/// `/* event: text */`. Strips a ` [module]` suffix from names.
fn parse_call(s: &str, duration: Option<u64>) -> Option<Kind> {
    let s = s.trim();
    if let Some(body) = s.strip_prefix("/*").and_then(|b| b.strip_suffix("*/")) {
        let body = body.trim();
        if let Some(tail) = s.strip_prefix("} /*") {
            return Some(Kind::Exit {
                func: Some(clean_name(tail.trim_end_matches("*/").trim())),
                duration_ns: duration,
            });
        }
        let (name, text) = body.split_once(':')?;
        return Some(Kind::Event {
            name: name.trim().to_string(),
            text: text.trim().to_string(),
        });
    }
    if let Some(tail) = s.strip_prefix('}') {
        let name = tail
            .trim()
            .strip_prefix("/*")
            .and_then(|t| t.strip_suffix("*/"))
            .map(|t| clean_name(t.trim()));
        return Some(Kind::Exit {
            func: name,
            duration_ns: duration,
        });
    }
    if let Some(name) = s.strip_suffix("() {") {
        return Some(Kind::Enter(clean_name(name)));
    }
    if let Some(name) = s.strip_suffix("();") {
        return Some(Kind::Leaf {
            func: clean_name(name),
            duration_ns: duration.unwrap_or(0),
        });
    }
    None
}

fn clean_name(s: &str) -> String {
    s.split(" [").next().unwrap_or(s).trim().to_string()
}

/// tracefs: ` 19.802496 |   0)     sh-101     |  duration |  calls`.
fn parse_tracefs(raw: &str) -> Option<Line> {
    let mut cols = raw.split('|');
    let time_ns = parse_time(cols.next()?)?;
    let cpu_task = cols.next()?;
    let (cpu, task) = cpu_task.trim().split_once(')')?;
    let cpu: u32 = cpu.trim().parse().ok()?;
    let (comm, pid) = parse_task(task)?;
    let duration = cols.next()?;
    let calls: Vec<&str> = cols.collect();
    let calls = calls.join("|");
    let kind = parse_call(&calls, parse_duration(duration))?;
    Some(Line {
        line: 0,
        time_ns,
        cpu,
        pid,
        comm,
        kind,
    })
}

/// trace-cmd report: `  comm-pid [000]  24.535710: funcgraph_entry:  dur |  calls`
/// or an event line `... 24.537427: ksw_arm:   id=7 ...`.
fn parse_trace_cmd(raw: &str) -> Option<Line> {
    let open = raw.find(" [")?;
    let close = open + raw[open..].find(']')?;
    let (comm, pid) = parse_task(&raw[..open])?;
    let cpu: u32 = raw[open + 2..close].trim().parse().ok()?;
    let rest = &raw[close + 1..];
    let (time, rest) = rest.split_once(':')?;
    let time_ns = parse_time(time)?;
    let (event, body) = rest.trim_start().split_once(':')?;
    let kind = match event {
        "funcgraph_entry" | "funcgraph_exit" => {
            let (duration, calls) = body.split_once('|')?;
            parse_call(calls, parse_duration(duration))?
        }
        name => Kind::Event {
            name: name.to_string(),
            text: body.trim().to_string(),
        },
    };
    Some(Line {
        line: 0,
        time_ns,
        cpu,
        pid,
        comm,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEFS: &str = "# tracer: function_graph
#
#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS
#      |          |     |    |           |   |                     |   |   |   |
   19.805601 |   0)  ksw-vic-103   |               |  ksw_test_thread_fn [kstackwatch_test]() {
   19.805681 |   0)  ksw-vic-103   |               |    ksw_test_silent_round [kstackwatch_test]() {
   19.806312 |   0)  ksw-vic-103   |               |      ksw_test_victim [kstackwatch_test]() {
   19.806482 |   0)  ksw-vic-103   |   6.511 us    |        ksw_test_fill [kstackwatch_test]();
   19.806982 |   0)  ksw-vic-103   |               |        /* ksw_arm: id=6 slot=0 spec=0 depth=0 probe=ksw_test_victim+0xd7/0x110 [kstackwatch_test] addr=0xffff88800047fe50 len=8 sp=0xffff88800047fe10 value=0xdeadbef7 */
   19.807776 |   0)  ksw-vic-103   | # 3655.874 us |        ksw_test_victim_wait [kstackwatch_test]();
 ------------------------------------------
 1)     sh-101     =>  ksw-wri-104  
 ------------------------------------------

   19.808500 |   1)  ksw-wri-104   |               |  ksw_test_thread_fn [kstackwatch_test]() {
   19.808620 |   1)  ksw-wri-104   | + 16.825 us   |    ksw_test_round_published [kstackwatch_test]();
   19.809314 |   1)  ksw-wri-104   |               |  /* ksw_hit: id=6 slot=0 addr=0xffff88800047fe50 len=8 writer=ksw_test_corrupt+0x3/0x10 [kstackwatch_test] old=0xdeadbef7 new=0xabcdabcd */
   19.811071 |   1)  ksw-wri-104   | + 95.229 us   |    ksw_test_round_writer_done [kstackwatch_test]();
   19.811158 |   1)  ksw-wri-104   | # 2673.077 us |  } /* ksw_test_thread_fn [kstackwatch_test] */
   19.811473 |   0)  ksw-vic-103   | + 25.763 us   |        ksw_test_count_bad [kstackwatch_test]();
   19.811959 |   0)  ksw-vic-103   |               |        /* ksw_disarm: id=6 slot=0 addr=0xffff88800047fe50 arm_value=0xdeadbef7 exit_value=0xabcdabcd hits=1 corrupted=1 reason=return */
   19.812555 |   0)  ksw-vic-103   | # 6237.082 us |      } /* ksw_test_victim [kstackwatch_test] */
";

    #[test]
    fn parses_tracefs_lines() {
        let g = Graph::parse(TRACEFS).unwrap();
        assert_eq!(g.skipped, 0);
        assert_eq!(g.lines.len(), 14);
        let l = &g.lines[3];
        assert_eq!(
            (l.time_ns, l.cpu, l.pid, l.comm.as_str()),
            (19_806_482_000, 0, 103, "ksw-vic")
        );
        assert_eq!(
            l.kind,
            Kind::Leaf {
                func: "ksw_test_fill".into(),
                duration_ns: 6_511
            }
        );
        assert_eq!(
            g.lines[10].kind,
            Kind::Exit {
                func: Some("ksw_test_thread_fn".into()),
                duration_ns: Some(2_673_077)
            }
        );
    }

    #[test]
    fn writer_stack_at_the_inline_hit() {
        let g = Graph::parse(TRACEFS).unwrap();
        let (at, anchor) = g
            .locate(("ksw_hit", 6, 0xffff88800047fe50), 104, 0)
            .unwrap();
        assert_eq!(anchor, Anchor::Event);
        assert_eq!(
            g.stack_at(104, at, g.lines[at].time_ns),
            ["ksw_test_thread_fn"]
        );
    }

    #[test]
    fn victim_stack_and_calls_while_armed() {
        let g = Graph::parse(TRACEFS).unwrap();
        let (arm, _) = g
            .locate(("ksw_arm", 6, 0xffff88800047fe50), 103, 0)
            .unwrap();
        let (disarm, _) = g
            .locate(("ksw_disarm", 6, 0xffff88800047fe50), 103, 0)
            .unwrap();
        assert_eq!(
            g.stack_at(103, arm, g.lines[arm].time_ns),
            [
                "ksw_test_thread_fn",
                "ksw_test_silent_round",
                "ksw_test_victim"
            ]
        );
        let calls: Vec<_> = g
            .calls_between(103, arm, disarm)
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(calls, ["ksw_test_victim_wait", "ksw_test_count_bad"]);
    }

    #[test]
    fn time_anchor_needs_a_clock_match() {
        let g = Graph::parse(TRACEFS).unwrap();
        // Same clock: the writer's latest line before 19.8093 s.
        let (at, anchor) = g.locate(("ksw_hit", 99, 1), 104, 19_809_000_000).unwrap();
        assert_eq!(anchor, Anchor::Time);
        assert_eq!(g.lines[at].time_ns, 19_808_620_000);
        // Outside the graph's time range: no match, not a guess.
        assert_eq!(g.locate(("ksw_hit", 99, 1), 104, 13_000_000_000), None);
    }

    #[test]
    fn parses_trace_cmd_report() {
        let text = "cpus=2
              sh-110   [000]    24.535710: funcgraph_entry:                   |  ksw_test_write() {
      ksw-victim-111   [000]    24.537183: funcgraph_exit:         3.422 us   |    }
      ksw-victim-111   [000]    24.537427: ksw_arm:              id=7 slot=0 spec=0 depth=0 probe=ksw_test_victim+0xd7 addr=0xffff8880029a7e50 len=8
      ksw-victim-111   [000]    24.538660: funcgraph_exit:       # 1139.991 us |        }
";
        let g = Graph::parse(text).unwrap();
        assert_eq!(g.lines.len(), 4);
        assert_eq!(g.lines[0].kind, Kind::Enter("ksw_test_write".into()));
        assert_eq!(
            (g.lines[1].pid, g.lines[1].comm.as_str()),
            (111, "ksw-victim")
        );
        assert!(matches!(&g.lines[2].kind, Kind::Event { name, .. } if name == "ksw_arm"));
        assert_eq!(g.find_event("ksw_arm", 7, 0xffff8880029a7e50), Some(2));
    }

    #[test]
    fn time_anchoring_uses_the_events_time() {
        // Without the inline events, the arm (19.8069 s) is anchored by
        // time: ksw_test_fill returned at 19.80649 s, long before.
        let text: String = TRACEFS
            .lines()
            .filter(|l| !l.contains("/* ksw_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let g = Graph::parse(&text).unwrap();
        let armed = 19_806_982_000;
        let (at, anchor) = g
            .locate(("ksw_arm", 6, 0xffff88800047fe50), 103, armed)
            .unwrap();
        assert_eq!(anchor, Anchor::Time);
        assert_eq!(
            g.stack_at(103, at, armed),
            [
                "ksw_test_thread_fn",
                "ksw_test_silent_round",
                "ksw_test_victim"
            ]
        );
        // During the fill, it is running.
        let (at, _) = g.locate(("ksw_arm", 6, 0), 103, 19_806_485_000).unwrap();
        assert_eq!(
            g.stack_at(103, at, 19_806_485_000).last().unwrap(),
            "ksw_test_fill"
        );
    }

    #[test]
    fn non_utf8_bytes_cost_a_character_not_the_file() {
        let mut bytes = TRACEFS.as_bytes().to_vec();
        // A task name with a stray byte.
        let at = TRACEFS.find("ksw-wri-104   |").unwrap();
        bytes[at + 3] = 0xff;
        let g = Graph::parse_bytes(&bytes).unwrap();
        assert_eq!(g.lines.len(), 14);
        assert_eq!(g.lossy_lines, 1);
        assert!(g.lines.iter().any(|l| l.comm == "ksw\u{fffd}wri"));
    }

    #[test]
    fn rejects_text_that_is_not_a_graph() {
        let e = Graph::parse("hello\nworld\n").unwrap_err();
        assert!(e.to_string().contains("line 1: \"hello\""), "{e}");
        assert!(Graph::parse("hello\nworld\n").is_err());
        assert!(Graph::parse("").is_err());
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("# 3655.874 us "), Some(3_655_874));
        assert_eq!(parse_duration("  6.5 us"), Some(6_500));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_time(" 19.806482 "), Some(19_806_482_000));
        assert_eq!(parse_time("1.5"), Some(1_500_000_000));
        assert_eq!(parse_time("x.1"), None);
    }
}
