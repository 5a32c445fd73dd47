// SPDX-License-Identifier: GPL-2.0
//! The watch engine: what happens on a probe hit, a function exit, a
//! breakpoint hit, a task exit and a configuration write. All policy lives
//! here and in `ksw_core`; `glue` only carries it out.
//!
//! Contexts (x86_64):
//! - `ksw_rs_on_probe`: kprobe post handler, int3 (NMI-like), irqs off.
//! - `ksw_rs_on_exit`: fprobe exit handler, preemption and irqs off.
//! - `ksw_rs_on_hit`: perf breakpoint handler, #DB (NMI-like).
//! - `ksw_rs_sync_cpu`: IPI / hotplug callback, irqs off.
//! - `ksw_rs_on_task_exit`: sched_process_exit tracepoint.
//! - `ksw_rs_config_*`: procfs, process context, `ksw_config_lock` held.
//!
//! No handler allocates, sleeps or takes a lock.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::fmt::{self, Write};

use kernel::prelude::*;

use crate::glue::{self, Probe, PtRegs};
use crate::ksw_core::canary;
use crate::ksw_core::config::{errno, Config, Limits, Spec, WatchTarget, MAX_SPECS};
use crate::ksw_core::events::DisarmReason;
use crate::ksw_core::fmtbuf::Truncating;
use crate::ksw_core::frame::{
    self, Frame, HookedCalls, PlaceError, ProbeDecision, StackReader, Target,
};
use crate::ksw_core::hit::{self, HitClass, Writer};
use crate::ksw_core::slots::{Armed, ClaimError, SlotTable, MAX_SLOTS};
use crate::ksw_core::stats::{Counter, Counters, Histogram};

static SLOTS: SlotTable = SlotTable::new();
static COUNTERS: Counters = Counters::new();
/// Arm decision → this CPU's debug register programmed, event emitted.
static ARM_LOCAL_NS: Histogram = Histogram::new();
/// Arm decision → the last other CPU programmed (the window another CPU's
/// write could slip through).
static ARM_WINDOW_NS: Histogram = Histogram::new();
/// Function exit → this CPU's debug register back to idle, event emitted.
static DISARM_LOCAL_NS: Histogram = Histogram::new();

/// A configured spec while its probes are registered. Boxed so its address,
/// handed to the C probe as `owner`, stays put; never mutated once enabled.
struct ActiveSpec {
    index: u8,
    spec: Spec,
    /// The watch target, with the canary slot read from the function's code.
    target: Target,
    cap: u8,
    func_start: usize,
    func_end: usize,
    probe: Option<Probe>,
}

/// The configuration, touched only by `ksw_rs_config_write`/`_read`.
struct ConfigState {
    active: [Option<KBox<ActiveSpec>>; MAX_SPECS],
}

struct ConfigCell(UnsafeCell<ConfigState>);

// SAFETY: the state is only reached through `ConfigCell::get`, whose callers
// (the procfs handlers and module exit, in ksw_glue.c) hold ksw_config_lock.
unsafe impl Sync for ConfigCell {}

impl ConfigCell {
    /// # Safety
    /// The caller holds `ksw_config_lock` for the lifetime of the reference.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> &mut ConfigState {
        // SAFETY: exclusive by the caller's lock (function contract).
        unsafe { &mut *self.0.get() }
    }
}

static CONFIG: ConfigCell = ConfigCell(UnsafeCell::new(ConfigState {
    active: [const { None }; MAX_SPECS],
}));

/// The current task's stack, read directly: the canary check reads one
/// word of the frame being probed, which `read_word` bounds to this stack.
struct CurrentStack {
    lo: usize,
    hi: usize,
}

impl StackReader for CurrentStack {
    fn read_word(&self, addr: usize) -> Option<u64> {
        if addr < self.lo || addr + 8 > self.hi || addr % 8 != 0 {
            return None;
        }
        // SAFETY: [addr, addr+8) is inside the current task's stack, which
        // is mapped while the task runs; the word may change under us,
        // hence the volatile read.
        Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
    }
}

