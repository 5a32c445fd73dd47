//! The report: one model, printed as text or JSON as it is produced, so
//! both outputs always say the same thing and memory does not grow with
//! the recording.
//!
//! Frames stream out as they end (text: `--max-frames 0` lists them all as
//! they come, the summary after them; a bounded listing keeps its few
//! frames and prints the summary first). JSON is one document written by
//! serde_json's serializer as it goes (schema in `Documentation/ksw.md`,
//! [`SCHEMA_VERSION`]); a damaged record mid-file still ends it properly,
//! with an `error` member.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::rc::Rc;

use ksw_core::events::ExitState;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::correlate::{
    self, Agreement, End, Frame, FrameVerdict, MatchedHit, MissingArm, Outcome, Summary, TimeMatch,
    Writer,
};
use rustc_hash::FxHashMap;

use crate::events::{Hit, Recording, StreamStats, TaskComm};
use crate::graph::{Anchor, Graph};
use crate::sweep::{self, SweepAnalysis, SweepTally};
use crate::symbols::{self, Symbols};

/// A JSON object key as [`Obj`] writes it: `"name":`.
macro_rules! k {
    ($name:literal) => {
        concat!("\"", $name, "\":")
    };
}

/// Version of the JSON document's layout (`schema_version`).
pub const SCHEMA_VERSION: u32 = 2;

/// `0x...` without allocating.
struct Hex(u64);

impl Hex {
    fn fmt_into(self, buf: &mut [u8; 18]) -> &str {
        // Only ASCII digits and "0x" are written.
        std::str::from_utf8(self.bytes_into(buf)).unwrap_or("0x?")
    }

    fn bytes_into(self, buf: &mut [u8; 18]) -> &[u8] {
        let len;
        (*buf, len) = hex_prefixed(self.0);
        &buf[..len]
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 18];
        s.serialize_str(Hex(self.0).fmt_into(&mut buf))
    }
}

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 18];
        f.write_str(Hex(self.0).fmt_into(&mut buf))
    }
}

/// Appending text to an output buffer without the formatting machinery:
/// a full listing formats every frame, and `write!` with its
/// allocations was most of that time.
trait Put {
    fn put(&mut self, s: &str) -> &mut Self;
    fn put_u64(&mut self, v: u64) -> &mut Self;
    fn put_i64(&mut self, v: i64) -> &mut Self;
    fn put_hex(&mut self, v: u64) -> &mut Self;
    /// `seconds.nanoseconds`, as [`secs`].
    fn put_secs(&mut self, ns: u64) -> &mut Self;
    /// Milliseconds or microseconds with three decimals, as [`duration`].
    fn put_duration(&mut self, ns: u64) -> &mut Self;
    fn put_shown(&mut self, v: &Shown) -> &mut Self;
}

impl Put for Vec<u8> {
    #[inline]
    fn put(&mut self, s: &str) -> &mut Self {
        self.extend_from_slice(s.as_bytes());
        self
    }

    #[inline]
    fn put_u64(&mut self, v: u64) -> &mut Self {
        // Room made with one fixed-size write, the digits written into it,
        // the rest cut off: a copy of a run-time length would be a call
        // into memcpy, and digits built in a buffer and copied out in wide
        // loads stall on the narrow stores that made them.
        let digits = decimal_digits(v);
        let start = self.len();
        self.extend_from_slice(&[b'0'; 20]);
        write_decimal(&mut self[start..start + digits], v);
        self.truncate(start + digits);
        self
    }

    #[inline]
    fn put_i64(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.push(b'-');
        }
        self.put_u64(v.unsigned_abs())
    }

    #[inline]
    fn put_hex(&mut self, v: u64) -> &mut Self {
        // As put_u64: all 18 bytes written, the rest cut off.
        let (text, len) = hex_prefixed(v);
        let start = self.len();
        self.extend_from_slice(&text);
        self.truncate(start + len);
        self
    }

    fn put_secs(&mut self, ns: u64) -> &mut Self {
        self.put_u64(ns / 1_000_000_000).put(".");
        put_padded(self, ns % 1_000_000_000, 9);
        self
    }

    fn put_duration(&mut self, ns: u64) -> &mut Self {
        // Rounded to the third decimal, half up.
        let (unit, scale) = if ns >= 1_000_000 {
            (" ms", 1_000_000)
        } else {
            (" us", 1_000)
        };
        let thousandths = (u128::from(ns) * 1000 + scale / 2) / scale;
        let thousandths = u64::try_from(thousandths).unwrap_or(u64::MAX);
        self.put_u64(thousandths / 1000).put(".");
        put_padded(self, thousandths % 1000, 3);
        self.put(unit)
    }

    fn put_shown(&mut self, v: &Shown) -> &mut Self {
        match v {
            Shown::Value(v) => self.put_hex(*v),
            Shown::Canary => self.put("canary"),
            Shown::Unknown => self.put("?"),
        }
    }
}

/// "00" "01" .. "99".
const DECIMAL_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// How many decimal digits `v` has (1 for 0): from its bit length
/// (1233 / 4096 is just above log10 2), corrected by one comparison.
#[inline]
fn decimal_digits(v: u64) -> usize {
    const POWERS: [u64; 20] = {
        let mut t = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            t[i] = t[i - 1] * 10;
            i += 1;
        }
        t
    };
    let v = v | 1;
    let bits = 64 - v.leading_zeros() as usize;
    let guess = (bits * 1233) >> 12;
    guess + 1 - usize::from(v < POWERS[guess])
}

/// The decimal digits of `v` into `out`, exactly [`decimal_digits`] long;
/// two at a time, right to left.
#[inline]
fn write_decimal(out: &mut [u8], v: u64) {
    let mut rest = v;
    let mut at = out.len();
    while at >= 2 {
        let pair = (rest % 100) as usize * 2;
        out[at - 2..at].copy_from_slice(&DECIMAL_PAIRS[pair..pair + 2]);
        rest /= 100;
        at -= 2;
    }
    if at == 1 {
        out[0] = b'0' + (rest % 10) as u8;
    }
}

/// How many hex digits `v` has (1 for 0).
#[inline]
fn hex_digits(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(4)
}

/// `pattern` repeated every `width` bits of a 128-bit word.
const fn lanes(pattern: u128, width: u32) -> u128 {
    let mut t = 0;
    let mut at = 0;
    while at < 128 {
        t |= pattern << at;
        at += width;
    }
    t
}

/// The 16 hex digits of `v`, most significant first, computed in one
/// 128-bit word: each nibble spread into a byte of its own, then turned
/// into its digit (no table, no loop).
#[inline]
fn hex16(v: u64) -> [u8; 16] {
    const HALVES: u128 = lanes(0xffff, 64);
    const BYTES: u128 = lanes(0xff, 32);
    const NIBBLES: u128 = lanes(0xf, 16);
    const SIX: u128 = lanes(0x06, 8);
    const ONE: u128 = lanes(0x01, 8);
    const ZERO: u128 = lanes(0x30, 8);
    let mut x = u128::from(v);
    x = (x & 0xffff_ffff) | (x >> 32 << 64);
    x = (x & HALVES) | ((x >> 16 & HALVES) << 32);
    x = (x & BYTES) | ((x >> 8 & BYTES) << 16);
    x = (x & NIBBLES) | ((x >> 4 & NIBBLES) << 8);
    // Nibbles 10..15 carry into bit 4 when 6 is added: they get 'a' - '0' - 10 more.
    let letters = (x + SIX) >> 4 & ONE;
    (x + ZERO + letters * 0x27).to_be_bytes()
}

/// `0x` and the hex digits of `v` (`{v:#x}`), then filler, and how many
/// bytes of it are the number.
#[inline]
fn hex_prefixed(v: u64) -> ([u8; 18], usize) {
    let digits = hex_digits(v);
    let mut text = *b"0x0000000000000000";
    // Shifted so the significant digits come first.
    text[2..].copy_from_slice(&hex16(v << (64 - 4 * digits)));
    (text, 2 + digits)
}

