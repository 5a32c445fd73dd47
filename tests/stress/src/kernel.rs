//! The guest side: `/proc/kstackwatch`, the test module's scenarios,
//! module loading, CPU hotplug, memory counters, the kernel log, perf
//! breakpoints. Everything here runs as root inside the VM.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const KSW_PROC: &str = "/proc/kstackwatch";
pub const TEST_PROC: &str = "/proc/kstackwatch_test";

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// An open `/proc/kstackwatch` for writing: one `write()` per call.
#[derive(Debug)]
pub struct ConfigFile(File);

impl ConfigFile {
    pub fn open() -> Result<ConfigFile, String> {
        OpenOptions::new()
            .write(true)
            .open(KSW_PROC)
            .map(ConfigFile)
            .map_err(|e| format!("{KSW_PROC}: {e}"))
    }

    /// One write(); Ok when the module took all of it, else the errno.
    pub fn write(&self, bytes: &[u8]) -> Result<(), i32> {
        // SAFETY: `bytes` is a valid buffer of its length; the fd is open.
        let n = unsafe { libc::write(self.0.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            Err(errno())
        } else if n as usize != bytes.len() {
            // The module answers all or nothing; a short write is a bug.
            Err(-1)
        } else {
            Ok(())
        }
    }
}

/// One CPU's line: what each claimed slot watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotState {
    Parked,
    None,
    Watching(u64),
}

/// `/proc/kstackwatch`, parsed.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The spec lines (the active configuration in canonical form).
    pub specs: String,
    pub watching: bool,
    pub claimed: u64,
    pub armed: u64,
    pub cpus: Vec<(u32, Vec<SlotState>)>,
    pub counters: BTreeMap<String, u64>,
    pub task_entries: Option<u64>,
    /// `#  spec N:` lines.
    pub spec_notes: Vec<String>,
    pub text: String,
}

impl State {
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    pub fn parse(text: &str) -> Result<State, String> {
        let mut s = State {
            text: text.to_string(),
            ..State::default()
        };
        let mut specs = Vec::new();
        let mut header = false;
        for line in text.lines() {
            if !line.starts_with('#') {
                if !line.trim().is_empty() {
                    specs.push(line);
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# kstackwatch: ") {
                header = true;
                if rest.starts_with("not watching") {
                    continue;
                }
                s.watching = true;
                // "N spec(s), C of H hardware slot(s) claimed, A armed"
                let words: Vec<&str> = rest.split([' ', ',']).filter(|w| !w.is_empty()).collect();
                for (i, w) in words.iter().enumerate() {
                    if *w == "of" {
                        s.claimed = words
                            .get(i.wrapping_sub(1))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                    }
                    if *w == "armed" {
                        s.armed = words
                            .get(i.wrapping_sub(1))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                    }
                }
            } else if let Some(rest) = line.strip_prefix("# counters: ") {
                for kv in rest.split_whitespace() {
                    if let Some((k, v)) = kv.split_once('=') {
                        s.counters.insert(
                            k.to_string(),
                            v.parse().map_err(|_| format!("counter {kv}"))?,
                        );
                    }
                }
            } else if let Some(rest) = line.strip_prefix("# task_entries: ") {
                s.task_entries = rest.trim().parse().ok();
            } else if line.starts_with("#  spec ") {
                s.spec_notes.push(line.to_string());
            } else if let Some(rest) = line.strip_prefix("# cpu") {
                let Some((cpu, slots)) = rest.split_once(':') else {
                    continue;
                };
                let cpu: u32 = cpu.parse().map_err(|_| format!("cpu line {line}"))?;
                let mut v = Vec::new();
                for word in slots.split_whitespace() {
                    let state = word.split_once('=').map(|(_, v)| v).unwrap_or("");
                    v.push(match state {
                        "parked" => SlotState::Parked,
                        "none" => SlotState::None,
                        a => SlotState::Watching(
                            u64::from_str_radix(a.trim_start_matches("0x"), 16)
                                .map_err(|_| format!("slot {word} in {line}"))?,
                        ),
                    });
                }
                s.cpus.push((cpu, v));
            }
        }
        if !header {
            return Err(format!("no '# kstackwatch:' header in {text:?}"));
        }
        if !s.counters.contains_key("arms") {
            return Err(format!("no counters in {text:?}"));
        }
        s.specs = specs.join("\n");
        Ok(s)
    }
}

pub fn read_state() -> Result<State, String> {
    let text = fs::read_to_string(KSW_PROC).map_err(|e| format!("{KSW_PROC}: {e}"))?;
    State::parse(&text)
}

/// `key=value` words of a scenario's outcome.
pub fn field(text: &str, key: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::to_string)
}

