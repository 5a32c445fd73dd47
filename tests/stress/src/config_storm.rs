//! Item 1: the config storm. Writers send generated configurations to
//! `/proc/kstackwatch` (see [`crate::gen`]) while readers read it back and
//! the background runs a watched function on every CPU. Every write's
//! outcome is checked against its prediction and the documented errno
//! table; after every rejected write the previous configuration must still
//! be active, and every Nth reject a corruption must still be caught.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::facts::{errno_name, EBUSY};
use crate::gen::{Ctx, Expect, Planned};
use crate::kernel::{self, ConfigFile, Kmsg, PerfBreakpoint};
use crate::rng::Rng;
use crate::Failure;

#[derive(Debug, Clone)]
pub struct Params {
    pub writes: u64,
    pub writers: usize,
    pub readers: usize,
    /// Per thousand writes: valid configurations, and semantic rejects.
    pub valid_permille: u32,
    pub semantic_permille: u32,
    /// A catch sample every this many rejects (per writer).
    pub catch_every: u64,
    /// An EBUSY round every this many writes (writer 0).
    pub ebusy_every: u64,
    pub bg_pause_us: u32,
    pub reader_pause_ms: u64,
    /// Console log level 1 during the storm (the log itself is read).
    pub quiet_console: bool,
    /// Fail unless every documented errno was produced.
    pub require_every_errno: bool,
    pub seed: u64,
}

#[derive(Debug, Default)]
struct History {
    /// Every configuration that was active, in order.
    entries: Vec<String>,
    /// A write being applied: its expected lines, or None if unknown.
    pending: Option<Option<String>>,
}

#[derive(Debug, Default)]
struct Stats {
    writes: u64,
    accepted: u64,
    rejected: u64,
    by_errno: BTreeMap<String, u64>,
    by_class: BTreeMap<String, [u64; 4]>,
    class_errnos: BTreeMap<String, BTreeMap<String, u64>>,
    catch_us: u64,
    parsed: u64,
    predicted_exact: u64,
    predicted_documented_only: u64,
    unexpected: u64,
    undocumented: u64,
    intact_checks: u64,
    catch_checks: u64,
    ebusy_rounds: u64,
    reads: u64,
    examples: Vec<Value>,
    max_write_us: u64,
}

struct Storm<'a> {
    ctx: &'a Ctx<'a>,
    params: Params,
    documented: std::collections::HashSet<i32>,
    history: Mutex<History>,
    reconfig: RwLock<()>,
    catching: Mutex<()>,
    left: AtomicI64,
    done: AtomicU64,
    stats: Mutex<Stats>,
    failures: Mutex<Vec<Failure>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(300) {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > 300 {
        s.push_str(&format!("...({} bytes)", bytes.len()));
    }
    s
}

