//! Items 2 and 3: the call storm, and `ksw record` under it.
//!
//! Each cycle: load kstackwatch (every `rethook_every`th cycle with
//! `rethook_nodes=2`: its return hooks run out), apply eight specs (the
//! background's functions capped by `max_watch`, a depth filter, more
//! victims than slots, a held frame, a victim whose task exits inside the
//! call), run the background on every CPU with the scenarios (recorded by
//! `ksw record` every `record_every`th cycle), take every non-boot CPU
//! offline and back while a frame is armed, check the invariants at rest,
//! then unload kstackwatch while frames are armed and load it again.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::gen::SpecText;
use crate::kernel::{self, ArmWatch, Kmsg, Memory, SlotState, State};
use crate::rng::Rng;
use crate::Failure;

#[derive(Debug, Clone)]
pub struct Params {
    pub cycles: u64,
    /// Watched calls to reach at least.
    pub calls: u64,
    pub record_every: u64,
    /// End each recording with one more frame once the ring has room:
    /// perf writes the LOST record of losses at the end of a ring only
    /// with the next record it stores, and `ksw record` does not ask the
    /// kernel for them when it stops (`--record-strict` leaves this out
    /// and shows it).
    pub record_flush: bool,
    pub rethook_every: u64,
    /// 1 on the base kernel; more where everything is slower (lockdep).
    pub slow: u64,
    pub ksw_ko: String,
    pub ksw_bin: String,
    pub tmp: String,
    pub seed: u64,
}

/// The storm's specs, in this order (the index is the spec's number).
pub struct Specs {
    pub lines: Vec<SpecText>,
}

pub const HOLD_SPEC: usize = 5;
const COUNTED: &[&str] = &[
    "arms",
    "disarms",
    "hits",
    "corrupted",
    "unknown_exit",
    "dropped_no_slot",
    "dropped_max_watch",
    "canary_not_found",
    "outside_stack",
    "misaligned",
    "exit_unobservable",
    "bad_frame",
    "nmi_context",
    "other_depth",
    "depth_untracked",
    "depth_resync",
    "backstop_disarms",
    "late_releases",
    "exit_path_hits",
    "stale_hits",
    "self_hits",
    "remote_kicks",
    "cpus_without_slots",
];
/// Counters that must stay 0 (`Documentation/kstackwatch.md`).
const ZERO: &[&str] = &["late_releases", "self_hits", "cpus_without_slots"];

#[derive(Debug, Default)]
struct Totals {
    calls: u64,
    counters: BTreeMap<String, u64>,
    teardown_disarms: u64,
    /// Counted while unloading (after the cycle's rest point).
    unload_phase: BTreeMap<String, u64>,
    other_disarms: BTreeMap<String, u64>,
    unloads: u64,
    unloads_armed: u64,
    hotplugs: u64,
    rethook_cycles: u64,
    rethook_unobservable: u64,
    invariant_checks: u64,
    /// Longest wait for every CPU to stop watching once nothing was armed.
    settle_ms_max: u64,
    scenario_hits_checked: u64,
    recordings: Vec<Value>,
    memory: Vec<Value>,
}

struct CallStorm<'a> {
    p: Params,
    specs: &'a Specs,
    kmsg: &'a Kmsg,
    watch: ArmWatch,
    totals: Totals,
    failures: Vec<Failure>,
    rng: Rng,
    cycle: u64,
}

type Res<T> = Result<T, (String, String)>;

fn err<T>(figure: &str, msg: impl Into<String>) -> Res<T> {
    Err((figure.to_string(), msg.into()))
}