pub fn field_u64(text: &str, key: &str) -> Option<u64> {
    field(text, key).and_then(|v| v.parse().ok())
}

/// Scenarios are serialized by the test module; the outcome is read back
/// right after, so callers take this lock.
static SCENARIO: Mutex<()> = Mutex::new(());

/// Runs a scenario of the test module; returns its outcome line.
pub fn scenario(cmd: &str) -> Result<String, String> {
    let _g = SCENARIO.lock().unwrap_or_else(|e| e.into_inner());
    let f = OpenOptions::new()
        .write(true)
        .open(TEST_PROC)
        .map_err(|e| format!("{TEST_PROC}: {e}"))?;
    // SAFETY: a valid buffer of its length; the fd is open.
    let n = unsafe { libc::write(f.as_raw_fd(), cmd.as_ptr().cast(), cmd.len()) };
    if n < 0 {
        return Err(format!("scenario '{cmd}': errno {}", errno()));
    }
    fs::read_to_string(TEST_PROC)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{TEST_PROC}: {e}"))
}

/// Loads a module from `path` with `params` (finit_module).
pub fn load_module(path: &str, params: &str) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let p = CString::new(params).map_err(|e| e.to_string())?;
    // SAFETY: a valid fd and NUL-terminated parameter string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), p.as_ptr(), 0) };
    if r != 0 {
        return Err(format!("insmod {path} {params}: errno {}", errno()));
    }
    Ok(())
}

/// Unloads a module (as rmmod does: fails at once if it is in use).
pub fn unload_module(name: &str) -> Result<(), i32> {
    let n = CString::new(name).map_err(|_| libc::EINVAL)?;
    // SAFETY: a NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, n.as_ptr(), libc::O_NONBLOCK) };
    if r != 0 {
        return Err(errno());
    }
    Ok(())
}

pub fn module_loaded(name: &str) -> bool {
    fs::read_to_string("/proc/modules")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').next() == Some(name)))
}

/// CPUs that can be taken offline (those with an `online` file).
pub fn hotpluggable_cpus() -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir("/sys/devices/system/cpu")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n: u32 = name.strip_prefix("cpu")?.parse().ok()?;
                    e.path().join("online").exists().then_some(n)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

pub fn set_cpu_online(cpu: u32, online: bool) -> Result<(), String> {
    let path = format!("/sys/devices/system/cpu/cpu{cpu}/online");
    fs::write(&path, if online { "1" } else { "0" })
        .map_err(|e| format!("{path} <- {}: {e}", u8::from(online)))
}

pub fn online_cpus() -> Vec<u32> {
    let text = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut v = Vec::new();
    for part in text.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    v.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    v.push(a);
                }
            }
        }
    }
    v
}

/// Kernel memory counters: `/proc/meminfo` (kB) and, when the kernel has
/// it, `/proc/slabinfo` (bytes in active objects per cache).
#[derive(Clone, Debug, Default)]
pub struct Memory {
    pub meminfo: BTreeMap<String, u64>,
    pub slabs: BTreeMap<String, (u64, u64)>,
}

impl Memory {
    /// Shrinks every cache first (which also empties KASAN's quarantine
    /// of it), so freed objects are not counted as live.
    pub fn snapshot() -> Memory {
        if let Ok(d) = fs::read_dir("/sys/kernel/slab") {
            for e in d.flatten() {
                let _ = fs::write(e.path().join("shrink"), "1");
            }
        }
        let _ = fs::write("/proc/sys/vm/drop_caches", "3");
        let mut m = Memory::default();
        for line in fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
        {
            if let Some((k, v)) = line.split_once(':') {
                if let Some(n) = v.split_whitespace().next().and_then(|n| n.parse().ok()) {
                    m.meminfo.insert(k.to_string(), n);
                }
            }
        }
        for line in fs::read_to_string("/proc/slabinfo")
            .unwrap_or_default()
            .lines()
        {
            if line.starts_with('#') || line.starts_with("slabinfo") {
                continue;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() >= 4 {
                if let (Ok(active), Ok(size)) = (w[1].parse::<u64>(), w[3].parse::<u64>()) {
                    m.slabs.insert(w[0].to_string(), (active, size));
                }
            }
        }
        m
    }

    pub fn kb(&self, key: &str) -> u64 {
        self.meminfo.get(key).copied().unwrap_or(0)
    }
}

/// What the kernel log said, read from `/dev/kmsg` by a thread.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Reports the VM runner fails a run for: (phase, line).
    pub splats: Vec<(String, String)>,
    pub rejects_logged: u64,
    pub teardown_frames: u64,
    pub teardown_lines: u64,
    /// Records the reader missed (the log buffer wrapped first).
    pub missed: u64,
    pub marks: u64,
    /// Records still to echo to the console after a report.
    echo_left: u32,
}