// ------------------------------------------------------------------ probes

/// kprobe post handler at `func+func_offset`.
#[no_mangle]
extern "C" fn ksw_rs_on_probe(
    owner: *mut c_void,
    regs: *mut PtRegs,
    probe_ip: usize,
    sp: usize,
    bp: usize,
) {
    // SAFETY: `owner` is the ActiveSpec this probe was created with; it is
    // freed only after the probe is unregistered, which waits for us.
    let active = unsafe { &*owner.cast::<ActiveSpec>() };
    let Some(probe) = active.probe.as_ref() else {
        return;
    };
    // A probe hit inside a real NMI (nesting 2: NMI + our int3) could
    // interrupt perf's own breakpoint bookkeeping: never arm there.
    if glue::nmi_nesting() > 1 {
        COUNTERS.inc(Counter::NmiContext);
        return;
    }
    let task = glue::current_task();
    let (count, innermost) = probe.hooked_calls();
    let decision = frame::decide(
        active.spec.depth,
        HookedCalls { count, innermost },
        |f| SLOTS.find(active.index, task, f).is_some(),
        || glue::frame_of(regs),
    );
    match decision {
        ProbeDecision::Arm { depth, frame } => arm(active, task, frame, depth, probe_ip, (sp, bp)),
        ProbeDecision::OtherDepth => COUNTERS.inc(Counter::OtherDepth),
        ProbeDecision::AlreadyArmed => {}
        ProbeDecision::ExitUnobservable => COUNTERS.inc(Counter::ExitUnobservable),
        ProbeDecision::BadFrame => COUNTERS.inc(Counter::BadFrame),
    }
}

/// Arms `frame_addr`'s watch. The clock starts here, after the decision:
/// the non-arming path (every other call) takes no timestamp.
fn arm(
    active: &ActiveSpec,
    task: usize,
    frame_addr: usize,
    depth: u32,
    probe_ip: usize,
    regs: (usize, usize),
) {
    let t0 = glue::now_ns();
    let (sp, bp) = regs;
    let (lo, hi) = glue::current_stack();
    let frame = Frame {
        sp,
        bp,
        frame: frame_addr,
        stack_lo: lo,
        stack_hi: hi,
        canary: glue::current_canary(),
    };
    let range = match frame::place(active.target, &frame, &CurrentStack { lo, hi }) {
        Ok(range) => range,
        Err(err) => {
            COUNTERS.inc(match err {
                PlaceError::OutsideStack => Counter::OutsideStack,
                PlaceError::Misaligned => Counter::Misaligned,
                PlaceError::CanaryNotFound => Counter::CanaryNotFound,
                PlaceError::BadFrame => Counter::BadFrame,
            });
            return;
        }
    };
    let slot = match SLOTS.claim(active.index, active.cap) {
        Ok(slot) => slot,
        Err(ClaimError::NoFreeSlot) => return COUNTERS.inc(Counter::DroppedNoSlot),
        Err(ClaimError::SpecCap) => return COUNTERS.inc(Counter::DroppedMaxWatch),
    };
    let value = glue::read_nofault(range.addr, range.len).unwrap_or(0);
    let armed = Armed {
        id: 0,
        spec: active.index,
        task,
        frame: frame_addr,
        addr: range.addr,
        len: range.len,
        sp,
        depth,
        probe_ip,
        func_start: active.func_start,
        func_end: active.func_end,
        panic_on_catch: active.spec.panic_on_catch,
        arm_value: value,
        victim_pid: glue::current_pid(),
        victim_comm: glue::current_comm(),
        armed_ns: t0,
    };
    let id = SLOTS.publish(slot, armed, glue::online_cpus().saturating_sub(1));
    sync_cpu(false);
    glue::trace_arm(
        id,
        slot,
        active.index,
        depth,
        probe_ip,
        range.addr,
        range.len,
        sp,
        value,
    );
    COUNTERS.inc(Counter::Arms);
    ARM_LOCAL_NS.record(glue::now_ns().saturating_sub(t0));
    kick_remote();
}

