//! `ksw record`: the kstackwatch tracepoints on every CPU, through
//! perf_event_open and per-CPU mmap ring buffers, into a perf.data file
//! that `perf script`, `perf report` and `ksw report` read.
//!
//! Per CPU: one perf event per kstackwatch tracepoint; the first one owns
//! the ring buffer and the others are redirected into it (SET_OUTPUT), so
//! one CPU's events stay in order. Samples carry IDENTIFIER, IP, TID, TIME
//! (CLOCK_MONOTONIC, like `perf record -k mono`), CPU, PERIOD, RAW and,
//! with `-g`, CALLCHAIN. The kernel's PERF_RECORD_LOST records go into the
//! file as they come, and are counted.
//!
//! The file also gets the tracepoint formats and a copy of /proc/kallsyms
//! (in TRACING_DATA), kernel and module maps, the comm of every existing
//! task, and the module's counters at the start and the end (ksw's own
//! feature section), so it can be reported on elsewhere.
//!
//! Files follow perf's conventions: the recording is written to a
//! temporary file (mode 0600: it holds kernel addresses) and renamed into
//! place when complete, an existing output moving to `OUTPUT.old`; on any
//! failure the existing output is left alone. `ksw record -- CMD` exits
//! with CMD's status (128 + the signal if it was killed).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Duration;

use ksw_core::events::{ALL as KSW_EVENTS, SYSTEM};
use ksw_perf::abi::{attr_flag, record_type, sample_type};
use ksw_perf::read::{ClockData, Comm, Mmap, SampleId};
use ksw_perf::{tracing_data, EventSpec, PerfEventAttr, Writer, WriterConfig};
use perf_event_open_sys as sys;
use rustc_hash::FxHashMap;

use crate::cli::RecordArgs;

/// Why `ksw record` failed: one line each, naming the file or event.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "no tracefs found: mount it with `mount -t tracefs nodev /sys/kernel/tracing` (as root)"
    )]
    NoTracefs,
    #[error("permission denied reading {}: run as root", .0.display())]
    TracefsPermission(PathBuf),
    #[error("the kstackwatch module is not loaded (no {}): load it with `insmod kstackwatch.ko`", .0.display())]
    ModuleNotLoaded(PathBuf),
    #[error("{}: not an event id", .0.display())]
    BadEventId(PathBuf),
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("--mmap-pages {0} is not a power of two")]
    MmapPages(usize),
    #[error("permission denied opening {SYSTEM}:{event} on cpu {cpu}: run as root or with CAP_PERFMON (kernel.perf_event_paranoid = {paranoid})")]
    Permission {
        event: &'static str,
        cpu: i32,
        paranoid: String,
    },
    #[error("perf_event_open {SYSTEM}:{event} on cpu {cpu}: {source}")]
    Open {
        event: &'static str,
        cpu: i32,
        source: io::Error,
    },
    #[error("perf_event ioctl {what}: {source}")]
    Ioctl {
        what: &'static str,
        source: io::Error,
    },
    #[error("mmap of the cpu {cpu} ring: {source}")]
    Mmap { cpu: i32, source: io::Error },
    #[error("reading the event formats: {0}")]
    Formats(io::Error),
    #[error("--function-graph: nothing is watched and no --graph-filter given: which functions to graph?")]
    NoGraphFilter,
    #[error("{}: {source} (function_graph needs tracefs instances)", path.display())]
    Instance { path: PathBuf, source: io::Error },
    #[error("{}: writing '{value}': {source}", path.display())]
    Tracefs {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Command { program: String, source: io::Error },
    #[error("waiting for the recorded command: {0}")]
    Wait(io::Error),
    #[error("recording: {0}")]
    Ring(io::Error),
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// From here on SIGINT and SIGTERM only ask the recording to stop (it
/// then stops at once). Called before anything is written to
/// /proc/kstackwatch, so that a Ctrl-C between configuring and recording
/// still lets the previous configuration be restored.
pub fn catch_stop_signals() {
    // SAFETY: installing async-signal-safe handlers that only store a flag.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_stop_signals`].
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Finds the tracefs mount.
pub fn tracefs() -> Result<PathBuf, RecordError> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let events = Path::new(p).join("events");
        match fs::metadata(&events) {
            Ok(m) if m.is_dir() => return Ok(PathBuf::from(p)),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(RecordError::TracefsPermission(events));
            }
            _ => {}
        }
    }
    Err(RecordError::NoTracefs)
}