#[derive(Debug, Clone)]
pub struct Kmsg {
    pub stats: Arc<Mutex<LogStats>>,
    /// What the run is doing now (for splat reports).
    pub phase: Arc<Mutex<String>>,
    mark: Arc<AtomicU64>,
    /// The console log level is lowered (see [`Kmsg::quiet_console`]).
    quiet: Arc<AtomicBool>,
    console_level: Arc<Mutex<String>>,
}

impl Kmsg {
    /// Starts reading the log from its current end.
    pub fn start() -> Result<Kmsg, String> {
        let mut f = File::open("/dev/kmsg").map_err(|e| format!("/dev/kmsg: {e}"))?;
        // SAFETY: lseek on an open fd.
        unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        let k = Kmsg {
            stats: Arc::new(Mutex::new(LogStats::default())),
            phase: Arc::new(Mutex::new("start".into())),
            mark: Arc::new(AtomicU64::new(0)),
            quiet: Arc::new(AtomicBool::new(false)),
            console_level: Arc::new(Mutex::new(String::new())),
        };
        let k2 = k.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16384];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(50)),
                    Ok(n) => k2.record(&buf[..n]),
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                        k2.stats.lock().unwrap_or_else(|e| e.into_inner()).missed += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Ok(k)
    }

    fn record(&self, rec: &[u8]) {
        let text = String::from_utf8_lossy(rec);
        let msg = text.split_once(';').map_or(&*text, |(_, m)| m);
        let first = msg.lines().next().unwrap_or("");
        let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if first.starts_with("ksw-stress: ") {
            // Our own lines (marks, echoes).
        } else if crate::gen::contains_splat(msg.as_bytes()) {
            let phase = self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if st.splats.len() < 50 {
                st.splats.push((phase, first.to_string()));
            }
            st.echo_left = 80;
        }
        // While the console is quiet, a report and what follows it go to
        // the console anyway, as emergencies: the VM runner sees them.
        if st.echo_left > 0 && !first.starts_with("ksw-stress: ") {
            st.echo_left -= 1;
            if self.quiet.load(Ordering::Relaxed) {
                let _ = fs::write(
                    "/dev/kmsg",
                    format!("<0>ksw-stress: the kernel said: {first}\n"),
                );
            }
        }
        if first.contains("kstackwatch: config rejected:") {
            st.rejects_logged += 1;
        }
        if let Some(rest) = first.split("kstackwatch: teardown: disarmed ").nth(1) {
            st.teardown_lines += 1;
            st.teardown_frames += rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Some(n) = first.strip_prefix("ksw-stress: mark ") {
            if let Ok(n) = n.trim().parse::<u64>() {
                st.marks = st.marks.max(n);
            }
        }
    }

    /// Keeps the kernel's messages off the (serial, slow under TCG)
    /// console, or puts them back. Every rejected write logs a line: on
    /// the console that costs more than the write. The log itself is read
    /// here, and any report is echoed to the console as an emergency.
    pub fn quiet_console(&self, quiet: bool) {
        let mut level = self.console_level.lock().unwrap_or_else(|e| e.into_inner());
        if quiet && !self.quiet.load(Ordering::Relaxed) {
            let now = fs::read_to_string("/proc/sys/kernel/printk").unwrap_or_default();
            *level = now.split_whitespace().next().unwrap_or("7").to_string();
            let _ = fs::write("/proc/sys/kernel/printk", "1");
            self.quiet.store(true, Ordering::Relaxed);
        } else if !quiet && self.quiet.load(Ordering::Relaxed) {
            let _ = fs::write("/proc/sys/kernel/printk", level.as_str());
            self.quiet.store(false, Ordering::Relaxed);
        }
    }

    pub fn set_phase(&self, phase: &str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.to_string();
    }

    /// Waits until everything logged so far has been read.
    pub fn sync(&self) {
        let n = self.mark.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = fs::write("/dev/kmsg", format!("ksw-stress: mark {n}\n"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.stats.lock().unwrap_or_else(|e| e.into_inner()).marks >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&LogStats) -> T) -> T {
        f(&self.stats.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A hardware write breakpoint on one CPU, held through perf (as gdb or
/// `perf record -e mem:` would hold one); released on drop.
#[derive(Debug)]
pub struct PerfBreakpoint(i32);

static BP_TARGET: AtomicU64 = AtomicU64::new(0);

impl PerfBreakpoint {
    pub fn open(cpu: u32) -> Result<PerfBreakpoint, String> {
        // struct perf_event_attr, PERF_ATTR_SIZE_VER1 (72 bytes).
        let mut attr = [0u8; 72];
        attr[0..4].copy_from_slice(&5u32.to_ne_bytes()); // PERF_TYPE_BREAKPOINT
        attr[4..8].copy_from_slice(&72u32.to_ne_bytes());
        attr[16..24].copy_from_slice(&1u64.to_ne_bytes()); // sample_period
        let flags: u64 = (1 << 2) | (1 << 5); // pinned, exclude_kernel
        attr[40..48].copy_from_slice(&flags.to_ne_bytes());
        attr[52..56].copy_from_slice(&2u32.to_ne_bytes()); // HW_BREAKPOINT_W
        let addr = &BP_TARGET as *const AtomicU64 as u64;
        attr[56..64].copy_from_slice(&addr.to_ne_bytes());
        attr[64..72].copy_from_slice(&8u64.to_ne_bytes()); // HW_BREAKPOINT_LEN_8
                                                           // SAFETY: attr is a valid perf_event_attr of the size it declares.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                -1i32,
                cpu as i32,
                -1i32,
                0u64,
            )
        };
        if fd < 0 {
            return Err(format!(
                "perf_event_open breakpoint on cpu {cpu}: errno {}",
                errno()
            ));
        }
        Ok(PerfBreakpoint(fd as i32))
    }
}

impl Drop for PerfBreakpoint {
    fn drop(&mut self) {
        // SAFETY: our own fd, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// A tracefs instance that records the arm events of one spec (to see
/// when a particular frame is armed without holding the module: perf
/// would, and a held module cannot be unloaded).
#[derive(Debug)]
pub struct ArmWatch {
    dir: String,
}

impl ArmWatch {
    pub fn new() -> Result<ArmWatch, String> {
        let dir = "/sys/kernel/tracing/instances/ksw-stress".to_string();
        if !std::path::Path::new(&dir).exists() {
            fs::create_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
        }
        Ok(ArmWatch { dir })
    }

    /// (Re)arms the instance for spec `index` (after every module load:
    /// the event directory is new then).
    pub fn follow(&self, index: usize) -> Result<(), String> {
        let ev = format!("{}/events/kstackwatch/ksw_arm", self.dir);
        fs::write(format!("{ev}/filter"), format!("spec == {index}"))
            .map_err(|e| format!("{ev}/filter: {e}"))?;
        fs::write(format!("{ev}/enable"), "1").map_err(|e| format!("{ev}/enable: {e}"))?;
        // Disarms other than returns, to count them by reason.
        let ev = format!("{}/events/kstackwatch/ksw_disarm", self.dir);
        fs::write(format!("{ev}/filter"), "reason != 0")
            .map_err(|e| format!("{ev}/filter: {e}"))?;
        fs::write(format!("{ev}/enable"), "1").map_err(|e| format!("{ev}/enable: {e}"))?;
        let _ = fs::write(format!("{}/buffer_size_kb", self.dir), "1024");
        self.clear();
        Ok(())
    }

    /// Disarms other than returns recorded since the last clear, by reason.
    pub fn disarm_reasons(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let text = fs::read_to_string(format!("{}/trace", self.dir)).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("ksw_disarm:")) {
            if let Some(r) = field(line, "reason") {
                *out.entry(r).or_default() += 1;
            }
        }
        out
    }

    pub fn clear(&self) {
        let _ = fs::write(format!("{}/trace", self.dir), "");
    }

    /// The (slot, address) of the newest arm seen.
    pub fn last_arm(&self) -> Option<(u64, u64)> {
        let text = fs::read_to_string(format!("{}/trace", self.dir)).ok()?;
        let line = text.lines().rev().find(|l| l.contains("ksw_arm:"))?;
        let slot = field_u64(line, "slot")?;
        let addr = field(line, "addr")?;
        Some((
            slot,
            u64::from_str_radix(addr.trim_start_matches("0x"), 16).ok()?,
        ))
    }
}