impl Storm<'_> {
    fn fail(&self, figure: &str, at: u64, msg: String) {
        let mut f = lock(&self.failures);
        if f.len() < 20 {
            eprintln!("FAILED: config storm, figure '{figure}', write {at}: {msg}");
            f.push(Failure {
                part: "config storm".into(),
                figure: figure.into(),
                cycle: at,
                message: msg,
            });
        }
    }

    fn failed(&self) -> bool {
        !lock(&self.failures).is_empty()
    }

    fn state(&self, at: u64) -> Option<kernel::State> {
        match kernel::read_state() {
            Ok(s) => Some(s),
            Err(e) => {
                self.fail("reads", at, e);
                None
            }
        }
    }

    /// The active configuration is one that was active during the window
    /// starting at history entry `g0`, or the one being applied.
    fn intact(&self, content: &str, g0: usize) -> bool {
        let h = lock(&self.history);
        if h.entries[g0.min(h.entries.len() - 1)..]
            .iter()
            .any(|e| e == content)
        {
            return true;
        }
        match &h.pending {
            Some(Some(p)) => p == content,
            // An unpredicted write in flight: at least the baseline stays.
            Some(None) => self
                .ctx
                .baseline_canonical()
                .lines()
                .all(|l| content.lines().any(|c| c == l)),
            None => false,
        }
    }

    fn generation(&self) -> usize {
        lock(&self.history).entries.len() - 1
    }

    /// A corruption of the baseline's watched frame is caught: `direct`
    /// makes exactly one write into it.
    fn catch_check(&self, at: u64) {
        let _g = self.reconfig.read().unwrap_or_else(|e| e.into_inner());
        self.catch_check_locked(at);
    }

    fn catch_check_locked(&self, at: u64) {
        // One at a time: the hits counter is global.
        let _one = lock(&self.catching);
        let t0 = Instant::now();
        self.catch_check_inner(at);
        lock(&self.stats).catch_us += t0.elapsed().as_micros() as u64;
    }

    fn catch_check_inner(&self, at: u64) {
        let Some(before) = self.state(at) else { return };
        let out = match kernel::scenario("direct") {
            Ok(o) => o,
            Err(e) => return self.fail("catch samples", at, e),
        };
        let Some(after) = self.state(at) else { return };
        let hits = after.counter("hits") - before.counter("hits");
        if kernel::field(&out, "bad_words").as_deref() != Some("1") || hits != 1 {
            return self.fail(
                "catch samples",
                at,
                format!(
                    "the baseline watch did not catch the direct victim's write: {hits} hit(s), scenario said '{out}'; active config:\n{}",
                    after.text
                ),
            );
        }
        lock(&self.stats).catch_checks += 1;
    }

    fn writer(&self, id: usize) {
        let mut rng = Rng::new(self.params.seed.wrapping_add(id as u64 * 0x1000_0001));
        let file = match ConfigFile::open() {
            Ok(f) => f,
            Err(e) => return self.fail("writes", 0, e),
        };
        let mut rejects = 0u64;
        let mut next_ebusy = self.params.ebusy_every;
        while !self.failed() {
            let planned = self.ctx.generate(
                &mut rng,
                self.params.valid_permille,
                self.params.semantic_permille,
            );
            if self.left.fetch_sub(planned.len() as i64, Ordering::Relaxed) <= 0 {
                break;
            }
            for p in planned {
                let at = self.done.fetch_add(1, Ordering::Relaxed) + 1;
                if self.one(&file, &p, at) {
                    rejects += 1;
                    if rejects % self.params.catch_every == 0 {
                        self.catch_check(at);
                    }
                }
            }
            if id == 0
                && self.params.ebusy_every > 0
                && self.done.load(Ordering::Relaxed) >= next_ebusy
            {
                next_ebusy += self.params.ebusy_every;
                self.ebusy_round(&file);
            }
        }
    }

    /// Sends one write and checks it; true if it was rejected.
    fn one(&self, file: &ConfigFile, p: &Planned, at: u64) -> bool {
        let guard = p
            .parsed
            .then(|| self.reconfig.write().unwrap_or_else(|e| e.into_inner()));
        let g0 = self.generation();
        if p.parsed {
            lock(&self.history).pending = Some(match &p.expect {
                Expect::Accept(lines) => Some(lines.clone()),
                _ => None,
            });
        }
        let t0 = Instant::now();
        let result = file.write(&p.bytes);
        let us = t0.elapsed().as_micros() as u64;
        let rejected = result.is_err();
        {
            let mut st = lock(&self.stats);
            st.writes += 1;
            st.max_write_us = st.max_write_us.max(us);
            st.parsed += u64::from(p.parsed);
            match &p.expect {
                Expect::Documented => st.predicted_documented_only += 1,
                _ => st.predicted_exact += 1,
            }
            let c = st.by_class.entry(p.class.to_string()).or_default();
            c[0] += 1;
            c[if rejected { 2 } else { 1 }] += 1;
            c[3] += us;
            let outcome = match result {
                Ok(()) => {
                    st.accepted += 1;
                    "accepted".to_string()
                }
                Err(e) => {
                    st.rejected += 1;
                    *st.by_errno.entry(errno_name(e)).or_default() += 1;
                    errno_name(e)
                }
            };
            *st.class_errnos
                .entry(p.class.to_string())
                .or_default()
                .entry(outcome)
                .or_default() += 1;
        }
        let problem = match (&result, &p.expect) {
            (Ok(()), Expect::Reject(e)) => Some(format!("accepted, expected {}", errno_name(*e))),
            (Err(e), Expect::Accept(_)) => Some(format!(
                "{} ({e}), expected it to be accepted",
                errno_name(*e)
            )),
            (Err(e), Expect::Reject(x)) if e != x => Some(format!(
                "{} ({e}), expected {}",
                errno_name(*e),
                errno_name(*x)
            )),
            (Err(e), _) if !self.documented.contains(e) => {
                lock(&self.stats).undocumented += 1;
                Some(format!(
                    "{} ({e}) is not in the documented errno table",
                    errno_name(*e)
                ))
            }
            _ => None,
        };
        if let Some(why) = problem {
            let mut st = lock(&self.stats);
            st.unexpected += 1;
            if st.examples.len() < 20 {
                st.examples.push(
                    json!({"write": at, "class": p.class, "bytes": show(&p.bytes), "problem": why}),
                );
            }
            drop(st);
            self.fail(
                "unexpected errnos",
                at,
                format!("{} write {}: {why}", p.class, show(&p.bytes)),
            );
        }
        let Some(state) = self.state(at) else {
            if p.parsed {
                lock(&self.history).pending = None;
            }
            return rejected;
        };
        if rejected {
            if p.parsed {
                lock(&self.history).pending = None;
            }
            if self.intact(&state.specs, g0) {
                lock(&self.stats).intact_checks += 1;
            } else {
                self.fail(
                    "watch intact checks",
                    at,
                    format!(
                        "after the rejected {} write {} the active configuration is\n{}\nnot the previous one:\n{}",
                        p.class,
                        show(&p.bytes),
                        state.specs,
                        lock(&self.history).entries.last().cloned().unwrap_or_default()
                    ),
                );
            }
        } else {
            let expected = match &p.expect {
                Expect::Accept(lines) => Some(lines.clone()),
                _ => None,
            };
            if let Some(lines) = expected.filter(|l| *l != state.specs) {
                self.fail(
                    "accepted",
                    at,
                    format!(
                        "accepted {} but reads back as\n{}\nexpected\n{lines}",
                        show(&p.bytes),
                        state.specs
                    ),
                );
            }
            let base = self.ctx.baseline_canonical();
            if !base.lines().all(|l| state.specs.lines().any(|s| s == l)) {
                self.fail(
                    "accepted",
                    at,
                    format!(
                        "accepted {} without the baseline: reads back as\n{}",
                        show(&p.bytes),
                        state.specs
                    ),
                );
            }
            let mut h = lock(&self.history);
            h.entries.push(state.specs.clone());
            h.pending = None;
        }
        drop(guard);
        rejected
    }

    /// A write under the reconfiguration lock that may change the active
    /// configuration: pending while it is applied, then recorded.
    fn locked_write(
        &self,
        file: &ConfigFile,
        bytes: &[u8],
        expect: Option<String>,
        at: u64,
    ) -> (Result<(), i32>, Option<kernel::State>) {
        lock(&self.history).pending = Some(expect);
        let r = file.write(bytes);
        let state = self.state(at);
        let mut h = lock(&self.history);
        if let (Ok(()), Some(s)) = (&r, &state) {
            h.entries.push(s.specs.clone());
        }
        h.pending = None;
        (r, state)
    }

    fn count(&self, class: &str, r: Result<(), i32>) {
        let mut st = lock(&self.stats);
        st.writes += 1;
        st.predicted_exact += 1;
        match r {
            Ok(()) => st.accepted += 1,
            Err(e) => {
                st.rejected += 1;
                *st.by_errno.entry(errno_name(e)).or_default() += 1;
            }
        }
        let c = st.by_class.entry(class.into()).or_default();
        c[0] += 1;
        c[if r.is_err() { 2 } else { 1 }] += 1;
        let outcome = r.map_or_else(errno_name, |()| "accepted".to_string());
        *st.class_errnos
            .entry(class.into())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }

    /// EBUSY: a debugger holds every breakpoint of a CPU while a write
    /// needs some. (With the baseline active only one breakpoint per CPU
    /// is left to hold, and a configuration wanting more gets what remains:
    /// so this round starts from nothing watched.) The write must fail and
    /// leave nothing watched; the baseline then applies and catches.
    fn ebusy_round(&self, file: &ConfigFile) {
        let at = self.done.load(Ordering::Relaxed);
        let g = self.reconfig.write().unwrap_or_else(|e| e.into_inner());
        let base = self.ctx.baseline_canonical();
        let (r, _) = self.locked_write(file, b"", Some(String::new()), at);
        self.count("ebusy_setup", r);
        if let Err(e) = r {
            return self.fail(
                "ebusy",
                at,
                format!("switching watching off: {}", errno_name(e)),
            );
        }
        let mut held = Vec::new();
        for _ in 0..self.ctx.limits.hw_slots {
            match PerfBreakpoint::open(0) {
                Ok(b) => held.push(b),
                Err(e) => return self.fail("ebusy", at, e),
            }
        }
        let (r, state) = self.locked_write(file, base.as_bytes(), Some(String::new()), at);
        drop(held);
        self.count("ebusy", r);
        lock(&self.stats).ebusy_rounds += 1;
        if r != Err(EBUSY) {
            lock(&self.stats).unexpected += 1;
            return self.fail(
                "unexpected errnos",
                at,
                format!(
                    "the baseline while cpu0's breakpoints are all held: {:?}, expected EBUSY",
                    r.map_err(errno_name)
                ),
            );
        }
        match state {
            Some(s) if s.specs.is_empty() && !s.watching => lock(&self.stats).intact_checks += 1,
            Some(s) => {
                return self.fail(
                    "watch intact checks",
                    at,
                    format!("after EBUSY the configuration is\n{}", s.text),
                )
            }
            None => return,
        }
        let (r, state) = self.locked_write(file, base.as_bytes(), Some(base.clone()), at);
        self.count("ebusy_setup", r);
        match (r, state) {
            (Ok(()), Some(s)) if s.specs == base => {}
            (r, s) => {
                return self.fail(
                    "ebusy",
                    at,
                    format!(
                        "the baseline after EBUSY: {:?}, reads back as\n{}",
                        r.map_err(errno_name),
                        s.map(|s| s.specs).unwrap_or_default()
                    ),
                )
            }
        }
        self.catch_check_locked(at);
        drop(g);
    }

    fn reader(&self) {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        while !self.stop.load(Ordering::Relaxed) {
            let g0 = self.generation();
            let at = self.done.load(Ordering::Relaxed);
            let Some(s) = self.state(at) else { return };
            if !self.intact(&s.specs, g0) {
                self.fail(
                    "reads",
                    at,
                    format!("a reader saw a configuration never applied:\n{}", s.specs),
                );
            }
            for (k, v) in &s.counters {
                if last.get(k).is_some_and(|old| old > v) {
                    self.fail(
                        "reads",
                        at,
                        format!("counter {k} went back from {} to {v}", last[k]),
                    );
                }
            }
            last = s.counters;
            lock(&self.stats).reads += 1;
            std::thread::sleep(Duration::from_millis(self.params.reader_pause_ms));
        }
    }
}