fn read_event_id(tracefs: &Path, name: &str) -> Result<u64, RecordError> {
    let path = tracefs.join("events").join(SYSTEM).join(name).join("id");
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| RecordError::BadEventId(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RecordError::ModuleNotLoaded(path)),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(RecordError::TracefsPermission(path))
        }
        Err(source) => Err(RecordError::File { path, source }),
    }
}

fn online_cpus() -> Result<Vec<i32>, RecordError> {
    let path = PathBuf::from("/sys/devices/system/cpu/online");
    let text = fs::read_to_string(&path).map_err(|source| RecordError::File {
        path: path.clone(),
        source,
    })?;
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let bad = || RecordError::File {
            path: path.clone(),
            source: io::Error::other(format!("cannot read '{part}'")),
        };
        let (a, b): (i32, i32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

fn paranoid() -> String {
    fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map_or("?".into(), |s| s.trim().to_string())
}

/// The attribute for one tracepoint, as opened and as written to the file.
fn attribute(id: u64, callchain: bool, owns_ring: bool, ring_bytes: usize) -> PerfEventAttr {
    let mut attr = PerfEventAttr::tracepoint(id, callchain);
    attr.sample_type |= sample_type::IP | sample_type::PERIOD;
    attr.read_format = 4; // PERF_FORMAT_ID
                          // Wake the reader when a quarter of the ring is used, not per event.
    attr.set(attr_flag::WATERMARK, true);
    attr.wakeup_events = (ring_bytes / 4) as u32;
    // The ring owner also reports task names, as perf's dummy event does.
    attr.set(attr_flag::COMM | attr_flag::TASK, owns_ring);
    attr
}

/// The kernel's `perf_event_attr` for `attr`, field by field through
/// perf-event-open-sys's setters (the file keeps the same attribute).
fn sys_attr(attr: &PerfEventAttr) -> sys::bindings::perf_event_attr {
    let mut raw = sys::bindings::perf_event_attr {
        type_: attr.type_,
        size: sys::bindings::PERF_ATTR_SIZE_VER7,
        config: attr.config,
        sample_type: attr.sample_type,
        read_format: attr.read_format,
        clockid: attr.clockid,
        ..Default::default()
    };
    raw.__bindgen_anon_1.sample_period = attr.sample_period;
    raw.__bindgen_anon_2.wakeup_events = attr.wakeup_events;
    let on = |flag: u64| u64::from(attr.has(flag));
    raw.set_disabled(on(attr_flag::DISABLED));
    raw.set_comm(on(attr_flag::COMM));
    raw.set_task(on(attr_flag::TASK));
    raw.set_watermark(on(attr_flag::WATERMARK));
    raw.set_sample_id_all(on(attr_flag::SAMPLE_ID_ALL));
    raw.set_use_clockid(on(attr_flag::USE_CLOCKID));
    raw
}

fn open_event(attr: &PerfEventAttr, cpu: i32) -> io::Result<OwnedFd> {
    let mut raw = sys_attr(attr);
    // SAFETY: `raw` is a fully initialised attribute for a tracepoint;
    // pid -1 with a cpu asks for every task on that CPU.
    let fd = unsafe {
        sys::perf_event_open(
            &mut raw,
            -1,
            cpu,
            -1,
            libc::c_ulong::from(sys::bindings::PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(
    fd: &OwnedFd,
    what: &'static str,
    f: impl FnOnce(libc::c_int) -> libc::c_int,
) -> Result<(), RecordError> {
    if f(fd.as_raw_fd()) < 0 {
        return Err(RecordError::Ioctl {
            what,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// One CPU's ring buffer: a mapping of 1 + 2^n pages.
struct Ring {
    base: NonNull<u8>,
    len: usize,
    data_offset: usize,
    data_size: usize,
    /// The records copied out of the ring, reused between drains.
    scratch: Vec<u8>,
}

impl Ring {
    fn map(fd: &OwnedFd, pages: usize) -> io::Result<Ring> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = page * (pages + 1);
        // SAFETY: mapping a perf fd shared read-write is how its ring is read;
        // the kernel checks the size.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        let meta = base.as_ptr().cast::<sys::bindings::perf_event_mmap_page>();
        // SAFETY: the first page is the kernel's perf_event_mmap_page; these
        // fields are set before mmap returns and never change.
        let (data_offset, data_size) =
            unsafe { ((*meta).data_offset as usize, (*meta).data_size as usize) };
        let (data_offset, data_size) = if data_size == 0 {
            (page, len - page)
        } else {
            (data_offset, data_size)
        };
        Ok(Ring {
            base,
            len,
            data_offset,
            data_size,
            scratch: Vec::new(),
        })
    }

    fn meta(&self) -> *mut sys::bindings::perf_event_mmap_page {
        self.base.as_ptr().cast()
    }

    /// Copies every complete record out of the ring (through raw pointers:
    /// no reference is ever formed over memory the kernel writes), shows
    /// each to `visit`, hands all of them to `sink` in one piece, then
    /// frees the space.
    fn drain(
        &mut self,
        mut visit: impl FnMut(&[u8]),
        sink: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let meta = self.meta();
        // SAFETY: data_head is written by the kernel; a volatile read then an
        // acquire fence is the documented protocol (perf_event_open(2)).
        let head = unsafe { std::ptr::read_volatile(&raw const (*meta).data_head) };
        fence(Ordering::Acquire);
        // SAFETY: data_tail is ours to read and write.
        let tail = unsafe { std::ptr::read_volatile(&raw const (*meta).data_tail) };
        let ring = self.data_size as u64;
        let available = head.wrapping_sub(tail);
        if available == 0 {
            return Ok(0);
        }
        if available > ring {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "perf ring head ran past its tail",
            ));
        }
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.resize(available as usize, 0);
        self.copy_out((tail % ring) as usize, &mut bytes);
        let mut records = 0;
        let mut at = 0usize;
        while at + 8 <= bytes.len() {
            let size = usize::from(u16::from_ne_bytes([bytes[at + 6], bytes[at + 7]]));
            if size < 8 || at + size > bytes.len() {
                // A record that does not fit what the kernel published: stop
                // reading this ring rather than decode garbage.
                self.scratch = bytes;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed perf ring record",
                ));
            }
            visit(&bytes[at..at + size]);
            at += size;
            records += 1;
        }
        let result = sink(&bytes[..at]);
        self.scratch = bytes;
        result?;
        fence(Ordering::Release);
        // SAFETY: publishing how far we read; the kernel may reuse the space.
        unsafe { std::ptr::write_volatile(&raw mut (*meta).data_tail, tail + at as u64) };
        Ok(records)
    }

    /// Copies `out.len()` bytes from ring offset `at`, wrapping at the end.
    fn copy_out(&self, at: usize, out: &mut [u8]) {
        let data = self.base.as_ptr().wrapping_add(self.data_offset);
        let first = out.len().min(self.data_size - at);
        // SAFETY: `at < data_size` and `first <= data_size - at`: inside the
        // mapped data area; the rest (at most `at` bytes, as out.len() <=
        // data_size) wraps to its start. Bytes of [tail, head) are not
        // written by the kernel until the new tail is published; they are
        // read through raw pointers into our own buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(data.add(at), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, out.as_mut_ptr().add(first), out.len() - first);
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped, once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// An ftrace instance of our own running function_graph on the mono
/// clock; removed on drop, so the global tracer is never touched.
struct GraphCapture {
    dir: PathBuf,
}

impl GraphCapture {
    fn start(tracefs: &Path, filters: &[String]) -> Result<GraphCapture, RecordError> {
        let dir = tracefs
            .join("instances")
            .join(format!("ksw-{}", std::process::id()));
        fs::create_dir(&dir).map_err(|source| RecordError::Instance {
            path: dir.clone(),
            source,
        })?;
        let capture = GraphCapture { dir };
        let set = |file: &str, value: &str| {
            let path = capture.dir.join(file);
            fs::write(&path, value).map_err(|source| RecordError::Tracefs {
                path,
                value: value.to_string(),
                source,
            })
        };
        set("trace_clock", "mono")?;
        // One word per line: tracefs parses a word when its line ends (an
        // unterminated last word would be parsed at close, where its error
        // is lost).
        let mut words = filters.join("\n");
        words.push('\n');
        set("set_ftrace_filter", &words)?;
        let path = capture.dir.join("set_ftrace_filter");
        let set_now = fs::read_to_string(&path).unwrap_or_default();
        if set_now.trim().is_empty() || set_now.starts_with("#### all functions") {
            return Err(RecordError::Tracefs {
                path,
                value: filters.join(" "),
                source: io::Error::other("no function matches"),
            });
        }
        set("current_tracer", "function_graph")?;
        for option in ["funcgraph-abstime", "funcgraph-proc", "funcgraph-tail"] {
            set(&format!("options/{option}"), "1")?;
        }
        set(&format!("events/{SYSTEM}/enable"), "1")?;
        set("tracing_on", "1")?;
        Ok(capture)
    }

    /// Stops tracing and copies the trace into `out` (a temporary file).
    fn finish(self, out: &mut File) -> Result<(), RecordError> {
        let _ = fs::write(self.dir.join("tracing_on"), "0");
        let path = self.dir.join("trace");
        let mut trace = File::open(&path).map_err(|source| RecordError::File {
            path: path.clone(),
            source,
        })?;
        io::copy(&mut trace, out).map_err(|source| RecordError::File { path, source })?;
        Ok(())
    }
}

/// An output file written under a temporary name (mode 0600) and renamed
/// into place by [`Output::commit`], the existing file moving to
/// `PATH.old`; dropped uncommitted, the temporary file is removed and the
/// existing output is left alone.
#[derive(Debug)]
pub struct Output {
    path: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl Output {
    pub fn create(path: &Path) -> Result<(Output, File), RecordError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "perf.data".into());
        let tmp = path.with_file_name(format!(".{name}.ksw-{}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|source| RecordError::File {
                path: path.to_path_buf(),
                source,
            })?;
        Ok((
            Output {
                path: path.to_path_buf(),
                tmp,
                committed: false,
            },
            file,
        ))
    }

    /// Moves an existing output to `PATH.old`, then the new file into place.
    pub fn commit(mut self) -> Result<(), RecordError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecordError::File { path, source }
        };
        if fs::symlink_metadata(&self.path).is_ok() {
            let mut old = self.path.clone().into_os_string();
            old.push(".old");
            fs::rename(&self.path, &old).map_err(err(&self.path))?;
        }
        fs::rename(&self.tmp, &self.path).map_err(err(&self.path))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The exit status a shell gives a command: its code, or 128 + the signal
/// that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        (None, None) => 1,
    }
}

/// The `# counters:` line of /proc/kstackwatch (empty if unreadable).
fn module_counters() -> String {
    counters_line(&fs::read_to_string("/proc/kstackwatch").unwrap_or_default())
}

/// The counters of a /proc/kstackwatch text (empty if it has none).
fn counters_line(proc_text: &str) -> String {
    proc_text
        .lines()
        .find_map(|l| l.strip_prefix("# counters:"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// Prefix of the /proc/kstackwatch snapshot's lines in the
/// `KSW_COUNTERS` text.
const PROC_PREFIX: &str = "proc: ";

/// The `KSW_COUNTERS` feature text: `start:` and `end:` counter lines
/// (what older `ksw report`s read), then the whole /proc/kstackwatch text
/// at the end of the recording, one `proc: ` line per line (the specs,
/// per-function stats, skipped functions). Every line has a `WORD:`
/// prefix, so readers that know only `start:`/`end:` skip the rest.
pub fn feature_text(start: &str, end: &str, proc_text: &str) -> String {
    let mut text = format!("start: {start}\nend: {end}\n");
    for line in proc_text.lines() {
        text.push_str(PROC_PREFIX);
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The /proc/kstackwatch snapshot stored by [`feature_text`]; None in
/// recordings made before it was stored.
pub fn proc_snapshot(feature: &str) -> Option<String> {
    let mut text = String::new();
    for line in feature.lines() {
        if let Some(l) = line.strip_prefix(PROC_PREFIX).or_else(|| {
            // An empty /proc line is stored as "proc:" (trailing space trimmed).
            (line == PROC_PREFIX.trim_end()).then_some("")
        }) {
            text.push_str(l);
            text.push('\n');
        }
    }
    (!text.is_empty()).then_some(text)
}

impl Drop for GraphCapture {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.join("tracing_on"), "0");
        let _ = fs::write(self.dir.join("current_tracer"), "nop");
        let _ = fs::write(self.dir.join(format!("events/{SYSTEM}/enable")), "0");
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The watched functions, from /proc/kstackwatch (default graph filter):
/// each name of a sweep's list, without its `module:` prefix.
fn watched_functions() -> Vec<String> {
    fs::read_to_string("/proc/kstackwatch")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("func_name="))
        })
        .flat_map(|list| list.split(','))
        .map(|f| f.rsplit(':').next().unwrap_or(f).to_string())
        .collect()
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

fn os_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

/// COMM records for every existing thread, like perf's synthesized ones.
fn synthesize_comms(writer: &mut Writer<BufWriter<File>>, id: u64, now: u64) -> io::Result<()> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Ok(());
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(tasks) = fs::read_dir(p.path().join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(comm) = fs::read_to_string(t.path().join("comm")) else {
                continue;
            };
            writer.write_comm(&Comm {
                pid,
                tid,
                comm: comm.trim_end().into(),
                exec: false,
                sample_id: SampleId {
                    pid: Some(pid),
                    tid: Some(tid),
                    time: Some(now),
                    id: Some(id),
                    stream_id: None,
                    cpu: Some(0),
                },
            })?;
        }
    }
    Ok(())
}

/// Kernel and module maps, so perf can place kernel addresses.
fn synthesize_maps(
    writer: &mut Writer<BufWriter<File>>,
    kallsyms: &str,
    id: u64,
    now: u64,
) -> io::Result<()> {
    let sid = SampleId {
        pid: Some(-1),
        tid: Some(0),
        time: Some(now),
        id: Some(id),
        stream_id: None,
        cpu: Some(0),
    };
    let text = kallsyms.lines().find_map(|l| {
        l.strip_suffix(" T _text")
            .and_then(|a| u64::from_str_radix(a, 16).ok())
    });
    if let Some(text) = text {
        writer.write_mmap(&Mmap {
            pid: -1,
            tid: 0,
            addr: text,
            len: u64::MAX - text,
            pgoff: text,
            filename: "[kernel.kallsyms]_text".into(),
            cpumode: 1,
            sample_id: sid,
        })?;
    }
    for line in fs::read_to_string("/proc/modules")
        .unwrap_or_default()
        .lines()
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let (Some(name), Some(size), Some(addr)) = (f.first(), f.get(1), f.get(5)) {
            let (Ok(size), Ok(addr)) = (
                size.parse::<u64>(),
                u64::from_str_radix(addr.trim_start_matches("0x"), 16),
            ) else {
                continue;
            };
            if addr == 0 {
                continue;
            }
            writer.write_mmap(&Mmap {
                pid: -1,
                tid: 0,
                addr,
                len: size,
                pgoff: 0,
                filename: format!("[{name}]").into(),
                cpumode: 1,
                sample_id: sid,
            })?;
        }
    }
    Ok(())
}

/// Records; returns the exit status to give (the command's, or 0).
pub fn run(args: &RecordArgs) -> Result<u8, RecordError> {
    if !args.recording.mmap_pages.is_power_of_two() {
        return Err(RecordError::MmapPages(args.recording.mmap_pages));
    }
    let tracefs = tracefs()?;
    let ids: Vec<u64> = KSW_EVENTS
        .iter()
        .map(|e| read_event_id(&tracefs, e))
        .collect::<Result<_, _>>()?;
    let cpus = online_cpus()?;
    let graph_filters = if args.graph_filter.is_empty() {
        watched_functions()
    } else {
        args.graph_filter.clone()
    };
    if args.recording.function_graph && graph_filters.is_empty() {
        return Err(RecordError::NoGraphFilter);
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let ring_bytes = page * args.recording.mmap_pages;

    let mut fds: Vec<(usize, OwnedFd)> = Vec::new();
    let mut rings: Vec<Ring> = Vec::new();
    let mut specs: Vec<EventSpec> = KSW_EVENTS
        .iter()
        .zip(&ids)
        .map(|(name, &id)| EventSpec {
            attr: attribute(id, args.recording.callchain, false, ring_bytes),
            name: format!("{SYSTEM}:{name}"),
            ids: Vec::new(),
        })
        .collect();
    let mut event_of_id: FxHashMap<u64, usize> = FxHashMap::default();
    for &cpu in &cpus {
        let mut leader: Option<usize> = None;
        for (index, &id) in ids.iter().enumerate() {
            let attr = attribute(id, args.recording.callchain, leader.is_none(), ring_bytes);
            let event = KSW_EVENTS[index];
            let fd = open_event(&attr, cpu).map_err(|source| match source.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) => RecordError::Permission {
                    event,
                    cpu,
                    paranoid: paranoid(),
                },
                _ => RecordError::Open { event, cpu, source },
            })?;
            let mut sample_id = 0u64;
            // SAFETY: ID writes the event's id into the u64 we pass.
            ioctl(&fd, "ID", |f| unsafe { sys::ioctls::ID(f, &mut sample_id) })?;
            specs[index].ids.push(sample_id);
            event_of_id.insert(sample_id, index);
            match leader {
                None => {
                    rings.push(
                        Ring::map(&fd, args.recording.mmap_pages)
                            .map_err(|source| RecordError::Mmap { cpu, source })?,
                    );
                    leader = Some(fds.len());
                }
                Some(l) => {
                    let target = fds[l].1.as_raw_fd();
                    // SAFETY: SET_OUTPUT takes the fd whose ring receives our records.
                    ioctl(&fd, "SET_OUTPUT", |f| unsafe {
                        sys::ioctls::SET_OUTPUT(f, target)
                    })?;
                }
            }
            fds.push((index, fd));
        }
    }
    // The file records the ring owners' attribute (with COMM/TASK) for
    // the first event: merge the flag so perf reads COMM records right.
    specs[0].attr.set(attr_flag::COMM | attr_flag::TASK, true);

    let kallsyms = fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    let events: Vec<(&str, &str)> = KSW_EVENTS.iter().map(|e| (SYSTEM, *e)).collect();
    let tracing =
        tracing_data::build(&tracefs, &events, Some(&kallsyms)).map_err(RecordError::Formats)?;
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    let wall = clock_ns(libc::CLOCK_REALTIME);
    let (output, file) = Output::create(&args.recording.output)?;
    let werr = |source: io::Error| RecordError::File {
        path: args.recording.output.clone(),
        source,
    };
    let first_id = specs[0].ids[0];
    let mut writer = Writer::create(
        BufWriter::new(file),
        WriterConfig {
            events: specs,
            tracing_data: tracing,
            hostname: hostname(),
            os_release: os_release(),
            nr_cpus_online: cpus.len() as u32,
            nr_cpus_avail: cpus.iter().max().map_or(1, |m| *m as u32 + 1),
            cmdline: std::env::args().collect(),
            clock_res_ns: Some(1),
            clock_data: Some(ClockData {
                clockid: 1,
                wall_clock_ns: wall,
                clockid_time_ns: mono,
            }),
            ..WriterConfig::default()
        },
    )
    .map_err(werr)?;
    synthesize_comms(&mut writer, first_id, mono).map_err(werr)?;
    synthesize_maps(&mut writer, &kallsyms, first_id, mono).map_err(werr)?;

    let graph_path = {
        let mut p = args.recording.output.clone().into_os_string();
        p.push(".graph");
        PathBuf::from(p)
    };
    let graph = if args.recording.function_graph {
        let (out, file) = Output::create(&graph_path)?;
        Some((GraphCapture::start(&tracefs, &graph_filters)?, out, file))
    } else {
        None
    };

    catch_stop_signals();
    let counters_start = module_counters();
    for (_, fd) in &fds {
        // SAFETY: ENABLE takes no pointer.
        ioctl(fd, "ENABLE", |f| unsafe { sys::ioctls::ENABLE(f, 0) })?;
    }

    let mut child: Option<Child> = match args.recording.command.split_first() {
        Some((program, rest)) => {
            Some(Process::new(program).args(rest).spawn().map_err(|source| {
                RecordError::Command {
                    program: program.clone(),
                    source,
                }
            })?)
        }
        None => {
            eprintln!(
                "ksw record: recording {SYSTEM}:* on {} CPU(s); Ctrl-C to stop",
                cpus.len()
            );
            None
        }
    };

    let mut counts = [0u64; 3];
    let mut lost = 0u64;
    let mut status = None;
    let ring_fds: Vec<libc::c_int> = fds
        .iter()
        .enumerate()
        .filter(|(i, _)| i % ids.len() == 0)
        .map(|(_, (_, fd))| fd.as_raw_fd())
        .collect();
    let mut drain_all =
        |writer: &mut Writer<BufWriter<File>>, rings: &mut Vec<Ring>| -> Result<(), RecordError> {
            for ring in rings.iter_mut() {
                ring.drain(
                    |rec| {
                        let kind = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
                        if kind == record_type::SAMPLE && rec.len() >= 16 {
                            let id = u64::from_ne_bytes(rec[8..16].try_into().unwrap_or([0; 8]));
                            if let Some(&e) = event_of_id.get(&id) {
                                counts[e] += 1;
                            }
                        } else if kind == record_type::LOST && rec.len() >= 24 {
                            lost += u64::from_ne_bytes(rec[16..24].try_into().unwrap_or([0; 8]));
                        }
                    },
                    |run| writer.write_raw_records(run),
                )
                .map_err(RecordError::Ring)?;
            }
            writer.write_finished_round().map_err(werr)
        };
    loop {
        let mut polls: Vec<libc::pollfd> = ring_fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `polls` is a valid array of pollfd of the given length.
        unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 100) };
        drain_all(&mut writer, &mut rings)?;
        if let Some(c) = child.as_mut() {
            if let Some(s) = c.try_wait().map_err(RecordError::Wait)? {
                status = Some(s);
                break;
            }
        } else if STOP.load(Ordering::SeqCst) {
            break;
        }
    }
    for (_, fd) in &fds {
        // SAFETY: DISABLE takes no pointer.
        ioctl(fd, "DISABLE", |f| unsafe { sys::ioctls::DISABLE(f, 0) })?;
    }
    std::thread::sleep(Duration::from_millis(10));
    drain_all(&mut writer, &mut rings)?;
    // The end snapshot is taken while the watches are still configured
    // (`ksw record --watch` and `ksw sweep` restore the previous
    // configuration only after this returns): the per-function stats and
    // the skipped list go away with the configuration.
    let proc_end = fs::read_to_string("/proc/kstackwatch").unwrap_or_default();
    let counters_end = counters_line(&proc_end);
    if !counters_end.is_empty() {
        writer.set_ksw_counters(feature_text(&counters_start, &counters_end, &proc_end));
    }
    writer.finish().map_err(werr)?;
    if let Some((g, out, mut file)) = graph {
        g.finish(&mut file)?;
        drop(file);
        out.commit()?;
    }
    output.commit()?;

    let total: u64 = counts.iter().sum();
    eprintln!(
        "ksw record: {total} events ({} arm, {} hit, {} disarm), {lost} lost, written to {}{}",
        counts[0],
        counts[1],
        counts[2],
        args.recording.output.display(),
        if args.recording.function_graph {
            format!(" and {}", graph_path.display())
        } else {
            String::new()
        }
    );
    match status {
        Some(s) if !s.success() => {
            let code = exit_code(s);
            eprintln!("ksw record: the recorded command failed ({s}): exit status {code}");
            Ok(code)
        }
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ksw-out-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn output_is_private_rotated_and_untouched_on_failure() {
        let d = scratch("rotate");
        let path = d.join("perf.data");
        fs::write(&path, b"old recording").unwrap();
        // A failure after creating the output leaves the old file alone.
        {
            let (_out, mut f) = Output::create(&path).unwrap();
            io::Write::write_all(&mut f, b"half").unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), b"old recording");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "temporary file left");
        // Success: the old one becomes perf.data.old, the new one is 0600.
        let (out, mut f) = Output::create(&path).unwrap();
        io::Write::write_all(&mut f, b"new recording").unwrap();
        drop(f);
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new recording");
        assert_eq!(fs::read(d.join("perf.data.old")).unwrap(), b"old recording");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_proc_snapshot_rides_along_the_counters() {
        let proc_text = "func_name=a,b depth=0\n#  spec 0: sweep of 2 function(s): 1 watched, 1 skipped; calls=3 armed=1 hits=0 missed: fprobe=0\n\n# counters: arms=1\n";
        let text = feature_text("arms=0", "arms=1", proc_text);
        assert!(text.starts_with("start: arms=0\nend: arms=1\nproc: func_name=a,b"));
        // Every line has a `WORD:` prefix (older readers split on ':').
        assert!(text.lines().all(|l| l.contains(':')), "{text}");
        assert_eq!(proc_snapshot(&text).as_deref(), Some(proc_text));
        assert_eq!(proc_snapshot("start: arms=0\nend: arms=1\n"), None);
        assert_eq!(counters_line(proc_text), "arms=1");
    }

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        // Killed by SIGKILL (9).
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }

    #[test]
    fn the_kernel_attr_is_the_files() {
        let a = attribute(42, true, true, 4096 * 64);
        let raw = sys_attr(&a);
        assert_eq!(raw.config, 42);
        assert_eq!(raw.sample_type, a.sample_type);
        assert_eq!(raw.disabled(), 1);
        assert_eq!(raw.sample_id_all(), 1);
        assert_eq!(raw.use_clockid(), 1);
        assert_eq!(raw.comm(), 1);
        assert_eq!(raw.task(), 1);
        assert_eq!(raw.watermark(), 1);
        assert_eq!(raw.clockid, 1);
        // SAFETY: plain integers in a union; both members are u64/u32.
        let (period, wakeup) = unsafe {
            (
                raw.__bindgen_anon_1.sample_period,
                raw.__bindgen_anon_2.wakeup_events,
            )
        };
        assert_eq!((period, wakeup), (1, (4096 * 64 / 4) as u32));
        // Same bits as the file's on-disk attribute.
        let bytes = a.to_bytes();
        let flags = u64::from_le_bytes(bytes[40..48].try_into().unwrap());
        assert_eq!(flags, a.flags);
    }
}