/// `v` with leading zeros to `width` digits.
fn put_padded(o: &mut Vec<u8>, v: u64, width: usize) {
    for _ in decimal_digits(v)..width {
        o.push(b'0');
    }
    o.put_u64(v);
}

/// A value as the report shows it: the kernel never puts the task's stack
/// canary in an event, it says "canary" instead.
enum Shown {
    Value(u64),
    Canary,
    Unknown,
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Value(v) => Hex(*v).fmt(f),
            Shown::Canary => f.write_str("canary"),
            Shown::Unknown => f.write_str("?"),
        }
    }
}

impl Serialize for Shown {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Shown::Value(v) => Hex(*v).serialize(s),
            Shown::Canary => s.serialize_str("canary"),
            Shown::Unknown => s.serialize_none(),
        }
    }
}

fn shown(v: u64, canary: bool) -> Shown {
    if canary {
        Shown::Canary
    } else {
        Shown::Value(v)
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

pub fn secs(ns: u64) -> String {
    let mut o = Vec::with_capacity(24);
    o.put_secs(ns);
    String::from_utf8(o).unwrap_or_default()
}

fn duration(ns: u64) -> String {
    let mut o = Vec::with_capacity(24);
    o.put_duration(ns);
    String::from_utf8(o).unwrap_or_default()
}

/// What function_graph shows around an event.
#[derive(Debug, Clone, Serialize)]
pub struct GraphOut {
    /// "event" (the same event is inline in the graph), "time" (the task's
    /// graph line at or before the event's time) or "unmatched".
    pub anchor: &'static str,
    /// In words: "by event id", "by time", or why nothing matched.
    pub anchor_text: String,
    /// Open calls at the event, outermost first.
    pub path: Vec<String>,
    /// For a victim: the calls it made while armed.
    pub calls: Vec<GraphCall>,
}

/// One call of a victim while armed (JSON: labelled).
#[derive(Debug, Clone, Serialize)]
pub struct GraphCall {
    /// Below the armed function (0: called by it).
    pub depth: usize,
    pub function: String,
    /// None while it had not returned when the watch ended.
    pub duration_ns: Option<u64>,
}

fn unmatched(g: &Graph, tid: i32, time_ns: u64) -> GraphOut {
    let why = match g.time_range() {
        Some((a, b)) if time_ns.saturating_add(1_000) < a || time_ns > b.saturating_add(1_000) => format!(
            "unmatched: the graph covers {} .. {}, the event is at {} (record both on the mono clock)",
            secs(a),
            secs(b),
            secs(time_ns)
        ),
        _ => format!("unmatched: no function_graph lines of task {tid} at that time"),
    };
    GraphOut {
        anchor: "unmatched",
        anchor_text: why,
        path: Vec::new(),
        calls: Vec::new(),
    }
}

fn anchor_code(a: Anchor) -> &'static str {
    match a {
        Anchor::Event => "event",
        Anchor::Time => "time",
    }
}

fn writer_graph(g: &Graph, h: &Hit) -> GraphOut {
    match g.locate(("ksw_hit", h.id, h.addr), h.ctx.tid, h.ctx.time_ns) {
        Some((at, anchor)) => {
            let time = match anchor {
                Anchor::Event => g.lines[at].time_ns,
                Anchor::Time => h.ctx.time_ns,
            };
            GraphOut {
                anchor: anchor_code(anchor),
                anchor_text: anchor.as_str().into(),
                path: g.stack_at(h.ctx.tid, at, time),
                calls: Vec::new(),
            }
        }
        None => unmatched(g, h.ctx.tid, h.ctx.time_ns),
    }
}

fn victim_graph(g: &Graph, f: &Frame) -> Option<GraphOut> {
    let a = f.arm.as_ref()?;
    let (id, addr, tid, armed) = (a.id, a.addr, a.ctx.tid, a.ctx.time_ns);
    let Some((from, anchor)) = g.locate(("ksw_arm", id, addr), tid, armed) else {
        return Some(unmatched(g, tid, armed));
    };
    let time = match anchor {
        Anchor::Event => g.lines[from].time_ns,
        Anchor::Time => armed,
    };
    let to = f
        .disarm
        .as_ref()
        .and_then(|d| g.locate(("ksw_disarm", id, addr), tid, d.ctx.time_ns))
        .map_or(g.lines.len().saturating_sub(1), |(i, _)| i);
    Some(GraphOut {
        anchor: anchor_code(anchor),
        anchor_text: anchor.as_str().into(),
        path: g.stack_at(tid, from, time),
        calls: g
            .calls_between(tid, from, to)
            .into_iter()
            .map(|(depth, function, duration_ns)| GraphCall {
                depth,
                function,
                duration_ns,
            })
            .collect(),
    })
}

/// Who wrote, as a verdict names them.
pub fn writer_label(m: &MatchedHit) -> String {
    let mut o = Vec::new();
    put_writer_label(&mut o, m);
    String::from_utf8(o).unwrap_or_default()
}

fn put_writer_label(o: &mut Vec<u8>, m: &MatchedHit) {
    let task = |o: &mut Vec<u8>| {
        o.put(&name_or_unknown(&m.writer_name))
            .put("/")
            .put_i64(m.hit.ctx.tid.into());
    };
    match (m.hit.context.map(|c| c.as_str()), m.hit.by_victim) {
        (None | Some("task"), _) => task(o),
        (Some(c), true) => {
            o.put(c).put(" on the victim's CPU (interrupting ");
            task(o);
            o.put(")");
        }
        (Some(c), false) => {
            o.put(c).put(" (interrupting ");
            task(o);
            o.put(")");
        }
    }
}

/// ` [hardirq on the victim's CPU, interrupting it]` and the like; empty
/// for a plain task.
fn context_note(h: &Hit) -> String {
    let who = match (h.context.map(|c| c.as_str()), h.by_victim) {
        (None | Some("task"), false) => String::new(),
        (None | Some("task"), true) => " [the victim itself]".into(),
        (Some(c), true) => format!(" [{c} on the victim's CPU, interrupting it]"),
        (Some(c), false) => format!(" [{c}]"),
    };
    if h.out_of_line {
        who + " [the probed instruction, run from the arming kprobe's copy]"
    } else {
        who
    }
}

fn name_or_unknown(n: &Option<TaskComm>) -> Cow<'_, str> {
    n.as_ref().map_or(Cow::Borrowed("?"), TaskComm::to_str)
}

/// Turns correlator output into text or JSON.
#[derive(Debug)]
pub struct Renderer<'a> {
    pub symbols: &'a Symbols,
    pub graph: Option<(&'a str, &'a Graph)>,
    /// JSON members that depend on one address only, written once per
    /// address: a recording has few probe points and writer sites and
    /// hundreds of thousands of frames.
    fragments: RefCell<Fragments>,
    /// Tasks as JSON objects, written once per (pid, name): every frame
    /// names three.
    tasks: RefCell<Tasks>,
}

/// Task objects written, by (pid, name).
type Tasks = Written<(i32, Option<TaskComm>)>;

/// JSON members written, by (address, which members).
type Fragments = Written<(u64, Fragment)>;

/// JSON text written once per key and copied after. A small table indexed
/// by the key's [`Bucket`] is tried before the map is hashed: a recording
/// has a handful of tasks and addresses, and hashing a task's name for
/// every frame was a tenth of a JSON report's time.
#[derive(Debug)]
struct Written<K> {
    index: FxHashMap<K, usize>,
    texts: Vec<Box<[u8]>>,
    recent: [Option<(K, usize)>; RECENT],
}

/// Entries of [`Written`]'s table (a power of two).
const RECENT: usize = 64;

/// Where a key sits in [`Written`]'s table: cheap, and different for
/// the few keys of a recording.
trait Bucket {
    fn bucket(&self) -> usize;
}

impl Bucket for (i32, Option<TaskComm>) {
    fn bucket(&self) -> usize {
        self.0 as usize % RECENT
    }
}

impl Bucket for (u64, Fragment) {
    fn bucket(&self) -> usize {
        // Code addresses differ in their low bits; one bit for the kind.
        (((self.0 ^ (self.0 >> 7)) << 1) as usize | self.1 as usize) % RECENT
    }
}