/// fprobe exit handler: the call whose return-address slot was `frame` returned.
#[no_mangle]
extern "C" fn ksw_rs_on_exit(owner: *mut c_void, frame: usize) {
    // SAFETY: as in ksw_rs_on_probe.
    let active = unsafe { &*owner.cast::<ActiveSpec>() };
    if !SLOTS.spec_has_armed(active.index) {
        return;
    }
    if let Some(slot) = SLOTS.find(active.index, glue::current_task(), frame) {
        disarm(slot, DisarmReason::Return);
    }
}

/// Retires `slot` if still armed, emits `ksw_disarm`, resyncs the CPUs.
fn disarm(slot: usize, reason: DisarmReason) {
    let t0 = glue::now_ns();
    let Some(retired) = SLOTS.retire(slot) else {
        return;
    };
    sync_cpu(false);
    let a = &retired.armed;
    let exit_value = hit::exit_value(retired.last_value, retired.exit_path_wrote, || {
        glue::read_nofault(a.addr, a.len)
    });
    let corrupted = exit_value != a.arm_value;
    glue::trace_disarm(
        a.id,
        slot,
        a.addr,
        a.arm_value,
        exit_value,
        retired.hits,
        corrupted,
        reason as u8,
    );
    COUNTERS.inc(Counter::Disarms);
    if corrupted {
        COUNTERS.inc(Counter::Corrupted);
    }
    DISARM_LOCAL_NS.record(glue::now_ns().saturating_sub(t0));
    kick_remote();
}

fn kick_remote() {
    if glue::online_cpus() > 1 {
        COUNTERS.inc(Counter::RemoteKicks);
        glue::kick_remote();
    }
}

/// Programs this CPU's debug registers from the slot table. `remote`: this
/// is another CPU catching up with an update (counts toward the window).
#[no_mangle]
extern "C" fn ksw_rs_sync_cpu(remote: bool) {
    sync_cpu(remote);
}

fn sync_cpu(remote: bool) {
    for slot in 0..SLOTS.available().min(MAX_SLOTS) {
        let armed = SLOTS.armed(slot);
        let changed = glue::program_local(slot, armed.map(|a| (a.addr, a.len)));
        if let (true, true, Some(a)) = (remote, changed, armed) {
            if SLOTS.remote_applied(slot, a.id) {
                ARM_WINDOW_NS.record(glue::now_ns().saturating_sub(a.armed_ns));
            }
        }
    }
}

// ------------------------------------------------------------------- hits

/// Breakpoint handler, in the writer's context: `ip` is the instruction
/// after the write, `programmed_addr` what this CPU's register watched.
#[no_mangle]
extern "C" fn ksw_rs_on_hit(slot: u32, regs: *mut PtRegs, ip: usize, programmed_addr: usize) {
    let slot = slot as usize;
    let armed = SLOTS.armed(slot);
    let writer = Writer {
        task: glue::current_task(),
        programmed_addr,
        in_this_module: glue::in_this_module(ip),
    };
    let class = hit::classify(armed.as_ref(), &writer, |a| {
        glue::frame_on_chain(regs, a.frame, a.func_start, a.func_end)
    });
    let a = match (class, armed) {
        (HitClass::Report, Some(a)) => a,
        (HitClass::ExitPath, Some(a)) => {
            SLOTS.record_exit_path_write(slot, a.id);
            return COUNTERS.inc(Counter::ExitPathHits);
        }
        (HitClass::ThisModule, _) => return COUNTERS.inc(Counter::SelfHits),
        _ => return COUNTERS.inc(Counter::StaleHits),
    };
    let new_value = glue::read_nofault(a.addr, a.len).unwrap_or(0);
    let Some((old_value, _)) = SLOTS.record_hit(slot, a.id, new_value) else {
        return COUNTERS.inc(Counter::StaleHits);
    };
    COUNTERS.inc(Counter::Hits);
    glue::trace_hit(
        a.id,
        slot,
        a.addr,
        a.len,
        ip,
        old_value,
        new_value,
        a.victim_pid,
        &a.victim_comm,
        a.probe_ip,
    );
    glue::log_hit(
        a.id,
        a.addr,
        ip,
        old_value,
        new_value,
        a.victim_pid,
        &a.victim_comm,
    );
    if a.panic_on_catch {
        glue::panic_caught(a.id, ip);
    }
}