impl CallStorm<'_> {
    fn phase(&self, what: &str) {
        self.kmsg
            .set_phase(&format!("call storm cycle {}: {what}", self.cycle));
    }

    fn state(&self) -> Res<State> {
        kernel::read_state().map_err(|e| ("invariants".to_string(), e))
    }

    fn scenario(&mut self, cmd: &str) -> Res<String> {
        let out = kernel::scenario(cmd).map_err(|e| ("calls".to_string(), e))?;
        Ok(out)
    }

    fn load(&mut self, cycle: u64) -> Res<()> {
        let rethook = self.p.rethook_every > 0 && cycle % self.p.rethook_every == 0;
        let params = if rethook { "rethook_nodes=2" } else { "" };
        kernel::load_module(&self.p.ksw_ko, params).map_err(|e| ("unloads".to_string(), e))?;
        let s = self.state()?;
        if s.watching || s.counter("arms") != 0 {
            return err(
                "unloads",
                format!("a freshly loaded module is not blank:\n{}", s.text),
            );
        }
        self.watch
            .follow(HOLD_SPEC)
            .map_err(|e| ("setup".to_string(), e))?;
        Ok(())
    }

    fn configure(&mut self) -> Res<()> {
        let mut lines = self.specs.lines.clone();
        // The depth filter moves from cycle to cycle.
        let dp = self.rng.range(0, 6).to_string();
        lines[3].set(ksw_core::config::Key::Depth, &dp);
        let text = lines
            .iter()
            .map(SpecText::plain)
            .collect::<Vec<_>>()
            .join("\n");
        let f = kernel::ConfigFile::open().map_err(|e| ("setup".to_string(), e))?;
        f.write(text.as_bytes()).map_err(|e| {
            (
                "setup".to_string(),
                format!("the storm's config was rejected (errno {e}):\n{text}"),
            )
        })?;
        Ok(())
    }

    /// Nothing armed, nothing watched, counters balanced.
    fn at_rest(&mut self, what: &str) -> Res<State> {
        // Remote CPUs reprogram their registers when their IPI arrives:
        // give them time, and note how long it took.
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(10 * self.p.slow);
        let s = loop {
            let s = self.state()?;
            let watching = s
                .cpus
                .iter()
                .any(|(_, slots)| slots.iter().any(|x| matches!(x, SlotState::Watching(_))));
            if (s.armed == 0 && !watching) || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let waited = t0.elapsed().as_millis() as u64;
        self.totals.settle_ms_max = self.totals.settle_ms_max.max(waited);
        let mut bad = Vec::new();
        if s.armed != 0 {
            bad.push(format!("{} frame(s) still armed", s.armed));
        }
        if s.counter("arms") != s.counter("disarms") {
            bad.push(format!(
                "arms {} != disarms {}",
                s.counter("arms"),
                s.counter("disarms")
            ));
        }
        for (cpu, slots) in &s.cpus {
            for (i, slot) in slots.iter().enumerate() {
                match slot {
                    SlotState::Parked => {}
                    SlotState::None => bad.push(format!("cpu{cpu} slot{i} has no breakpoint")),
                    SlotState::Watching(a) => {
                        bad.push(format!("cpu{cpu} slot{i} still watches {a:#x}"))
                    }
                }
            }
        }
        let online = kernel::online_cpus();
        if s.watching && s.cpus.iter().map(|c| c.0).collect::<Vec<_>>() != online {
            bad.push(format!(
                "CPU lines for {:?}, online {online:?}",
                s.cpus.iter().map(|c| c.0).collect::<Vec<_>>()
            ));
        }
        if s.task_entries.is_some_and(|t| t != 0) {
            bad.push(format!("{} task entries left", s.task_entries.unwrap_or(0)));
        }
        for z in ZERO {
            if s.counter(z) != 0 {
                bad.push(format!("{z}={}", s.counter(z)));
            }
        }
        if !bad.is_empty() {
            return err(
                "invariants",
                format!("{what}: {}\n{}", bad.join("; "), s.text),
            );
        }
        self.totals.invariant_checks += 1;
        Ok(s)
    }

    fn bg_off(&mut self) -> Res<()> {
        let out = self.scenario("bg off")?;
        self.totals.calls += kernel::field_u64(&out, "calls").unwrap_or(0);
        Ok(())
    }

    /// The scenarios of one cycle, with the background on.
    fn load_phase(&mut self, cycle: u64) -> Res<()> {
        self.scenario("bg on 0")?;
        let s0 = self.state()?;
        let victims = self.rng.range(5, 8);
        let out = self.scenario(&format!("silent {victims}"))?;
        self.totals.calls += victims;
        if kernel::field_u64(&out, "started") != Some(victims) {
            return err("calls", format!("silent {victims}: {out}"));
        }
        let h0 = self.state()?.counter("hits");
        let out = self.scenario("direct")?;
        let h1 = self.state()?.counter("hits");
        self.totals.calls += 1;
        if kernel::field(&out, "bad_words").as_deref() != Some("1") || h1 - h0 != 1 {
            return err(
                "hits",
                format!(
                    "the direct victim's write: {} hit(s) under load ({out})",
                    h1 - h0
                ),
            );
        }
        self.totals.scenario_hits_checked += 1;
        let d = self.rng.range(0, 6);
        self.scenario(&format!("recursive {d} 6"))?;
        self.totals.calls += 7;
        let n = self.rng.range(1, 4);
        let out = self.scenario(&format!("exitcall {n}"))?;
        if kernel::field_u64(&out, "exited") != Some(n) {
            return err("calls", format!("exitcall {n}: {out}"));
        }
        self.totals.calls += n;
        self.bg_off()?;
        // Up to this cycle's share of the calls, in synchronous loops.
        let want = self.p.calls * cycle / self.p.cycles;
        if self.totals.calls < want {
            let k = (want - self.totals.calls).div_ceil(2);
            self.scenario(&format!("loop {k}"))?;
            self.scenario(&format!("exits {k}"))?;
            self.totals.calls += 2 * k;
        }
        let s1 = self.state()?;
        if s1.counter("arms") <= s0.counter("arms") {
            return err("arms", "nothing was armed in the load phase");
        }
        Ok(())
    }

    /// `ksw record` around the load phase: its counts against the module's.
    fn recorded_load_phase(&mut self, cycle: u64) -> Res<()> {
        let pages = if cycle % (2 * self.p.record_every) == 0 {
            1
        } else {
            64
        };
        let out = format!("{}/rec-{cycle}.data", self.p.tmp);
        let c0 = self.at_rest("before recording")?;
        let rec = Recorder::start(
            &self.p.ksw_bin,
            &out,
            pages,
            Duration::from_secs(60 * self.p.slow),
        )
        .map_err(|e| ("recorder".to_string(), e))?;
        let mut r = self.load_phase(cycle);
        if r.is_ok() && self.p.record_flush {
            // One more frame once the ring has room again: perf writes a
            // LOST record only with the next record it can store.
            std::thread::sleep(Duration::from_millis(300));
            r = self.scenario("direct").map(|_| ());
        }
        let c1 = self.at_rest("after the recorded load");
        let summary = rec.stop().map_err(|e| ("recorder".to_string(), e))?;
        r?;
        let c1 = c1?;
        let delta = |k: &str| c1.counter(k) - c0.counter(k);
        let (da, dh, dd) = (delta("arms"), delta("hits"), delta("disarms"));
        let [ra, rh, rd, lost] = summary;
        let mut v = json!({
            "cycle": cycle, "mmap_pages": pages,
            "module": {"arms": da, "hits": dh, "disarms": dd},
            "recorded": {"arms": ra, "hits": rh, "disarms": rd}, "lost": lost,
        });
        if ra > da || rh > dh || rd > dd {
            return err(
                "recorder",
                format!("recorded more than the module counted: {v}"),
            );
        }
        let missing = (da - ra) + (dh - rh) + (dd - rd);
        if missing > lost {
            return err(
                "recorder",
                format!("{missing} events missing, only {lost} lost records: {v}"),
            );
        }
        // The report reads the same file back.
        let report =
            report_counts(&self.p.ksw_bin, &out).map_err(|e| ("recorder".to_string(), e))?;
        if lost == 0 && (report["frames"] != ra || report["hits"] != rh || report["disarmed"] != rd)
        {
            return err(
                "recorder",
                format!("ksw report counts {report} differ from the recording's {v}"),
            );
        }
        v["report"] = report;
        v["missing"] = json!(missing);
        let _ = std::fs::remove_file(&out);
        self.totals.recordings.push(v);
        Ok(())
    }

    /// Every non-boot CPU offline and back while a held frame is armed:
    /// its watch follows the CPUs out and back.
    fn hotplug_phase(&mut self) -> Res<()> {
        let cpus = kernel::hotpluggable_cpus();
        if cpus.is_empty() {
            return err("hotplug", "no CPU can be taken offline");
        }
        self.drain_watch();
        self.scenario("held start 60000")?;
        let (slot, addr) = self.wait_hold_armed()?;
        self.scenario("bg on 0")?;
        let mut r = Ok(());
        for &cpu in &cpus {
            if let Err(e) = kernel::set_cpu_online(cpu, false) {
                r = err("hotplug", e);
                break;
            }
            let s = self.state()?;
            if s.cpus.iter().any(|c| c.0 == cpu) {
                r = err(
                    "hotplug",
                    format!("offline cpu{cpu} still listed:\n{}", s.text),
                );
            }
            if let Err(e) = kernel::set_cpu_online(cpu, true) {
                r = err("hotplug", e);
                break;
            }
            let s = self.state()?;
            let line = s.cpus.iter().find(|c| c.0 == cpu);
            let watching =
                line.and_then(|c| c.1.get(slot as usize)) == Some(&SlotState::Watching(addr));
            if !watching && r.is_ok() {
                r = err("hotplug", format!("re-onlined cpu{cpu} does not watch the held frame {addr:#x} in slot {slot}:\n{}", s.text));
            }
        }
        self.bg_off()?;
        let out = self.scenario("held release")?;
        self.totals.calls += 1;
        if kernel::field(&out, "bad_words").as_deref() != Some("0") {
            return err("hotplug", format!("the held frame changed: {out}"));
        }
        self.totals.hotplugs += 1;
        r
    }

    /// Counts the disarms the instance saw (other than returns), and
    /// empties it for the next held frame.
    fn drain_watch(&mut self) {
        let reasons = self.watch.disarm_reasons();
        self.totals.other_disarms_add(&reasons);
        self.watch.clear();
    }

    fn wait_hold_armed(&self) -> Res<(u64, u64)> {
        let deadline = Instant::now() + Duration::from_secs(20 * self.p.slow);
        while Instant::now() < deadline {
            if let Some(a) = self.watch.last_arm() {
                return Ok(a);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        err("hotplug", "the held frame was never armed")
    }

    /// Unload while frames are armed (the held one, and the background's),
    /// then load again.
    fn unload_phase(&mut self, cycle: u64, rest: &State) -> Res<()> {
        self.phase("unload");
        let s = self.state()?;
        self.drain_watch();
        self.scenario("bg on 0")?;
        self.scenario("held start 60000")?;
        self.wait_hold_armed()?;
        let before = self.state()?;
        self.kmsg.sync();
        let t0 = self.kmsg.with(|k| k.teardown_frames);
        let unloaded = kernel::unload_module("kstackwatch");
        self.kmsg.sync();
        let frames = self.kmsg.with(|k| k.teardown_frames) - t0;
        if let Err(e) = unloaded {
            return err(
                "unloads",
                format!("rmmod kstackwatch while armed: errno {e}"),
            );
        }
        self.totals.unloads += 1;
        // What happened since the cycle came to rest (the unload's own
        // disarms are not counted by a module that is gone).
        for k in ["arms", "disarms", "hits"] {
            let d = before.counter(k) - rest.counter(k);
            *self.totals.unload_phase.entry(k.to_string()).or_default() += d;
        }
        if s.counter("exit_unobservable") > 0
            && self.p.rethook_every > 0
            && cycle % self.p.rethook_every == 0
        {
            self.totals.rethook_unobservable += 1;
        }
        self.totals.teardown_disarms += frames;
        if frames == 0 {
            return err(
                "unloads",
                "the unload found no armed frame (the held one was armed)",
            );
        }
        self.totals.unloads_armed += 1;
        let reload = if cycle < self.p.cycles {
            self.load(cycle + 1)
        } else {
            Ok(())
        };
        self.bg_off()?;
        let out = self.scenario("held release")?;
        self.totals.calls += 1;
        if kernel::field(&out, "bad_words").as_deref() != Some("0") {
            return err(
                "unloads",
                format!("the held frame changed across the unload: {out}"),
            );
        }
        reload
    }

    fn cycle(&mut self, cycle: u64) -> Res<()> {
        self.cycle = cycle;
        self.phase("configure");
        if cycle == 1 {
            self.load(1)?;
        }
        if self.p.rethook_every > 0 && cycle % self.p.rethook_every == 0 {
            self.totals.rethook_cycles += 1;
        }
        self.configure()?;
        self.phase("load");
        if self.p.record_every > 0 && cycle % self.p.record_every == 0 {
            self.recorded_load_phase(cycle)?;
        } else {
            self.load_phase(cycle)?;
        }
        self.phase("hotplug");
        self.hotplug_phase()?;
        self.phase("at rest");
        let rest = self.at_rest("end of cycle")?;
        for k in COUNTED {
            *self.totals.counters.entry(k.to_string()).or_default() += rest.counter(k);
        }
        let m = Memory::snapshot();
        let meminfo: serde_json::Map<String, Value> =
            ["Slab", "SUnreclaim", "VmallocUsed", "Percpu", "KernelStack"]
                .iter()
                .map(|k| (k.to_string(), json!(m.kb(k))))
                .collect();
        let slabs: serde_json::Map<String, Value> = m
            .slabs
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.0)))
            .collect();
        let slab_bytes: u64 = m.slabs.values().map(|(n, sz)| n * sz).sum();
        self.totals.memory.push(json!({
            "cycle": cycle,
            "rethook_nodes_2": self.p.rethook_every > 0 && cycle % self.p.rethook_every == 0,
            "meminfo_kb": meminfo,
            "slab_bytes": slab_bytes,
            "slabs": slabs,
        }));
        self.unload_phase(cycle, &rest)?;
        Ok(())
    }
}