impl<K: Copy> Default for Written<K> {
    fn default() -> Self {
        Written {
            index: FxHashMap::default(),
            texts: Vec::new(),
            recent: [None; RECENT],
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash + Bucket> Written<K> {
    fn get_or_write(&mut self, key: K, write: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        let bucket = key.bucket();
        let at = match self.recent[bucket] {
            Some((k, at)) if k == key => at,
            _ => {
                let at = match self.index.get(&key) {
                    Some(&at) => at,
                    None => {
                        let mut o = Vec::new();
                        write(&mut o);
                        self.texts.push(o.into_boxed_slice());
                        self.index.insert(key, self.texts.len() - 1);
                        self.texts.len() - 1
                    }
                };
                self.recent[bucket] = Some((key, at));
                at
            }
        };
        &self.texts[at]
    }
}

/// Which members a cached JSON fragment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fragment {
    /// `"function":..,"probe":..,"probe_addr":..` of a probe address.
    Probe,
    /// `"instruction":..,"instruction_addr":..` of a writer's address.
    Instruction,
}

impl<'a> Renderer<'a> {
    pub fn new(symbols: &'a Symbols, graph: Option<(&'a str, &'a Graph)>) -> Renderer<'a> {
        Renderer {
            symbols,
            graph,
            fragments: RefCell::default(),
            tasks: RefCell::default(),
        }
    }

    /// Appends member `key`: the task `pid` named `comm`.
    fn put_task(&self, obj: &mut Obj<'_>, key: &'static str, pid: i32, comm: Option<TaskComm>) {
        let mut tasks = self.tasks.borrow_mut();
        let task = tasks.get_or_write((pid, comm), |o| {
            Obj::new(o)
                .i64(k!("pid"), pid.into())
                .opt_str(k!("comm"), comm.as_ref().map(TaskComm::to_str).as_deref())
                .end();
        });
        obj.key(key).extend_from_slice(task);
    }

    /// Appends the members `kind` of `addr` to `obj`.
    fn put_fragment(&self, obj: &mut Obj<'_>, kind: Fragment, addr: u64) {
        let mut fragments = self.fragments.borrow_mut();
        let fragment = fragments.get_or_write((addr, kind), |o| {
            let mut members = Obj::new(o);
            match kind {
                Fragment::Probe => {
                    members
                        .opt_str(k!("function"), self.symbols.function_name(addr).as_deref())
                        .str(k!("probe"), &self.symbols.describe(addr))
                        .hex(k!("probe_addr"), addr);
                }
                Fragment::Instruction => {
                    members
                        .str(k!("instruction"), &self.symbols.describe(addr))
                        .hex(k!("instruction_addr"), addr);
                }
            }
            // The members without the opening brace.
            o.remove(0);
        });
        obj.members(fragment);
    }
}

impl Renderer<'_> {
    /// The victim's call chain, the writer's excluded, return hooks named;
    /// where function_graph shows the victim's caller behind a return
    /// hook, it is named too.
    fn victim_chain(&self, f: &Frame, graph: Option<&GraphOut>) -> Vec<(u64, Rc<str>)> {
        let Some(a) = &f.arm else {
            return Vec::new();
        };
        let chain = symbols::victim_chain(&a.ctx.callchain, a.probe_ip);
        chain
            .iter()
            .map(|&ip| {
                let mut text = self.symbols.describe_return(ip);
                if self.symbols.is_trampoline(ip) {
                    if let Some(caller) = graph.and_then(|g| g.path.iter().rev().nth(1)) {
                        text =
                            Rc::from(format!("{} [function_graph: called from {caller}]", &*text));
                    }
                }
                (ip, text)
            })
            .collect()
    }

    fn function_of(&self, f: &Frame) -> Rc<str> {
        match f.probe_ip {
            Some(ip) => self.symbols.function(ip),
            None => Rc::from("?"),
        }
    }

    /// The text block of one frame.
    pub fn text_frame(&self, o: &mut Vec<u8>, f: &Frame) {
        let _ = self.write_text_frame(o, f);
    }

    fn write_text_frame(&self, o: &mut Vec<u8>, f: &Frame) -> io::Result<()> {
        let probe = match f.probe_ip {
            Some(ip) => self.symbols.describe(ip),
            None => Rc::from("?"),
        };
        o.put("  watch ")
            .put_u64(f.id)
            .put(": ")
            .put(&self.function_of(f))
            .put(" (probe ")
            .put(&probe);
        match (&f.arm, f.missing_arm) {
            (Some(a), _) => o.put(", depth ").put_u64(a.depth.into()).put(")\n"),
            (None, missing) => o
                .put("; ")
                .put(match missing {
                    Some(MissingArm::BeforeRecording) => {
                        "armed before the recording started: arm not recorded"
                    }
                    _ => "arm not recorded (lost)",
                })
                .put(")\n"),
        };
        o.put("    task     ")
            .put(&name_or_unknown(&f.task_name))
            .put("/");
        match f.tid {
            Some(t) => o.put_i64(t.into()),
            None => o.put("?"),
        };
        if let Some(c) = f.arm.as_ref().and_then(|a| a.ctx.cpu) {
            o.put(" on cpu ").put_u64(c.into());
        }
        o.put("\n    address  ");
        match &f.arm {
            Some(a) => o
                .put_hex(a.addr)
                .put(" (")
                .put_u64(a.len.into())
                .put(" bytes, sp+")
                .put_hex(a.addr.wrapping_sub(a.sp))
                .put(")\n"),
            None => o
                .put_hex(f.addr)
                .put(" (")
                .put_u64(f.len.into())
                .put(" bytes)\n"),
        };
        o.put("    window   ");
        match &f.arm {
            Some(a) => o.put_secs(a.ctx.time_ns),
            None => o.put("?"),
        };
        match (&f.disarm, f.end) {
            (Some(d), _) => {
                o.put(" .. ").put_secs(d.ctx.time_ns);
                if let Some(a) = &f.arm {
                    o.put(" (")
                        .put_duration(d.ctx.time_ns.saturating_sub(a.ctx.time_ns))
                        .put(")");
                }
            }
            (None, End::DisarmLost(at)) => {
                o.put(" .. ? (disarm not recorded; the slot was armed again at ")
                    .put_secs(at)
                    .put(")");
            }
            (None, _) => {
                o.put(" .. (still armed)");
            }
        }
        let at_arm = self.value_at_arm(f);
        let at_exit = self.value_at_exit(f);
        o.put("\n    value    ")
            .put_shown(&at_arm)
            .put(" at arm -> ")
            .put_shown(&at_exit)
            .put(" at exit\n    verdict  ");
        self.put_verdict(o, f, &at_arm, &at_exit);
        o.put("\n");
        if let Some(reason) = f.disarm.as_ref().and_then(|d| d.reason) {
            if reason.as_str() != "return" {
                o.put("    ended    by ").put(reason.as_str()).put("\n");
            }
        }
        let graph = self.graph.and_then(|(_, g)| victim_graph(g, f));
        let chain = self.victim_chain(f, graph.as_ref());
        if !chain.is_empty() {
            o.put("    armed in ");
            for (i, (_, text)) in chain.iter().enumerate() {
                if i > 0 {
                    o.put(" <- ");
                }
                o.put(text);
            }
            o.put("\n");
        }
        if let Some(g) = &graph {
            render_graph(o, "victim", g)?;
        }
        Ok(())
    }

    fn value_at_arm(&self, f: &Frame) -> Shown {
        match (&f.arm, &f.disarm) {
            (Some(a), _) => shown(a.value, a.canary),
            (None, Some(d)) => shown(d.arm_value, d.canary),
            (None, None) => Shown::Unknown,
        }
    }

    fn value_at_exit(&self, f: &Frame) -> Shown {
        match &f.disarm {
            Some(d) if d.corrupted != ExitState::Unknown => shown(d.exit_value, d.exit_is_canary),
            _ => Shown::Unknown,
        }
    }

    /// The verdict line's text.
    fn put_verdict(&self, o: &mut Vec<u8>, f: &Frame, at_arm: &Shown, at_exit: &Shown) {
        match f.verdict() {
            FrameVerdict::Hit => {
                match f.kernel_hits() {
                    Some(k) if k != f.hit_count => o
                        .put("HIT: ")
                        .put_u64(k)
                        .put(" write(s) in the kernel, ")
                        .put_u64(f.hit_count)
                        .put(" recorded, by "),
                    _ => o
                        .put("HIT: ")
                        .put_u64(f.writes())
                        .put(" write(s) caught, by "),
                };
                // The writers of the kept hits, each once in a row.
                let mut last: Option<(usize, usize)> = None;
                for m in &f.hits {
                    let start = o.len();
                    if last.is_some() {
                        o.put(", ");
                    }
                    let label_at = o.len();
                    put_writer_label(o, m);
                    let label = label_at..o.len();
                    if let Some((a, b)) = last {
                        if o[a..b] == o[label.clone()] {
                            o.truncate(start);
                            continue;
                        }
                    }
                    last = Some((label.start, label.end));
                }
                if last.is_none() {
                    o.put("no writer recorded");
                }
                o.put("; ").put(match (&f.disarm, f.end) {
                    (Some(d), _) => match d.corrupted {
                        ExitState::Changed => "value changed",
                        ExitState::Intact => "value restored",
                        ExitState::Unknown => "value at death not read",
                    },
                    (None, End::DisarmLost(_)) => "disarm not recorded",
                    (None, _) => "still armed at end of recording",
                });
            }
            FrameVerdict::SilentlyCorrupted => {
                o.put("SILENTLY CORRUPTED: ")
                    .put_shown(at_arm)
                    .put(" at arm, ")
                    .put_shown(at_exit)
                    .put(" when the frame died, and no write was caught");
            }
            FrameVerdict::Clean => {
                o.put("clean");
            }
            FrameVerdict::Unknown => {
                o.put("UNKNOWN: no write caught, but the value at death was not read (disarmed after the frame died)");
            }
            FrameVerdict::StillArmed => {
                o.put("still armed at end of recording");
            }
            FrameVerdict::DisarmLost => {
                o.put("UNKNOWN: no write recorded, and its disarm is not in the recording (lost): how the frame died is not known");
            }
        }
    }
}

fn render_graph(o: &mut Vec<u8>, who: &str, g: &GraphOut) -> io::Result<()> {
    if g.path.is_empty() && g.calls.is_empty() {
        return writeln!(o, "    function_graph ({who}): {}", g.anchor_text);
    }
    writeln!(
        o,
        "    function_graph ({who}, {}): {}",
        g.anchor_text,
        g.path.join(" > ")
    )?;
    if !g.calls.is_empty() {
        writeln!(o, "      calls while armed:")?;
        for c in &g.calls {
            write!(o, "        {}{}", "  ".repeat(c.depth), c.function)?;
            if let Some(d) = c.duration_ns {
                write!(o, " ({})", duration(d))?;
            }
            writeln!(o)?;
        }
    }
    Ok(())
}

fn render_hit_line(o: &mut Vec<u8>, m: &MatchedHit) -> io::Result<()> {
    let h = &m.hit;
    writeln!(
        o,
        "      {}  watch {} ({}/{}): {} -> {} at {}{}",
        secs(h.ctx.time_ns),
        h.id,
        h.victim_comm,
        h.victim_pid,
        shown(h.old_value, h.old_is_canary),
        shown(h.new_value, h.new_is_canary),
        Hex(h.addr),
        context_note(h)
    )
}

/// JSON written by this module's own writer ([`Obj`], [`hits_json`],
/// [`chain_json`]), handed to serde as it is: the writers' section is
/// serde's, and its hits and call chains are written as the victims' are.
struct Raw<F>(F);

impl<F: Fn(&mut Vec<u8>)> Serialize for Raw<F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = Vec::new();
        (self.0)(&mut o);
        let text = String::from_utf8(o).map_err(serde::ser::Error::custom)?;
        serde_json::value::RawValue::from_string(text)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

/// A JSON object written straight into the output: a full listing writes
/// ~1 KB of JSON per frame, and serde's generic path (every key escaped,
/// every value through a trait object) was most of the report's time.
/// Keys are the schema's own names, quoted when compiled ([`k!`]).
struct Obj<'o> {
    o: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn new(o: &'o mut Vec<u8>) -> Obj<'o> {
        o.push(b'{');
        Obj { o, first: true }
    }

    /// `key` is `"name":` ([`k!`]).
    #[inline(always)]
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        if !self.first {
            self.o.push(b',');
        }
        self.first = false;
        self.o.put(key)
    }

    #[inline(always)]
    fn u64(&mut self, key: &'static str, v: u64) -> &mut Self {
        self.key(key).put_u64(v);
        self
    }

    #[inline(always)]
    fn i64(&mut self, key: &'static str, v: i64) -> &mut Self {
        self.key(key).put_i64(v);
        self
    }

    #[inline(always)]
    fn opt_u64(&mut self, key: &'static str, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.u64(key, v),
            None => self.null(key),
        }
    }