/// A task is exiting: frames it never returned from die with it.
#[no_mangle]
extern "C" fn ksw_rs_on_task_exit(task: usize) {
    for slot in SLOTS.armed_indices() {
        if SLOTS.armed(slot).is_some_and(|a| a.task == task) {
            disarm(slot, DisarmReason::TaskExit);
        }
    }
}

// ------------------------------------------------------------ configuration

/// Why a spec could not be installed: errno plus what to log.
struct SpecError {
    errno: i32,
    line: u32,
    what: SpecProblem,
}

enum SpecProblem {
    NoMemory,
    NotFound,
    NotInstructionBoundary(u32),
    NotProbeable(i32),
    NoExitHook(i32),
    OutsideFunction { offset: u32, size: usize },
    NoCanary,
    NoHardwareSlot(i32),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match self.what {
            SpecProblem::NoMemory => f.write_str("out of memory"),
            SpecProblem::NotFound => f.write_str("function not found"),
            SpecProblem::NotInstructionBoundary(off) => {
                write!(f, "func_offset {off:#x} is not on an instruction boundary")
            }
            SpecProblem::NotProbeable(e) => write!(f, "function cannot be kprobed (error {e})"),
            SpecProblem::NoExitHook(e) => write!(
                f,
                "function has no ftrace entry (notrace, inlined or Rust code): its exit cannot be hooked (error {e})"
            ),
            SpecProblem::OutsideFunction { offset, size } => {
                write!(f, "func_offset {offset:#x} is outside the function (size {size:#x})")
            }
            SpecProblem::NoCanary => f.write_str(
                "no stack-protector canary store in the function's code: watch a local with sp_offset and watch_len",
            ),
            SpecProblem::NoHardwareSlot(e) => {
                write!(f, "no hardware breakpoint slot is free: perf or ptrace hold them all (error {e})")
            }
        }
    }
}

const ENOMEM: i32 = 12;
const ENOENT: i32 = 2;
const EILSEQ: i32 = 84;
const EOPNOTSUPP: i32 = 95;
const EBUSY: i32 = 16;
const ENODATA: i32 = 61;
/// Most machine code read to find the canary store.
const MAX_CODE_SCAN: usize = 4096;