impl Totals {
    fn other_disarms_add(&mut self, m: &BTreeMap<String, u64>) {
        for (k, v) in m {
            *self.other_disarms.entry(k.clone()).or_default() += v;
        }
    }
}

/// `ksw record` running until stopped.
struct Recorder {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Recorder {
    fn start(ksw: &str, out: &str, pages: u32, timeout: Duration) -> Result<Recorder, String> {
        let mut child = Command::new(ksw)
            .args(["record", "-m", &pages.to_string(), "-o", out])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{ksw} record: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l.contains("recording") => return Ok(Recorder { child, lines }),
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    return Err("ksw record did not start recording".into());
                }
            }
        }
    }

    /// SIGINT, then its summary: [arms, hits, disarms, lost].
    fn stop(mut self) -> Result<[u64; 4], String> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().map_err(|e| e.to_string())?;
        let mut last = String::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            last = l;
        }
        if !status.success() {
            return Err(format!("ksw record failed ({status}): {last}"));
        }
        parse_record_summary(&last).ok_or_else(|| format!("no summary from ksw record: {last:?}"))
    }
}

/// "ksw record: N events (A arm, H hit, D disarm), L lost, written to F"
pub fn parse_record_summary(line: &str) -> Option<[u64; 4]> {
    let rest = line.split("events (").nth(1)?;
    let num = |s: &str, what: &str| -> Option<u64> {
        let i = s.find(what)?;
        s[..i]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some([
        num(rest, " arm")?,
        num(rest, " hit")?,
        num(rest, " disarm")?,
        num(rest, " lost")?,
    ])
}

/// `ksw report --format json`: frames, hits, disarmed frames, events, lost,
/// and disarm reasons.
fn report_counts(ksw: &str, file: &str) -> Result<Value, String> {
    let out = Command::new(ksw)
        .args(["report", "-i", file, "--format", "json"])
        .output()
        .map_err(|e| format!("{ksw} report: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ksw report -i {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ksw report JSON: {e}"))?;
    let victims = v["victims"].as_array().cloned().unwrap_or_default();
    let hits: u64 = victims
        .iter()
        .map(|f| f["hit_count"].as_u64().unwrap_or(0))
        .sum::<u64>()
        + v["summary"]["unmatched_hits"].as_u64().unwrap_or(0);
    let frames = v["summary"]["frames"]
        .as_u64()
        .unwrap_or(victims.len() as u64);
    let still = v["summary"]["still_armed"].as_u64().unwrap_or(0);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for f in &victims {
        if let Some(r) = f["disarm_reason"].as_str() {
            *reasons.entry(r.to_string()).or_default() += 1;
        }
    }
    Ok(json!({
        "frames": frames,
        "hits": hits,
        "disarmed": frames - still,
        "events": v["recording"]["events"],
        "lost": v["recording"]["lost"],
        "disarm_reasons": reasons,
    }))
}

pub fn run(specs: &Specs, p: Params, kmsg: &Kmsg) -> (Value, Vec<Failure>) {
    let t0 = Instant::now();
    let watch = match ArmWatch::new() {
        Ok(w) => w,
        Err(e) => {
            return (
                json!({}),
                vec![Failure {
                    part: "call storm".into(),
                    figure: "setup".into(),
                    cycle: 0,
                    message: e,
                }],
            )
        }
    };
    // The runner loaded kstackwatch: the cycles load their own.
    if kernel::module_loaded("kstackwatch") {
        let _ = kernel::unload_module("kstackwatch");
    }
    let mut storm = CallStorm {
        rng: Rng::new(p.seed),
        p: p.clone(),
        specs,
        kmsg,
        watch,
        totals: Totals::default(),
        failures: Vec::new(),
        cycle: 0,
    };
    for cycle in 1..=p.cycles {
        if let Err((figure, message)) = storm.cycle(cycle) {
            // Leave the test module idle.
            let _ = kernel::scenario("held release");
            let _ = kernel::scenario("bg off");
            eprintln!("FAILED: call storm, figure '{figure}', cycle {cycle}: {message}");
            storm.failures.push(Failure {
                part: "call storm".into(),
                figure,
                cycle,
                message,
            });
            break;
        }
        if cycle % (p.cycles / 10).max(1) == 0 {
            eprintln!(
                "[stress] call storm: cycle {cycle}/{}, {} calls, {:.0} s",
                p.cycles,
                storm.totals.calls,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    // Leave kstackwatch loaded for the runner to unload.
    if !kernel::module_loaded("kstackwatch") {
        let _ = kernel::load_module(&p.ksw_ko, "");
    }
    let _ = kernel::scenario("bg off");
    let t = &storm.totals;
    if storm.failures.is_empty() {
        let mut short = Vec::new();
        if t.calls < p.calls {
            short.push(format!("calls {} < {}", t.calls, p.calls));
        }
        if t.unloads_armed < p.cycles {
            short.push(format!(
                "unloads while armed {} < {}",
                t.unloads_armed, p.cycles
            ));
        }
        if t.hotplugs < p.cycles {
            short.push(format!("hotplug cycles {} < {}", t.hotplugs, p.cycles));
        }
        if t.other_disarms.get("task_exit").copied().unwrap_or(0) == 0 {
            short.push("no task_exit disarm".into());
        }
        if t.rethook_cycles > 0 && t.counters.get("exit_unobservable").copied().unwrap_or(0) == 0 {
            short.push("rethook_nodes=2 never ran out".into());
        }
        for s in short {
            storm.failures.push(Failure {
                part: "call storm".into(),
                figure: "totals".into(),
                cycle: p.cycles,
                message: s,
            });
        }
    }
    let memory = memory_verdict(&t.memory);
    if let Some(m) = memory.get("failure").and_then(Value::as_str) {
        storm.failures.push(Failure {
            part: "call storm".into(),
            figure: "memory".into(),
            cycle: p.cycles,
            message: m.to_string(),
        });
    }
    let recorded: [u64; 4] = t.recordings.iter().fold([0; 4], |mut a, r| {
        a[0] += r["recorded"]["arms"].as_u64().unwrap_or(0)
            + r["recorded"]["hits"].as_u64().unwrap_or(0)
            + r["recorded"]["disarms"].as_u64().unwrap_or(0);
        a[1] += r["lost"].as_u64().unwrap_or(0);
        a[2] += r["missing"].as_u64().unwrap_or(0);
        a[3] += r["module"]["arms"].as_u64().unwrap_or(0)
            + r["module"]["hits"].as_u64().unwrap_or(0)
            + r["module"]["disarms"].as_u64().unwrap_or(0);
        a
    });
    let figures = json!({
        "cycles": storm.cycle,
        "calls": t.calls,
        "counters": t.counters,
        "teardown_disarms": t.teardown_disarms,
        "unload_phase": t.unload_phase,
        "disarms_other_than_return": t.other_disarms,
        "unloads_while_armed": t.unloads_armed,
        "hotplug_cycles": t.hotplugs,
        "hotplug_cpus": kernel::hotpluggable_cpus(),
        "rethook_exhaustion_cycles": t.rethook_cycles,
        "rethook_cycles_with_unobservable_calls": t.rethook_unobservable,
        "invariant_checks_passed": t.invariant_checks,
        "longest_settle_ms": t.settle_ms_max,
        "direct_catches_under_load": t.scenario_hits_checked,
        "recorder": {
            "recordings": t.recordings.len(),
            "module_events": recorded[3],
            "recorded_events": recorded[0],
            "lost_records": recorded[1],
            "missing_events": recorded[2],
            "per_recording": t.recordings,
        },
        "memory": memory,
        "seconds": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    (figures, storm.failures)
}

/// Least-squares slope of (x, y) points.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Does kernel memory grow from cycle to cycle? A leak of anything per
/// load, per hotplug or per watched frame shows as a steady slope over
/// many cycles; the first quarter (caches warming up) is left out, and so
/// are the cycles with `rethook_nodes=2` (smaller pools: a different level).
fn memory_verdict(samples: &[Value]) -> Value {
    let kept: Vec<&Value> = samples
        .iter()
        .skip(samples.len() / 4)
        .filter(|s| s["rethook_nodes_2"].as_bool() != Some(true))
        .collect();
    let judge = kept.len() >= 12;
    let series = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
        kept.iter()
            .filter_map(|s| Some((s["cycle"].as_f64()?, f(s)?)))
            .collect()
    };
    let mut why = Vec::new();
    let mut slopes = serde_json::Map::new();
    // kB per cycle: about 6 standard errors of the slope over 75 cycles of
    // this noise (SUnreclaim moves by +-100 kB from cycle to cycle).
    for (k, limit) in [
        ("SUnreclaim", 2.0),
        ("VmallocUsed", 2.0),
        ("Percpu", 0.5),
        ("KernelStack", 1.0),
    ] {
        let sl = slope(&series(&|s: &Value| s["meminfo_kb"][k].as_f64()));
        slopes.insert(
            format!("{k}_kb_per_cycle"),
            json!((sl * 100.0).round() / 100.0),
        );
        if judge && sl > limit {
            why.push(format!("{k} grows by {sl:.2} kB per cycle"));
        }
    }
    let mut growing = serde_json::Map::new();
    if let Some(last) = kept.last().and_then(|s| s["slabs"].as_object()) {
        for name in last.keys() {
            let sl = slope(&series(&|s: &Value| s["slabs"][name.as_str()].as_f64()));
            if sl >= 0.5 {
                growing.insert(name.clone(), json!((sl * 100.0).round() / 100.0));
            }
            // Two objects a cycle, steadily, in a cache kstackwatch
            // allocates from (kmalloc, perf events): a leak. (Dentries and
            // inodes follow the driver's own processes and files.)
            let ours =
                name.starts_with("kmalloc-") || name.contains("perf") || name.contains("kprobe");
            if judge && ours && sl >= 2.0 {
                why.push(format!(
                    "slab cache {name} grows by {sl:.1} objects per cycle"
                ));
            }
        }
    }
    let has_slabs = kept
        .first()
        .and_then(|s| s["slabs"].as_object())
        .is_some_and(|m| !m.is_empty());
    let mut v = json!({
        "method": if has_slabs { "least-squares slope per cycle: /proc/slabinfo active objects per cache (caches shrunk first, which also empties KASAN's quarantine) and /proc/meminfo" } else { "least-squares slope per cycle of /proc/meminfo (this kernel has no /proc/slabinfo)" },
        "cycles_judged": kept.len(),
        "judged": judge,
        "slopes": slopes,
        "caches_growing_half_an_object_per_cycle_or_more": growing,
        "from_cycle": kept.first().map(|s| s["cycle"].clone()),
        "to_cycle": kept.last().map(|s| s["cycle"].clone()),
        "samples": samples,
    });
    if !why.is_empty() {
        v["failure"] = json!(format!("kernel memory grows: {}", why.join(", ")));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes() {
        let flat: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, 100.0 + (i % 4) as f64 * 30.0))
            .collect();
        assert!(slope(&flat).abs() < 0.5, "{}", slope(&flat));
        let leak: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, 100.0 + 3.0 * i as f64))
            .collect();
        assert!((slope(&leak) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 2.0)]), 0.0);
    }

    #[test]
    fn record_summary() {
        assert_eq!(
            parse_record_summary(
                "ksw record: 12 events (4 arm, 4 hit, 4 disarm), 3 lost, written to /tmp/x"
            ),
            Some([4, 4, 4, 3])
        );
        assert_eq!(parse_record_summary("ksw record: recording"), None);
    }
}