    #[inline(always)]
    fn null(&mut self, key: &'static str) -> &mut Self {
        self.key(key).put("null");
        self
    }

    #[inline(always)]
    fn bool(&mut self, key: &'static str, v: bool) -> &mut Self {
        self.key(key).put(if v { "true" } else { "false" });
        self
    }

    /// A string of the schema's own (a code): written without escaping.
    #[inline(always)]
    fn code(&mut self, key: &'static str, v: &'static str) -> &mut Self {
        debug_assert!(!v.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
        self.key(key).put("\"").put(v).put("\"");
        self
    }

    #[inline(always)]
    fn opt_code(&mut self, key: &'static str, v: Option<&'static str>) -> &mut Self {
        match v {
            Some(v) => self.code(key, v),
            None => self.null(key),
        }
    }

    #[inline(always)]
    fn str(&mut self, key: &'static str, v: &str) -> &mut Self {
        put_json_str(self.key(key), v);
        self
    }

    #[inline(always)]
    fn opt_str(&mut self, key: &'static str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    #[inline(always)]
    fn hex(&mut self, key: &'static str, v: u64) -> &mut Self {
        self.key(key).put("\"").put_hex(v).put("\"");
        self
    }

    #[inline(always)]
    fn shown(&mut self, key: &'static str, v: &Shown) -> &mut Self {
        match v {
            Shown::Value(v) => self.hex(key, *v),
            Shown::Canary => self.str(key, "canary"),
            Shown::Unknown => self.null(key),
        }
    }

    /// Members already written (`"a":1,"b":2`).
    fn members(&mut self, members: &[u8]) -> &mut Self {
        if !self.first {
            self.o.push(b',');
        }
        self.first = false;
        self.o.extend_from_slice(members);
        self
    }

    /// A member written by serde (rare ones: function_graph output).
    fn serde(&mut self, key: &'static str, v: &impl Serialize) -> &mut Self {
        let o = self.key(key);
        // Writing into a Vec cannot fail, and these types always serialize.
        let _ = serde_json::to_writer(o, v);
        self
    }

    fn end(&mut self) {
        self.o.push(b'}');
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn put_json_str(o: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    o.push(b'"');
    let bytes = s.as_bytes();
    // Almost no string needs escaping: one pass without early exit (it
    // vectorizes), then one copy.
    let plain = !bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        o.extend_from_slice(bytes);
        o.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        o.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            o.extend_from_slice(b"\\u00");
            o.push(HEX[usize::from(b >> 4)]);
            o.push(HEX[usize::from(b & 15)]);
        } else {
            o.extend_from_slice(escape);
        }
        start = i + 1;
    }
    o.extend_from_slice(&bytes[start..]);
    o.push(b'"');
}

fn hit_json(o: &mut Vec<u8>, r: &Renderer<'_>, m: &MatchedHit) {
    let h = &m.hit;
    let mut obj = Obj::new(o);
    obj.u64(k!("id"), h.id)
        .u64(k!("time_ns"), h.ctx.time_ns)
        .opt_u64(k!("cpu"), h.ctx.cpu.map(u64::from));
    r.put_task(&mut obj, k!("writer"), h.ctx.tid, m.writer_name);
    r.put_fragment(&mut obj, Fragment::Instruction, h.writer_ip);
    obj.hex(k!("address"), h.addr)
        .shown(k!("old_value"), &shown(h.old_value, h.old_is_canary))
        .shown(k!("new_value"), &shown(h.new_value, h.new_is_canary))
        .opt_code(k!("context"), h.context.map(|c| c.as_str()))
        .bool(k!("by_victim"), h.by_victim)
        .bool(k!("out_of_line"), h.out_of_line);
    r.put_task(&mut obj, k!("victim"), h.victim_pid, Some(h.victim_comm));
    obj.opt_u64(k!("matched_by_id"), m.by_id)
        .opt_u64(
            k!("matched_by_time"),
            match m.by_time {
                TimeMatch::One(id) => Some(id),
                _ => None,
            },
        )
        .code(k!("agreement"), m.agreement().as_str())
        .end();
}

/// A call chain: `[{"addr":..,"symbol":..},..]`.
fn chain_json(o: &mut Vec<u8>, chain: &[(u64, Rc<str>)]) {
    o.push(b'[');
    for (i, (addr, symbol)) in chain.iter().enumerate() {
        if i > 0 {
            o.push(b',');
        }
        Obj::new(o)
            .hex(k!("addr"), *addr)
            .str(k!("symbol"), symbol)
            .end();
    }
    o.push(b']');
}

/// Hits: `[{..},..]`.
fn hits_json(o: &mut Vec<u8>, r: &Renderer<'_>, hits: &[MatchedHit]) {
    o.push(b'[');
    for (i, m) in hits.iter().enumerate() {
        if i > 0 {
            o.push(b',');
        }
        hit_json(o, r, m);
    }
    o.push(b']');
}

/// One victim frame in JSON (an element of `victims`).
pub fn frame_json(o: &mut Vec<u8>, r: &Renderer<'_>, f: &Frame) {
    let a = f.arm.as_ref();
    let mut obj = Obj::new(o);
    obj.u64(k!("id"), f.id);
    match f.probe_ip {
        Some(ip) => r.put_fragment(&mut obj, Fragment::Probe, ip),
        None => {
            obj.null(k!("function"))
                .null(k!("probe"))
                .null(k!("probe_addr"));
        }
    }
    obj.code(
        k!("arm"),
        match (a, f.missing_arm) {
            (Some(_), _) => "recorded",
            (None, Some(MissingArm::BeforeRecording)) => "before_recording",
            (None, _) => "lost",
        },
    )
    .opt_u64(k!("depth"), a.map(|a| a.depth.into()))
    .opt_u64(k!("spec"), a.map(|a| a.spec.into()))
    .u64(k!("slot"), f.slot.into());
    r.put_task(&mut obj, k!("task"), f.tid.unwrap_or(-1), f.task_name);
    obj.opt_u64(k!("cpu"), a.and_then(|a| a.ctx.cpu).map(u64::from))
        .hex(k!("address"), f.addr)
        .u64(k!("len"), f.len.into())
        .opt_u64(k!("sp_offset"), a.map(|a| a.addr.wrapping_sub(a.sp)))
        .bool(
            k!("canary"),
            a.is_some_and(|a| a.canary) || f.disarm.as_ref().is_some_and(|d| d.canary),
        )
        .opt_u64(k!("armed_ns"), a.map(|a| a.ctx.time_ns))
        .opt_u64(k!("disarmed_ns"), f.disarm.as_ref().map(|d| d.ctx.time_ns))
        .code(
            k!("end"),
            match f.end {
                End::Disarmed => "disarmed",
                End::DisarmLost(_) => "disarm_lost",
                End::StillArmed => "still_armed",
            },
        )
        .shown(k!("value_at_arm"), &r.value_at_arm(f))
        .shown(k!("value_at_exit"), &r.value_at_exit(f))
        .opt_code(
            k!("exit_state"),
            f.disarm.as_ref().map(|d| d.corrupted.as_str()),
        )
        .code(k!("verdict"), f.verdict().code())
        .opt_code(
            k!("disarm_reason"),
            f.disarm.as_ref().and_then(|d| d.reason).map(|r| r.as_str()),
        )
        .u64(k!("hit_count"), f.hit_count)
        .opt_u64(k!("kernel_hits"), f.kernel_hits());
    hits_json(obj.key(k!("hits")), r, &f.hits);
    let graph = r.graph.and_then(|(_, g)| victim_graph(g, f));
    let chain = r.victim_chain(f, graph.as_ref());
    chain_json(obj.key(k!("call_chain")), &chain);
    match &graph {
        Some(g) => obj.serde(k!("graph"), g),
        None => obj.null(k!("graph")),
    };
    obj.end();
}

/// The frames a bounded text report lists, and how the others add up.
#[derive(Debug, Default)]
pub struct FrameListing {
    /// (arm time, id, text) of the listed frames.
    pub shown: Vec<(u64, u64, Vec<u8>)>,
    /// Frames not listed, by (function, verdict).
    pub others: BTreeMap<(Rc<str>, &'static str), u64>,
}

impl FrameListing {
    /// Lists `frame` if fewer than `max` are listed, else counts it.
    pub fn add(&mut self, frame: &Frame, renderer: &Renderer<'_>, max: usize) {
        if self.shown.len() < max {
            let mut text = Vec::new();
            renderer.text_frame(&mut text, frame);
            let time = frame.arm.as_ref().map_or(frame.first_ns, |a| a.ctx.time_ns);
            self.shown.push((time, frame.id, text));
            return;
        }
        let function = renderer.function_of(frame);
        *self
            .others
            .entry((function, frame.verdict().words()))
            .or_default() += 1;
    }
}

/// The module's counters over the recording (start and end snapshots).
#[derive(Debug, Default, Clone)]
pub struct KernelCounters {
    pub delta: BTreeMap<String, u64>,
}

/// Counters of frames the module did not arm, with what they mean.
const NOT_ARMED: &[(&str, &str)] = &[
    ("dropped_no_slot", "no free hardware slot"),
    ("dropped_max_watch", "the spec's max_watch reached"),
    ("canary_not_found", "no canary in the frame"),
    ("outside_stack", "range outside the task's stack"),
    ("misaligned", "range not aligned to its length"),
    (
        "exit_unobservable",
        "no return hook available (rethook pool empty)",
    ),
    ("bad_frame", "frame not located"),
    ("depth_untracked", "per-task depth table full"),
];

impl KernelCounters {
    /// Parses `start: a=1 b=2` / `end: a=3 b=4` lines.
    pub fn parse(text: &str) -> Option<KernelCounters> {
        let mut start: BTreeMap<&str, u64> = BTreeMap::new();
        let mut end: BTreeMap<&str, u64> = BTreeMap::new();
        for line in text.lines() {
            let (which, rest) = line.split_once(':')?;
            let map = match which.trim() {
                "start" => &mut start,
                "end" => &mut end,
                _ => continue,
            };
            for kv in rest.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    if let Ok(v) = v.parse() {
                        map.insert(k, v);
                    }
                }
            }
        }
        if end.is_empty() {
            return None;
        }
        Some(KernelCounters {
            delta: end
                .iter()
                .map(|(k, v)| (k.to_string(), v.saturating_sub(*start.get(k).unwrap_or(&0))))
                .collect(),
        })
    }

    /// A counter's growth over the recording (0 if the module has none).
    pub fn get(&self, name: &str) -> u64 {
        self.delta.get(name).copied().unwrap_or(0)
    }

    /// Frames not armed, by reason: (counter, meaning, count), nonzero only.
    pub fn not_armed(&self) -> Vec<(&'static str, &'static str, u64)> {
        NOT_ARMED
            .iter()
            .map(|&(c, what)| (c, what, self.get(c)))
            .filter(|&(_, _, n)| n > 0)
            .collect()
    }
}

/// Everything but the frames (those stream): built once the stream ended.
#[derive(Debug)]
pub struct Tail {
    pub stats: StreamStats,
    pub summary: Summary,
    pub writers: Vec<Writer>,
    pub notes: Vec<String>,
    pub counters: Option<KernelCounters>,
    pub error: Option<String>,
}

impl Renderer<'_> {
    pub fn tail(
        &self,
        recording: &Recording,
        stats: StreamStats,
        outcome: Outcome,
        error: Option<String>,
    ) -> Tail {
        let s = &outcome.summary;
        let mut notes = Vec::new();
        for (name, why) in &recording.damaged_features {
            notes.push(format!(
                "feature section {name} skipped (damaged: {why}); the samples are intact"
            ));
        }
        if let Some(e) = &error {
            notes.push(format!(
                "the recording is damaged after the events reported: {e}"
            ));
        }
        if stats.lost > 0 {
            notes.push(format!(
                "{} event(s) were lost while recording ({} PERF_RECORD_LOST record(s)): the ring buffers overflowed (raise `ksw record -m`); the counts below say what is missing",
                stats.lost, stats.lost_records
            ));
        }
        if s.arms_missing > 0 {
            notes.push(format!(
                "{} frame(s) have hits or a disarm but no recorded arm (lost: their ids are newer than the first arm recorded); function, depth and window are unknown",
                s.arms_missing
            ));
        }
        if s.armed_before_recording > 0 {
            notes.push(format!(
                "{} frame(s) were armed before the recording started (hits or a disarm without an arm, ids older than every arm recorded)",
                s.armed_before_recording
            ));
        }
        if s.disarms_missing > 0 {
            notes.push(format!(
                "{} frame(s) ended without a recorded disarm (their slot was armed again, or their id reused): the value at death is unknown",
                s.disarms_missing
            ));
        }
        if s.hits_missing > 0 {
            notes.push(format!(
                "{} frame(s) have fewer hits recorded than the kernel counted ({} write(s) in the kernel are missing from the recording): their writers are not all known; the headline counts the kernel's writes",
                s.frames_missing_hits, s.hits_missing
            ));
        }
        if s.frames_extra_hits > 0 {
            notes.push(format!(
                "{} frame(s) have more hits recorded than the kernel counted (ids reused, or events from two runs?)",
                s.frames_extra_hits
            ));
        }
        for agreement in Agreement::ALL {
            if matches!(agreement, Agreement::Agree | Agreement::Unmatched) {
                continue;
            }
            let n = s.agreements.get(&agreement).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let examples: Vec<String> = outcome
                .examples
                .iter()
                .filter(|m| m.agreement() == agreement)
                .map(|m| {
                    let time = match &m.by_time {
                        TimeMatch::One(id) => format!("watch {id}"),
                        TimeMatch::None => "none".into(),
                        TimeMatch::Ambiguous(ids) => format!(
                            "watches {}",
                            ids.iter()
                                .map(u64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "watch {} at {} ({}): by id {}, by time and address {}",
                        m.hit.id,
                        Hex(m.hit.addr),
                        secs(m.hit.ctx.time_ns),
                        m.by_id.map_or("none".to_string(), |i| format!("watch {i}")),
                        time
                    )
                })
                .collect();
            notes.push(format!(
                "{n} hit(s) whose two matches are \"{}\" ({}); the hit counts for the frame its id names; e.g. {}",
                agreement.as_str(),
                agreement.meaning(),
                examples.join("; ")
            ));
        }
        let counters = recording
            .counters
            .as_deref()
            .and_then(KernelCounters::parse);
        if let Some(c) = &counters {
            let arms_recorded = s.frames - s.arms_missing - s.armed_before_recording;
            let arms = c.get("arms");
            if arms != arms_recorded {
                notes.push(format!(
                    "the module armed {arms} frame(s) during the recording; {arms_recorded} arm(s) are in it"
                ));
            }
            if c.get("hits") != s.hits_recorded {
                notes.push(format!(
                    "the module reported {} hit(s) during the recording; {} are in it",
                    c.get("hits"),
                    s.hits_recorded
                ));
            }
            let not_armed = c.not_armed();
            if !not_armed.is_empty() {
                let total: u64 = not_armed.iter().map(|x| x.2).sum();
                let parts: Vec<String> = not_armed
                    .iter()
                    .map(|(name, what, n)| format!("{n}: {what} ({name})"))
                    .collect();
                notes.push(format!(
                    "{total} frame(s) were not armed, so not watched: {}",
                    parts.join(", ")
                ));
            }
        }
        if self.symbols.is_empty() && stats.events > 0 {
            notes.push("no kernel symbols: pass --kallsyms (a copy of the recording machine's /proc/kallsyms) or record with `ksw record`".into());
        }
        if let Some(why) = &self.symbols.rejected {
            notes.push(why.clone());
        }
        if let Some((path, g)) = self.graph {
            if let Some((line, text)) = &g.first_skipped {
                notes.push(format!(
                    "{path}: {} line(s) not read as function_graph (first: line {line}: {text:?})",
                    g.skipped
                ));
            }
            if g.lossy_lines > 0 {
                notes.push(format!(
                    "{path}: {} line(s) hold bytes that are not UTF-8 (shown as \u{fffd})",
                    g.lossy_lines
                ));
            }
        }
        Tail {
            stats,
            summary: outcome.summary,
            writers: outcome.writers,
            notes,
            counters,
            error,
        }
    }
}

fn header(o: &mut Vec<u8>, recording: &Recording, r: &Renderer<'_>) -> io::Result<()> {
    write!(o, "ksw report: {} (", recording.path.display())?;
    if let Some(h) = &recording.hostname {
        write!(o, "host {h}, ")?;
    }
    if let Some(k) = &recording.os_release {
        write!(o, "kernel {k}, ")?;
    }
    writeln!(o, "clock {})", clock_name(recording.clockid))?;
    writeln!(o, "symbols: {}", r.symbols.source)?;
    if let Some((g, _)) = r.graph {
        writeln!(o, "function_graph: {g}")?;
    }
    Ok(())
}

fn summary_text(o: &mut Vec<u8>, t: &Tail) -> io::Result<()> {
    let s = &t.summary;
    writeln!(o, "events: {} read, {} lost", t.stats.events, t.stats.lost)?;
    writeln!(o, "\n{}", s.headline())?;
    write!(
        o,
        "  {} watched frame(s): {} hit, {} silently corrupted, {} clean, {} still armed",
        s.frames, s.hit, s.silent, s.clean, s.still_armed
    )?;
    if s.unknown > 0 {
        write!(o, ", {} unknown (value at death not read)", s.unknown)?;
    }
    if s.disarm_lost > 0 {
        write!(o, ", {} ended without a recorded disarm", s.disarm_lost)?;
    }
    writeln!(o)?;
    if s.hits_in_kernel != s.hits_recorded || s.hits_missing > 0 {
        writeln!(
            o,
            "  writes: {} hit(s) recorded; the kernel counted {} for the frames whose disarm is recorded",
            s.hits_recorded, s.hits_in_kernel
        )?;
    }
    if let Some(c) = &t.counters {
        let not_armed: u64 = c.not_armed().iter().map(|x| x.2).sum();
        writeln!(
            o,
            "  the module (its counters over the recording): {} armed, {} hit(s), {} disarmed, {} not armed",
            c.get("arms"),
            c.get("hits"),
            c.get("disarms"),
            not_armed
        )?;
    }
    Ok(())
}

fn rest_text(o: &mut Vec<u8>, r: &Renderer<'_>, t: &Tail) -> io::Result<()> {
    writeln!(o, "\nWriters")?;
    if t.writers.is_empty() {
        writeln!(o, "  (no write caught)")?;
    }
    for w in &t.writers {
        writeln!(
            o,
            "  {}/{}: {} write(s)",
            name_or_unknown(&w.comm),
            w.tid,
            w.hit_count()
        )?;
        for site in &w.sites {
            let cpus: Vec<String> = site.cpus.iter().map(u32::to_string).collect();
            writeln!(
                o,
                "    {} x {} on cpu {}",
                site.count,
                r.symbols.describe(site.writer_ip),
                cpus.join(",")
            )?;
            for m in &site.examples {
                render_hit_line(o, m)?;
            }
            if site.count > site.examples.len() as u64 {
                writeln!(
                    o,
                    "      ... {} more",
                    site.count - site.examples.len() as u64
                )?;
            }
            if !site.chain.is_empty() {
                writeln!(o, "      call chain:")?;
                for (i, &ip) in site.chain.iter().enumerate() {
                    // The first entry is the writer ip itself.
                    let text = if i == 0 {
                        r.symbols.describe(ip)
                    } else {
                        r.symbols.describe_return(ip)
                    };
                    writeln!(o, "        {text}")?;
                }
            }
            if let (Some((_, g)), Some(m)) = (r.graph, site.examples.first()) {
                render_graph(o, "writer", &writer_graph(g, &m.hit))?;
            }
        }
    }
    if !t.notes.is_empty() {
        writeln!(o, "\nNotes")?;
        for n in &t.notes {
            writeln!(o, "  - {n}")?;
        }
    }
    Ok(())
}

/// Text output: `--max-frames N` (N > 0) keeps N frames and prints the
/// summary first; 0 streams every frame as it ends, summary after.
pub fn run_text(
    out: &mut dyn Write,
    recording: &Recording,
    r: &Renderer<'_>,
    max_frames: usize,
) -> io::Result<Result<(), crate::events::LoadError>> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    header(&mut buf, recording, r)?;
    let streaming = max_frames == 0;
    let io_error: RefCell<Option<io::Error>> = RefCell::new(None);
    let out = RefCell::new(out);
    let listing = RefCell::new(FrameListing::default());
    let frames_seen = std::cell::Cell::new(0u64);
    if streaming {
        writeln!(
            buf,
            "\nVictim frames (as they end; the summary follows them)"
        )?;
        out.borrow_mut().write_all(&buf)?;
        buf.clear();
    }
    let pending = RefCell::new(Vec::<u8>::with_capacity(1 << 16));
    let tally = RefCell::new(SweepTally::default());
    let (stats, result, outcome) = stream_frames(recording, |f: &Frame| {
        frames_seen.set(frames_seen.get() + 1);
        tally.borrow_mut().add(f, r.symbols);
        if streaming {
            let mut p = pending.borrow_mut();
            r.text_frame(&mut p, f);
            if p.len() >= 1 << 16 && io_error.borrow().is_none() {
                if let Err(e) = out.borrow_mut().write_all(&p) {
                    *io_error.borrow_mut() = Some(e);
                }
                p.clear();
            }
        } else {
            listing.borrow_mut().add(f, r, max_frames);
        }
    });
    if let Some(e) = io_error.into_inner() {
        return Err(e);
    }
    let error = result.as_ref().err().map(|e| e.to_string());
    let tail = r.tail(recording, stats, outcome, error);
    let sweep = SweepAnalysis::new(recording, tally.into_inner(), false);
    let out = out.into_inner();
    if streaming {
        let mut p = pending.into_inner();
        if frames_seen.get() == 0 {
            writeln!(p, "  (none armed in this recording)")?;
        }
        summary_text(&mut p, &tail)?;
        sweep_text(&mut p, &sweep, r)?;
        rest_text(&mut p, r, &tail)?;
        out.write_all(&p)?;
    } else {
        summary_text(&mut buf, &tail)?;
        sweep_text(&mut buf, &sweep, r)?;
        writeln!(buf, "\nVictim frames")?;
        let listing = listing.into_inner();
        if listing.shown.is_empty() {
            writeln!(buf, "  (none armed in this recording)")?;
        }
        let mut shown = listing.shown;
        shown.sort_by_key(|(t, id, _)| (*t, *id));
        for (_, _, text) in &shown {
            buf.extend_from_slice(text);
        }
        if !listing.others.is_empty() {
            let more: u64 = listing.others.values().sum();
            writeln!(
                buf,
                "  ... {more} more frame(s) (--max-frames 0 lists all; all are in --format json):"
            )?;
            for ((function, verdict), n) in &listing.others {
                writeln!(buf, "      {n:>8} x {function}: {verdict}")?;
            }
        }
        rest_text(&mut buf, r, &tail)?;
        out.write_all(&buf)?;
    }
    Ok(result)
}

/// The sweep section, when the recording is one (a sweep's stored stats,
/// or frames in many functions); nothing otherwise.
fn sweep_text(o: &mut Vec<u8>, a: &SweepAnalysis, r: &Renderer<'_>) -> io::Result<()> {
    if a.is_sweep() {
        sweep::write_section(o, a, r.symbols)?;
    }
    Ok(())
}

/// A buffer in front of the output: serde_json writes many small pieces,
/// which land in a `Vec` (inlined) and go out 256 KiB at a time.
pub struct Spool<'o> {
    buf: Vec<u8>,
    out: &'o mut dyn Write,
}