/// Runs the storm; returns its figures and failures.
pub fn run(
    ctx: &Ctx<'_>,
    params: Params,
    documented: std::collections::HashSet<i32>,
    kmsg: &Kmsg,
) -> (Value, Vec<Failure>) {
    let t0 = Instant::now();
    let mut failures = Vec::new();
    kmsg.set_phase("config storm: setup");
    let setup = (|| -> Result<String, String> {
        let f = ConfigFile::open()?;
        f.write(ctx.baseline_canonical().as_bytes())
            .map_err(|e| format!("the baseline was rejected: {}", errno_name(e)))?;
        let s = kernel::read_state()?;
        if s.specs != ctx.baseline_canonical() {
            return Err(format!("the baseline reads back as\n{}", s.specs));
        }
        kernel::scenario(&format!("bg on {}", params.bg_pause_us))?;
        Ok(s.specs)
    })();
    let base = match setup {
        Ok(b) => b,
        Err(e) => {
            failures.push(Failure {
                part: "config storm".into(),
                figure: "setup".into(),
                cycle: 0,
                message: e,
            });
            return (json!({}), failures);
        }
    };
    kmsg.sync();
    let rejects_logged0 = kmsg.with(|s| s.rejects_logged);
    let storm = Storm {
        ctx,
        documented,
        history: Mutex::new(History {
            entries: vec![base],
            pending: None,
        }),
        reconfig: RwLock::new(()),
        catching: Mutex::new(()),
        left: AtomicI64::new(params.writes as i64),
        done: AtomicU64::new(0),
        stats: Mutex::new(Stats::default()),
        failures: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        params: params.clone(),
    };
    kmsg.set_phase("config storm");
    kmsg.quiet_console(params.quiet_console);
    // Progress, every 10%.
    std::thread::scope(|s| {
        for r in 0..params.readers {
            let storm = &storm;
            std::thread::Builder::new()
                .name(format!("reader{r}"))
                .spawn_scoped(s, move || storm.reader())
                .ok();
        }
        let writers: Vec<_> = (0..params.writers)
            .map(|w| {
                let storm = &storm;
                std::thread::Builder::new()
                    .name(format!("writer{w}"))
                    .spawn_scoped(s, move || storm.writer(w))
            })
            .collect();
        let mut shown = 0;
        while writers
            .iter()
            .any(|w| w.as_ref().is_ok_and(|w| !w.is_finished()))
        {
            std::thread::sleep(Duration::from_millis(500));
            let done = storm.done.load(Ordering::Relaxed);
            if done * 10 / params.writes.max(1) > shown {
                shown = done * 10 / params.writes.max(1);
                eprintln!(
                    "[stress] config storm: {done} writes, {:.0} s",
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        storm.stop.store(true, Ordering::Relaxed);
    });
    kmsg.quiet_console(false);
    let bg = kernel::scenario("bg off").unwrap_or_default();
    let bg_calls = kernel::field_u64(&bg, "calls").unwrap_or(0);
    // The last accepted configuration is still active, and still catches.
    let at = storm.done.load(Ordering::Relaxed);
    if let Some(s) = storm.state(at) {
        let last = lock(&storm.history)
            .entries
            .last()
            .cloned()
            .unwrap_or_default();
        if s.specs != last {
            storm.fail(
                "watch intact checks",
                at,
                format!("at the end the configuration is\n{}\nnot\n{last}", s.specs),
            );
        }
    }
    storm.catch_check(at);
    kmsg.sync();
    let (rejects_logged, missed) = kmsg.with(|s| (s.rejects_logged - rejects_logged0, s.missed));
    let st = lock(&storm.stats);
    if missed == 0 && rejects_logged != st.rejected {
        storm.fail(
            "rejected",
            at,
            format!(
                "{} rejected writes but {rejects_logged} 'config rejected' log lines (one each)",
                st.rejected
            ),
        );
    }
    // Every errno of the documented table was produced (at full scale).
    let mut never: Vec<String> = storm
        .documented
        .iter()
        .map(|&e| errno_name(e))
        .filter(|n| !st.by_errno.contains_key(n))
        .collect();
    never.sort();
    if params.require_every_errno && !never.is_empty() {
        storm.fail(
            "rejected",
            at,
            format!("documented errnos never produced: {}", never.join(", ")),
        );
    }
    let secs = t0.elapsed().as_secs_f64();
    let figures = json!({
        "documented_errnos_never_produced": never,
        "class_outcomes": st.class_errnos,
        "writes": st.writes,
        "accepted": st.accepted,
        "rejected": st.rejected,
        "rejected_by_errno": st.by_errno,
        "unexpected_errnos": st.unexpected,
        "undocumented_errnos": st.undocumented,
        "watch_intact_checks_passed": st.intact_checks,
        "catch_samples_passed": st.catch_checks,
        "ebusy_rounds": st.ebusy_rounds,
        "writes_planned_by_the_kernel": st.parsed,
        "predicted_exactly": st.predicted_exact,
        "predicted_documented_only": st.predicted_documented_only,
        "reads": st.reads,
        "reject_log_lines": rejects_logged,
        "kernel_log_records_missed": missed,
        "writers": params.writers,
        "readers": params.readers,
        "background_calls": bg_calls,
        "max_write_us": st.max_write_us,
        "by_class": st.by_class.iter().map(|(k, v)| (k.clone(), json!({"writes": v[0], "accepted": v[1], "rejected": v[2], "write_ms": v[3] / 1000}))).collect::<serde_json::Map<_, _>>(),
        "catch_ms": st.catch_us / 1000,
        "examples": st.examples,
        "seconds": (secs * 10.0).round() / 10.0,
    });
    drop(st);
    failures.extend(lock(&storm.failures).drain(..));
    (figures, failures)
}