/// Registers `spec`'s probes, disabled.
fn prepare(index: usize, line: u32, spec: &Spec) -> Result<KBox<ActiveSpec>, SpecError> {
    let fail = |errno, what| SpecError { errno, line, what };
    let mut active = KBox::new(
        ActiveSpec {
            index: index as u8,
            spec: *spec,
            target: Target::Local {
                sp_offset: 0,
                len: 8,
            },
            cap: spec.watch_cap(),
            func_start: 0,
            func_end: 0,
            probe: None,
        },
        GFP_KERNEL,
    )
    .map_err(|_| fail(ENOMEM, SpecProblem::NoMemory))?;
    let owner: *mut ActiveSpec = &mut *active;
    let (probe, sym) = Probe::create(&spec.func, spec.func_offset, owner.cast()).map_err(|e| {
        let errno = -e.errno;
        match (e.kprobe_ok, errno) {
            (true, _) => fail(EOPNOTSUPP, SpecProblem::NoExitHook(errno)),
            // func+offset past the end of the kernel's text: the function
            // may well exist; look it up alone to say which it is.
            (false, ENOENT) if spec.func_offset != 0 => {
                match Probe::create(&spec.func, 0, owner.cast()) {
                    Ok((_, sym)) => fail(
                        errno::ERANGE,
                        SpecProblem::OutsideFunction {
                            offset: spec.func_offset,
                            size: sym.size,
                        },
                    ),
                    Err(_) => fail(ENOENT, SpecProblem::NotFound),
                }
            }
            (false, ENOENT) => fail(ENOENT, SpecProblem::NotFound),
            (false, EILSEQ) => fail(
                EILSEQ,
                SpecProblem::NotInstructionBoundary(spec.func_offset),
            ),
            (false, ENOMEM) => fail(ENOMEM, SpecProblem::NoMemory),
            (false, e) => fail(e, SpecProblem::NotProbeable(e)),
        }
    })?;
    // kprobes fold func+offset into whatever symbol the address lands in:
    // past the end of `func`, that is the next function.
    let plain = spec
        .func
        .as_bytes()
        .rsplit(|&b| b == b':')
        .next()
        .unwrap_or_default();
    let wanted = spec.func_offset as usize;
    if sym.name() != plain || sym.offset != wanted || wanted >= sym.size {
        let size = if sym.name() == plain { sym.size } else { 0 };
        return Err(fail(
            errno::ERANGE,
            SpecProblem::OutsideFunction {
                offset: spec.func_offset,
                size,
            },
        ));
    }
    active.func_start = sym.addr - sym.offset;
    active.func_end = active.func_start + sym.size;
    active.target = match spec.target {
        WatchTarget::Local { sp_offset, len } => Target::Local { sp_offset, len },
        WatchTarget::Canary => {
            let mut code = KVec::from_elem(0u8, sym.size.min(MAX_CODE_SCAN), GFP_KERNEL)
                .map_err(|_| fail(ENOMEM, SpecProblem::NoMemory))?;
            let slot = glue::read_text(active.func_start, &mut code)
                .then(|| canary::find_canary_store(&code))
                .flatten()
                .ok_or_else(|| fail(ENODATA, SpecProblem::NoCanary))?;
            Target::Canary(slot)
        }
    };
    active.probe = Some(probe);
    Ok(active)
}

/// Disarms every watch and waits until no CPU watches anything.
fn teardown_armed() {
    let mut disarmed = 0;
    for slot in SLOTS.armed_indices() {
        disarm(slot, DisarmReason::Teardown);
        disarmed += 1;
    }
    glue::sync_all_wait();
    if disarmed > 0 {
        pr_info!("teardown: disarmed {} armed frame(s)\n", disarmed);
    }
}

fn apply(state: &mut ConfigState, config: &Config) -> Result<(), SpecError> {
    let limits_slots = glue::hw_slots().min(MAX_SLOTS as u32) as u8;
    // Everything that can fail happens before the old watch is touched.
    let mut prepared: [Option<KBox<ActiveSpec>>; MAX_SPECS] = [const { None }; MAX_SPECS];
    for (index, spec) in config.specs().enumerate() {
        prepared[index] = Some(prepare(index, config.line_of(index), spec)?);
    }
    if !config.is_empty() && SLOTS.available() == 0 {
        match glue::slots_alloc(u32::from(limits_slots)) {
            Ok(n) => SLOTS.set_available(n as usize),
            Err(e) => {
                return Err(SpecError {
                    errno: EBUSY,
                    line: config.line_of(0),
                    what: SpecProblem::NoHardwareSlot(-e),
                })
            }
        }
    }

    // Switch: stop arming, let running handlers finish, disarm everything,
    // then unregister the old probes (which waits for exit handlers).
    for active in state.active.iter().flatten() {
        if let Some(probe) = &active.probe {
            probe.disable();
        }
    }
    glue::synchronize();
    teardown_armed();
    for old in state.active.iter_mut() {
        drop(old.take());
    }
    SLOTS.reset_specs();
    if config.is_empty() {
        if SLOTS.available() != 0 {
            SLOTS.set_available(0);
            glue::slots_free();
        }
        return Ok(());
    }
    for (slot, new) in state.active.iter_mut().zip(prepared.iter_mut()) {
        *slot = new.take();
    }
    for active in state.active.iter().flatten() {
        if let Some(probe) = &active.probe {
            probe.enable();
        }
    }
    Ok(())
}