impl<'o> Spool<'o> {
    pub fn new(out: &'o mut dyn Write) -> Spool<'o> {
        Spool {
            buf: Vec::with_capacity(SPOOL + 4096),
            out,
        }
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// The buffer, to write into directly; then [`Self::drain_if_full`].
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn drain_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= SPOOL {
            self.drain()?;
        }
        Ok(())
    }
}

const SPOOL: usize = 256 * 1024;

impl std::fmt::Debug for Spool<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spool({} bytes)", self.buf.len())
    }
}

impl Write for Spool<'_> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        self.drain_if_full()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }
}

/// The writer's part of a hit's call chain.
fn writer_part(h: &Hit) -> &[u64] {
    symbols::writer_chain(&h.ctx.callchain, h.writer_ip)
}

/// The JSON document's formatter: compact, with each element of a
/// top-level array on a line of its own (one victim per line).
struct LineFormatter {
    depth: usize,
}

impl serde_json::ser::Formatter for LineFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.depth == 1 {
            w.write_all(b"\n]")
        } else {
            w.write_all(b"]")
        }
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if self.depth == 2 {
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.depth == 0 {
            w.write_all(b"\n}")
        } else {
            w.write_all(b"}")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if self.depth == 1 {
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// Reads and correlates the recording, handing each frame to `on_frame`
/// as it ends (on this thread; the file is decoded on another, see
/// [`Recording::stream`]).
pub fn stream_frames(recording: &Recording, on_frame: impl FnMut(&Frame)) -> StreamDone {
    let mut correlator = correlate::Correlator::new(writer_part, on_frame);
    correlator.add_names(recording.cmdlines.iter().cloned());
    let (stats, result) = recording.stream(|e| correlator.push(e));
    (stats, result, correlator.finish())
}

/// What the stream left: its counts, how it ended, the correlation.
type StreamDone = (StreamStats, Result<(), crate::events::LoadError>, Outcome);

/// A task in JSON (as [`Renderer::put_task`] writes it).
#[derive(Serialize)]
struct Task<'t> {
    pid: i32,
    comm: Option<Cow<'t, str>>,
}

struct WriterJson<'w>(&'w Renderer<'w>, &'w Writer);

impl Serialize for WriterJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, w) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "task",
            &Task {
                pid: w.tid,
                comm: w.comm.as_ref().map(TaskComm::to_str),
            },
        )?;
        m.serialize_entry("hits", &w.hit_count())?;
        let sites: Vec<SiteJson<'_>> = w.sites.iter().map(|site| SiteJson(r, site)).collect();
        m.serialize_entry("sites", &sites)?;
        m.end()
    }
}

