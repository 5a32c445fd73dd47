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
//! (in TRACING_DATA), kernel and module maps, and the comm of every
//! existing task, so it can be reported on elsewhere.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Duration;

use ksw_core::events::{ALL as KSW_EVENTS, SYSTEM};
use ksw_perf::abi::{attr_flag, record_type, sample_type};
use ksw_perf::read::{ClockData, Comm, Mmap, SampleId};
use ksw_perf::{tracing_data, EventSpec, PerfEventAttr, Writer, WriterConfig};
use perf_event_open_sys as sys;

use crate::cli::RecordArgs;
use crate::idmap::IdMap;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Finds the tracefs mount.
pub fn tracefs() -> Result<PathBuf, String> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let events = Path::new(p).join("events");
        match fs::metadata(&events) {
            Ok(m) if m.is_dir() => return Ok(PathBuf::from(p)),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(format!(
                    "permission denied reading {}: run as root",
                    events.display()
                ));
            }
            _ => {}
        }
    }
    Err(
        "no tracefs found: mount it with `mount -t tracefs nodev /sys/kernel/tracing` (as root)"
            .into(),
    )
}

fn read_event_id(tracefs: &Path, name: &str) -> Result<u64, String> {
    let path = tracefs.join("events").join(SYSTEM).join(name).join("id");
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{}: not an event id", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
            "the kstackwatch module is not loaded (no {}): load it with `insmod kstackwatch.ko`",
            path.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(format!(
            "permission denied reading {}: run as root",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn online_cpus() -> Result<Vec<i32>, String> {
    let text = fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|e| format!("/sys/devices/system/cpu/online: {e}"))?;
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let bad = || format!("/sys/devices/system/cpu/online: cannot read '{part}'");
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

fn open_event(attr: &PerfEventAttr, cpu: i32) -> io::Result<OwnedFd> {
    let bytes = attr.to_bytes();
    // SAFETY: perf_event_attr is plain old data; all-zero is a valid value.
    let mut raw: sys::bindings::perf_event_attr = unsafe { std::mem::zeroed() };
    let size = bytes
        .len()
        .min(std::mem::size_of::<sys::bindings::perf_event_attr>());
    // SAFETY: both buffers are at least `size` bytes and do not overlap; the
    // on-file layout is the kernel's (ksw_perf::PerfEventAttr::to_bytes).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut raw).cast::<u8>(), size) };
    raw.size = size as u32;
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
    what: &str,
    f: impl FnOnce(libc::c_int) -> libc::c_int,
) -> Result<(), String> {
    if f(fd.as_raw_fd()) < 0 {
        return Err(format!(
            "perf_event ioctl {what}: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// One CPU's ring buffer: a mapping of 1 + 2^n pages.
struct Ring {
    base: NonNull<u8>,
    len: usize,
    data_offset: usize,
    data_size: usize,
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

    /// Shows every complete record in the ring to `visit`, hands the same
    /// bytes to `sink` in as few pieces as possible (runs of whole records
    /// straight from the mapping; a record that wraps around the ring's end
    /// copied whole), then frees the space. No per-record copy: at the
    /// highest rates the recorder competes for the CPU with what it records.
    fn drain(
        &mut self,
        mut visit: impl FnMut(&[u8]),
        mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let meta = self.meta();
        // SAFETY: data_head is written by the kernel; a volatile read then an
        // acquire fence is the documented protocol (perf_event_open(2)).
        let head = unsafe { std::ptr::read_volatile(&raw const (*meta).data_head) };
        fence(Ordering::Acquire);
        // SAFETY: data_tail is ours to read and write.
        let mut tail = unsafe { std::ptr::read_volatile(&raw const (*meta).data_tail) };
        let data = self.base.as_ptr().wrapping_add(self.data_offset);
        let ring = self.data_size;
        // SAFETY: [data, data + ring) is the mapped data area. The kernel
        // writes only outside [tail, head) until we publish a new tail, and
        // only bytes of [tail, head) are read through this slice.
        let bytes = unsafe { std::slice::from_raw_parts(data, ring) };
        let mut records = 0;
        // Start of the run of whole records not yet handed to `sink`.
        let mut run = tail;
        let flush = |from: u64, to: u64, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>| {
            if from == to {
                return Ok(());
            }
            let at = (from % ring as u64) as usize;
            sink(&bytes[at..at + (to - from) as usize])
        };
        while tail < head {
            let at = (tail % ring as u64) as usize;
            if at == 0 && run != tail {
                // The run reached the ring's end exactly.
                flush(run, tail, &mut sink)?;
                run = tail;
            }
            let mut header = [0u8; 8];
            self.copy_out(data, at, &mut header);
            let size = usize::from(u16::from_ne_bytes([header[6], header[7]]));
            if size < 8 || tail + size as u64 > head {
                // A record that does not fit what the kernel published: stop
                // reading this ring rather than decode garbage.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed perf ring record",
                ));
            }
            if at + size <= ring {
                visit(&bytes[at..at + size]);
            } else {
                flush(run, tail, &mut sink)?;
                let mut record = std::mem::take(&mut self.scratch);
                record.resize(size, 0);
                self.copy_out(data, at, &mut record);
                visit(&record);
                let result = sink(&record);
                self.scratch = record;
                result?;
                run = tail + size as u64;
            }
            tail += size as u64;
            records += 1;
        }
        flush(run, tail, &mut sink)?;
        fence(Ordering::Release);
        // SAFETY: publishing how far we read; the kernel may reuse the space.
        unsafe { std::ptr::write_volatile(&raw mut (*meta).data_tail, tail) };
        Ok(records)
    }

    /// Copies `out.len()` bytes from ring offset `at`, wrapping at the end.
    fn copy_out(&self, data: *mut u8, at: usize, out: &mut [u8]) {
        let first = out.len().min(self.data_size - at);
        // SAFETY: `at < data_size` and `first <= data_size - at`: inside the
        // mapped data area; the rest wraps to its start.
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
    fn start(tracefs: &Path, filters: &[String]) -> Result<GraphCapture, String> {
        let dir = tracefs
            .join("instances")
            .join(format!("ksw-{}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| {
            format!(
                "{}: {e} (function_graph needs tracefs instances)",
                dir.display()
            )
        })?;
        let capture = GraphCapture { dir };
        let set = |file: &str, value: &str| {
            let path = capture.dir.join(file);
            fs::write(&path, value)
                .map_err(|e| format!("{}: writing '{value}': {e}", path.display()))
        };
        set("trace_clock", "mono")?;
        set("set_ftrace_filter", &filters.join(" "))?;
        set("current_tracer", "function_graph")?;
        for option in ["funcgraph-abstime", "funcgraph-proc", "funcgraph-tail"] {
            set(&format!("options/{option}"), "1")?;
        }
        set(&format!("events/{SYSTEM}/enable"), "1")?;
        set("tracing_on", "1")?;
        Ok(capture)
    }

    fn finish(self, out: &Path) -> Result<(), String> {
        let _ = fs::write(self.dir.join("tracing_on"), "0");
        let text =
            fs::read(self.dir.join("trace")).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))
    }
}

impl Drop for GraphCapture {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.join("tracing_on"), "0");
        let _ = fs::write(self.dir.join("current_tracer"), "nop");
        let _ = fs::write(self.dir.join(format!("events/{SYSTEM}/enable")), "0");
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The watched functions, from /proc/kstackwatch (default graph filter).
fn watched_functions() -> Vec<String> {
    fs::read_to_string("/proc/kstackwatch")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("func_name="))
        })
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

pub fn run(args: &RecordArgs) -> Result<(), String> {
    if !args.mmap_pages.is_power_of_two() {
        return Err(format!(
            "--mmap-pages {} is not a power of two",
            args.mmap_pages
        ));
    }
    let tracefs = tracefs()?;
    let ids: Vec<u64> = KSW_EVENTS
        .iter()
        .map(|e| read_event_id(&tracefs, e))
        .collect::<Result<_, _>>()?;
    let cpus = online_cpus()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let ring_bytes = page * args.mmap_pages;

    let mut fds: Vec<(usize, OwnedFd)> = Vec::new();
    let mut rings: Vec<Ring> = Vec::new();
    let mut specs: Vec<EventSpec> = KSW_EVENTS
        .iter()
        .zip(&ids)
        .map(|(name, &id)| EventSpec {
            attr: attribute(id, args.callchain, false, ring_bytes),
            name: format!("{SYSTEM}:{name}"),
            ids: Vec::new(),
        })
        .collect();
    let mut event_of_id: IdMap<u64, usize> = IdMap::default();
    for &cpu in &cpus {
        let mut leader: Option<usize> = None;
        for (index, &id) in ids.iter().enumerate() {
            let attr = attribute(id, args.callchain, leader.is_none(), ring_bytes);
            let fd = open_event(&attr, cpu).map_err(|e| match e.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) => format!(
                    "permission denied opening {SYSTEM}:{} on cpu {cpu}: run as root or with CAP_PERFMON (kernel.perf_event_paranoid = {})",
                    KSW_EVENTS[index],
                    paranoid()
                ),
                _ => format!("perf_event_open {SYSTEM}:{} on cpu {cpu}: {e}", KSW_EVENTS[index]),
            })?;
            let mut sample_id = 0u64;
            // SAFETY: ID writes the event's id into the u64 we pass.
            ioctl(&fd, "ID", |f| unsafe { sys::ioctls::ID(f, &mut sample_id) })?;
            specs[index].ids.push(sample_id);
            event_of_id.insert(sample_id, index);
            match leader {
                None => {
                    rings.push(
                        Ring::map(&fd, args.mmap_pages)
                            .map_err(|e| format!("mmap of the cpu {cpu} ring: {e}"))?,
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
    let tracing = tracing_data::build(&tracefs, &events, Some(&kallsyms))
        .map_err(|e| format!("reading the event formats: {e}"))?;
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    let wall = clock_ns(libc::CLOCK_REALTIME);
    let file = File::create(&args.output).map_err(|e| format!("{}: {e}", args.output.display()))?;
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
    .map_err(|e| format!("{}: {e}", args.output.display()))?;
    let werr = |e: io::Error| format!("{}: {e}", args.output.display());
    synthesize_comms(&mut writer, first_id, mono).map_err(werr)?;
    synthesize_maps(&mut writer, &kallsyms, first_id, mono).map_err(werr)?;

    let graph_filters = if args.graph_filter.is_empty() {
        watched_functions()
    } else {
        args.graph_filter.clone()
    };
    if args.function_graph && graph_filters.is_empty() {
        return Err("--function-graph: nothing is watched and no --graph-filter given: which functions to graph?".into());
    }
    let graph = if args.function_graph {
        Some(GraphCapture::start(&tracefs, &graph_filters)?)
    } else {
        None
    };

    // SAFETY: installing async-signal-safe handlers that only store a flag.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    for (_, fd) in &fds {
        // SAFETY: ENABLE takes no pointer.
        ioctl(fd, "ENABLE", |f| unsafe { sys::ioctls::ENABLE(f, 0) })?;
    }

    let mut child: Option<Child> = match args.command.split_first() {
        Some((program, rest)) => Some(
            Process::new(program)
                .args(rest)
                .spawn()
                .map_err(|e| format!("cannot run {program}: {e}"))?,
        ),
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
        |writer: &mut Writer<BufWriter<File>>, rings: &mut Vec<Ring>| -> Result<(), String> {
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
                .map_err(|e| format!("recording: {e}"))?;
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
            if let Some(s) = c.try_wait().map_err(|e| e.to_string())? {
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
    writer.finish().map_err(werr)?;
    let graph_path = args.output.with_file_name(format!(
        "{}.graph",
        args.output
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("perf.data")
    ));
    if let Some(g) = graph {
        g.finish(&graph_path)?;
    }

    let total: u64 = counts.iter().sum();
    eprintln!(
        "ksw record: {total} events ({} arm, {} hit, {} disarm), {lost} lost, written to {}{}",
        counts[0],
        counts[1],
        counts[2],
        args.output.display(),
        if args.function_graph {
            format!(" and {}", graph_path.display())
        } else {
            String::new()
        }
    );
    match status {
        Some(s) if !s.success() => Err(format!("the recorded command failed ({s})")),
        _ => Ok(()),
    }
}