/// A whole write to /proc/kstackwatch: parse, prepare, switch. On any error
/// nothing changes and one line says why.
#[no_mangle]
extern "C" fn ksw_rs_config_write(buf: *const u8, len: usize) -> isize {
    // SAFETY: C passes the kernel copy of the user buffer, `len` bytes long.
    let input = unsafe { core::slice::from_raw_parts(buf, len) };
    let limits = Limits {
        stack_size: glue::thread_size(),
        hw_slots: glue::hw_slots().min(MAX_SLOTS as u32) as u8,
    };
    let config = match Config::parse(input, &limits) {
        Ok(config) => config,
        Err(err) => {
            pr_err!("config rejected: {}\n", err);
            return -(err.errno() as isize);
        }
    };
    // SAFETY: C holds ksw_config_lock around this call.
    let state = unsafe { CONFIG.get() };
    match apply(state, &config) {
        Ok(()) => {
            if config.is_empty() {
                pr_info!("not watching\n");
            } else {
                pr_info!(
                    "watching {} function(s) with {} hardware slot(s)\n",
                    config.len(),
                    SLOTS.available()
                );
            }
            len as isize
        }
        Err(err) => {
            pr_err!("config rejected: {}\n", err);
            -(err.errno as isize)
        }
    }
}

fn describe(state: &ConfigState, out: &mut impl Write) -> fmt::Result {
    let specs = state.active.iter().flatten().count();
    if specs == 0 {
        writeln!(out, "# kstackwatch: not watching")?;
    } else {
        writeln!(
            out,
            "# kstackwatch: {} spec(s), {} hardware slot(s), {} armed",
            specs,
            SLOTS.available(),
            SLOTS.armed_indices().count()
        )?;
    }
    for active in state.active.iter().flatten() {
        writeln!(out, "{}", active.spec)?;
        let (kp, fp) = active.probe.as_ref().map_or((0, 0), Probe::missed);
        writeln!(
            out,
            "#  spec {}: text {:#x}-{:#x} kprobe_missed={} fprobe_missed={}",
            active.index, active.func_start, active.func_end, kp, fp
        )?;
    }
    for cpu in 0..glue::nr_cpu_ids() {
        let mut line = false;
        for slot in 0..SLOTS.available() {
            let Some(state) = glue::slot_cpu_state(cpu, slot) else {
                continue;
            };
            if !line {
                write!(out, "# cpu{cpu}:")?;
                line = true;
            }
            match state {
                Some(addr) => write!(out, " slot{slot}={addr:#x}")?,
                None => write!(out, " slot{slot}=idle")?,
            }
        }
        if line {
            writeln!(out)?;
        }
    }
    writeln!(out, "# counters: {}", COUNTERS.display())?;
    writeln!(out, "# arm_local_ns: {}", ARM_LOCAL_NS.display())?;
    writeln!(out, "# arm_window_ns: {}", ARM_WINDOW_NS.display())?;
    writeln!(out, "# disarm_local_ns: {}", DISARM_LOCAL_NS.display())
}

/// Reading /proc/kstackwatch: the active specs in canonical form (writable
/// back as is) and the counters as comments.
#[no_mangle]
extern "C" fn ksw_rs_config_read(buf: *mut u8, size: usize) -> usize {
    // SAFETY: C passes a kmalloc'd buffer of `size` bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, size) };
    let mut out = Truncating::new(buf);
    // SAFETY: C holds ksw_config_lock around this call.
    let state = unsafe { CONFIG.get() };
    let _ = describe(state, &mut out);
    out.len()
}