struct SiteJson<'s>(&'s Renderer<'s>, &'s correlate::Site);

impl Serialize for SiteJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, site) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("instruction", &*r.symbols.describe(site.writer_ip))?;
        m.serialize_entry("instruction_addr", &Hex(site.writer_ip))?;
        m.serialize_entry("count", &site.count)?;
        m.serialize_entry("cpus", &site.cpus)?;
        m.serialize_entry("victims", &site.victims)?;
        m.serialize_entry(
            "examples",
            &Raw(|o: &mut Vec<u8>| hits_json(o, r, &site.examples)),
        )?;
        let chain: Vec<(u64, Rc<str>)> = site
            .chain
            .iter()
            .enumerate()
            .map(|(i, &ip)| {
                (
                    ip,
                    if i == 0 {
                        r.symbols.describe(ip)
                    } else {
                        r.symbols.describe_return(ip)
                    },
                )
            })
            .collect();
        m.serialize_entry("call_chain", &Raw(|o: &mut Vec<u8>| chain_json(o, &chain)))?;
        let graph = match (r.graph, site.examples.first()) {
            (Some((_, g)), Some(e)) => Some(writer_graph(g, &e.hit)),
            _ => None,
        };
        m.serialize_entry("graph", &graph)?;
        m.end()
    }
}

fn summary_json(s: &Summary) -> serde_json::Value {
    let agreements: BTreeMap<&str, u64> =
        s.agreements.iter().map(|(a, n)| (a.as_str(), *n)).collect();
    serde_json::json!({
        "headline": s.headline(),
        "corruptions": s.corruptions,
        "victims": s.victims,
        "writers": s.writers,
        "frames": s.frames,
        "hit": s.hit,
        "silently_corrupted": s.silent,
        "clean": s.clean,
        "unknown": s.unknown,
        "still_armed": s.still_armed,
        "disarm_lost": s.disarm_lost,
        "hits_recorded": s.hits_recorded,
        "hits_in_kernel": s.hits_in_kernel,
        "unmatched_hits": s.unmatched_hits,
        "disagreements": s.disagreements(),
        "agreements": agreements,
    })
}

/// JSON output: one document, written as it is produced.
pub fn run_json(
    out: &mut dyn Write,
    recording: &Recording,
    r: &Renderer<'_>,
) -> io::Result<Result<(), crate::events::LoadError>> {
    let mut spool = Spool::new(out);
    // The document's top level is written here, one member per line; the
    // victims (one per line, as they end) by hand, the rest by serde.
    write!(
        spool,
        "{{\n\"schema\":\"ksw-report\",\n\"schema_version\":{SCHEMA_VERSION},\n\"victims\":["
    )?;
    let mut tally = SweepTally::default();
    let mut io_error = None;
    let mut first = true;
    let (stats, result, outcome) = stream_frames(recording, |f: &Frame| {
        tally.add(f, r.symbols);
        if io_error.is_some() {
            return;
        }
        let o = spool.buffer();
        o.extend_from_slice(if first { b"\n" } else { b",\n" });
        first = false;
        frame_json(o, r, f);
        if let Err(e) = spool.drain_if_full() {
            io_error = Some(e);
        }
    });
    if let Some(e) = io_error {
        return Err(e);
    }
    spool.write_all(b"\n]")?;
    let error = result.as_ref().err().map(|e| e.to_string());
    let tail = r.tail(recording, stats, outcome, error);
    let s = &tail.summary;
    let mut member = |key: &str, value: &dyn erased::Member| -> io::Result<()> {
        write!(spool, ",\n\"{key}\":")?;
        value.write_to(&mut spool)
    };
    member(
        "recording",
        &serde_json::json!({
            "path": recording.path.display().to_string(),
            "hostname": recording.hostname,
            "os_release": recording.os_release,
            "clock": clock_name(recording.clockid),
            "events": tail.stats.events,
            "lost": tail.stats.lost,
            "symbols": r.symbols.source.to_string(),
            "graph": r.graph.map(|(p, _)| p),
            "damaged_features": recording.damaged_features.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        }),
    )?;
    member("summary", &summary_json(s))?;
    member(
        "loss",
        &serde_json::json!({
            "events_lost": tail.stats.lost,
            "arms_missing": s.arms_missing,
            "armed_before_recording": s.armed_before_recording,
            "disarms_missing": s.disarms_missing,
            "frames_missing_hits": s.frames_missing_hits,
            "hits_missing": s.hits_missing,
        }),
    )?;
    member(
        "kernel_counters",
        &tail.counters.as_ref().map(|c| {
            serde_json::json!({
                "delta": c.delta,
                "not_armed": c.not_armed().iter().map(|(n, _, v)| (*n, *v)).collect::<BTreeMap<_, _>>(),
            })
        }),
    )?;
    let sweep = SweepAnalysis::new(recording, tally, false);
    member(
        "sweep",
        &sweep
            .is_sweep()
            .then(|| sweep::section_json(&sweep, r.symbols)),
    )?;
    let writers: Vec<WriterJson<'_>> = tail.writers.iter().map(|w| WriterJson(r, w)).collect();
    member("writers", &writers)?;
    member("notes", &tail.notes)?;
    member("error", &tail.error)?;
    spool.write_all(b"\n}\n")?;
    spool.flush()?;
    Ok(result)
}

/// A top-level member's value, written by serde with the document's
/// layout (each element of an array on a line of its own).
mod erased {
    use super::LineFormatter;
    use serde::Serialize;
    use std::io::{self, Write};

    pub trait Member {
        fn write_to(&self, w: &mut dyn Write) -> io::Result<()>;
    }

    impl<T: Serialize> Member for T {
        fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
            // Depth 1: inside the top-level object.
            let mut ser = serde_json::Serializer::with_formatter(w, LineFormatter { depth: 1 });
            self.serialize(&mut ser).map_err(io::Error::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_without_allocation() {
        let mut b = [0u8; 18];
        assert_eq!(Hex(0).fmt_into(&mut b), "0x0");
        let mut b = [0u8; 18];
        assert_eq!(Hex(u64::MAX).fmt_into(&mut b), "0xffffffffffffffff");
        assert_eq!(Hex(0xdeadbef7).to_string(), "0xdeadbef7");
    }

    #[test]
    fn json_strings_escaped_as_serde_json_does() {
        let mut all: String = (0u8..128).map(char::from).collect();
        all.push_str("ksw-victim\u{fffd}\u{1f600}");
        for s in [all.as_str(), "", "plain", "a\"b\\c\nd\u{7f}"] {
            let mut o = Vec::new();
            put_json_str(&mut o, s);
            assert_eq!(
                String::from_utf8(o).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn times_as_the_text_report_shows_them() {
        let text = |f: fn(&mut Vec<u8>, u64), v: u64| {
            let mut o = Vec::new();
            f(&mut o, v);
            String::from_utf8(o).unwrap()
        };
        let secs = |o: &mut Vec<u8>, v| {
            o.put_secs(v);
        };
        let dur = |o: &mut Vec<u8>, v| {
            o.put_duration(v);
        };
        assert_eq!(text(secs, 19_755_821_546), "19.755821546");
        assert_eq!(text(secs, 5), "0.000000005");
        assert_eq!(text(dur, 4_129_275), "4.129 ms");
        assert_eq!(text(dur, 4_129_500), "4.130 ms");
        assert_eq!(text(dur, 999_999), "999.999 us");
        assert_eq!(text(dur, 1_000_000), "1.000 ms");
        assert_eq!(text(dur, 6_500), "6.500 us");
        assert_eq!(text(dur, 0), "0.000 us");
        assert_eq!(text(dur, u64::MAX), "18446744073709.552 ms");
    }

    #[test]
    fn numbers_as_format_writes_them() {
        let mut values = vec![0u64, u64::MAX, u64::MAX - 1];
        for shift in 0..64 {
            values.extend([1u64 << shift, (1u64 << shift) - 1]);
        }
        let mut ten = 1u64;
        while let Some(next) = ten.checked_mul(10) {
            values.extend([ten, ten - 1, ten + 1]);
            ten = next;
        }
        values.extend([ten, ten - 1, ten + 1]);
        // And every digit in every position (xorshift).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.extend([x, x >> (x % 64)]);
        }
        for v in values {
            let mut o = Vec::new();
            o.put_u64(v)
                .put(" ")
                .put_hex(v)
                .put(" ")
                .put_i64((v as i64).wrapping_neg());
            assert_eq!(
                String::from_utf8(o).unwrap(),
                format!("{v} {v:#x} {}", (v as i64).wrapping_neg())
            );
        }
    }

    #[test]
    fn kernel_counters() {
        let c = KernelCounters::parse(
            "start: arms=4 hits=1 dropped_no_slot=0\nend: arms=10 hits=3 dropped_no_slot=2\n",
        )
        .unwrap();
        assert_eq!(c.get("arms"), 6);
        assert_eq!(
            c.not_armed(),
            vec![("dropped_no_slot", "no free hardware slot", 2)]
        );
    }
}
