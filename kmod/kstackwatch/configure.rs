// SPDX-License-Identifier: GPL-2.0
//! `/proc/kstackwatch`: applying a configuration and describing the state.
//!
//! Process context, under the configuration mutex (a kernel `Mutex` owned
//! by the module, whose address the procfs handlers are given). Everything
//! that can fail happens before the running configuration is touched, so a
//! rejected write leaves it watching as before.
//!
//! The new configuration's probes go in while the old one still runs: its
//! watches belong to a new generation, which may not arm until the switch
//! (`state::set_active_generation`), and its fprobes are registered
//! disabled. The switch stops arming, waits for running handlers, disarms
//! every frame, unregisters the old probes, and lets the new generation arm.

use core::ffi::c_void;
use core::fmt::{self, Write};

use kernel::prelude::*;
use kernel::sync::Mutex;

use crate::exits::{disarm, ExitRead};
use crate::glue::{self, Fprobe, Kprobes, SeqFile, SeqWriter, Shared};
use crate::ksw_core::config::{errno, Config, FuncName, Limits, Spec, MAX_SPECS};
use crate::ksw_core::events::DisarmReason;
use crate::ksw_core::frame::Target;
use crate::ksw_core::layout::RegAddr;
use crate::ksw_core::slots::MAX_SLOTS;
use crate::ksw_core::sort;
use crate::state::{self, ARM_LOCAL_NS, ARM_WINDOW_NS, COUNTERS, DISARM_LOCAL_NS, SLOTS, TASKS};
use crate::watch::{self, FuncIndex, Watch, WatchError, MAX_RELEASE_POINTS};

const EBUSY: i32 = 16;
const ENOMEM: i32 = 12;
/// Functions of a sweep listed one per line in /proc/kstackwatch.
const LISTED_FUNCTIONS: usize = 8;

/// A spec whose probes are registered. Fields drop in order: the fprobe
/// (whose hooks use the function index), the index, the kprobes (whose
/// handlers use the watches), the watches.
pub(crate) struct ActiveSpec {
    fprobe: Option<Fprobe>,
    funcs: Option<Shared<FuncIndex>>,
    kprobes: KVVec<Kprobes>,
    watches: KVVec<Shared<Watch>>,
    index: u8,
    spec: Spec,
    /// The `fn=` value as written (a sweep's list), for the canonical form.
    names: KVVec<u8>,
    /// Functions of a sweep that cannot be watched, and why.
    skipped: KVVec<(FuncName, WatchError)>,
}

/// The configuration, guarded by the module's mutex.
pub(crate) struct ConfigState {
    active: [Option<ActiveSpec>; MAX_SPECS],
    /// Hardware slots claimed from the CPUs.
    claimed: u32,
}

impl ConfigState {
    pub(crate) const fn new() -> ConfigState {
        ConfigState {
            active: [const { None }; MAX_SPECS],
            claimed: 0,
        }
    }

    fn specs(&self) -> impl Iterator<Item = &ActiveSpec> {
        self.active.iter().flatten()
    }

    fn watches(&self) -> impl Iterator<Item = &Watch> {
        self.specs().flat_map(|s| s.watches.iter().map(Shared::get))
    }
}

/// Unregisters the probes of `specs` (the kprobes of all of them in one
/// batch: a sweep has thousands) and frees them.
fn retire(specs: &mut [Option<ActiveSpec>]) {
    let mut kprobes = KVVec::new();
    for spec in specs.iter_mut().flatten() {
        drop(spec.fprobe.take());
        drop(spec.funcs.take());
        for k in core::mem::replace(&mut spec.kprobes, KVVec::new()) {
            // Out of memory for the batch, the failed push drops (and so
            // unregisters) that one on its own.
            let _ = kprobes.push(k, GFP_KERNEL);
        }
    }
    glue::destroy_kprobes(kprobes);
    for spec in specs.iter_mut() {
        drop(spec.take());
    }
}

/// Why a configuration was not applied.
struct ApplyError {
    errno: i32,
    line: u32,
    what: ApplyProblem,
}

enum ApplyProblem {
    Watch(WatchError),
    /// A sweep none of whose functions can be watched: how many, and the
    /// first function's reason (its name is logged just before).
    NoneWatchable(usize, WatchError),
    NoMemory,
    NoHardwareSlot(i32),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.what {
            ApplyProblem::Watch(e) => write!(f, "{e}"),
            ApplyProblem::NoneWatchable(n, e) => write!(
                f,
                "none of the {n} functions can be watched (the first: {e})"
            ),
            ApplyProblem::NoMemory => f.write_str("out of memory"),
            ApplyProblem::NoHardwareSlot(e) => write!(
                f,
                "no hardware breakpoint is free: gdb, ptrace or perf hold them all (error {e})"
            ),
        }
    }
}

/// Whether the function's first instruction is an ftrace site (`call
/// __fentry__` patched to a 5-byte nop or to a call), after an ENDBR: only
/// those can be in an fprobe, and one that cannot makes the whole
/// fprobe registration fail.
fn has_ftrace_entry(code: &[u8]) -> bool {
    let code = code.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa]).unwrap_or(code);
    code.starts_with(&[0x0f, 0x1f, 0x44, 0x00, 0x00]) || code.first() == Some(&0xe8)
}

/// Plans every function of spec `index` and registers their probes (the
/// fprobe disabled, the kprobes live but not arming before the switch).
fn prepare(
    state: &ConfigState,
    generation: u32,
    index: usize,
    text: &[u8],
    input: &[u8],
    config: &Config,
) -> Result<ActiveSpec, ApplyError> {
    let line = config.line_of(index);
    let fail = |errno, what| ApplyError { errno, line, what };
    let Some(spec) = config.get(index) else {
        return Err(fail(ENOMEM, ApplyProblem::NoMemory));
    };
    let no_memory = || fail(ENOMEM, ApplyProblem::NoMemory);
    let sweep = spec.is_sweep();
    let cached = |start: usize| {
        state
            .watches()
            .find(|w| w.function.start == start)
            .map(|w| &w.code[..])
    };
    let mut planned: KVVec<Shared<Watch>> = KVVec::new();
    let mut skipped: KVVec<(FuncName, WatchError)> = KVVec::new();
    // The parser validated every name.
    let mut names: KVVec<FuncName> = KVVec::new();
    for raw in config.functions(index, input) {
        if let Ok(name) = FuncName::new(raw) {
            names.push(name, GFP_KERNEL).map_err(|_| no_memory())?;
        }
    }
    let functions = glue::lookup_functions(names.iter()).map_err(|_| no_memory())?;
    for (name, function) in names.into_iter().zip(functions) {
        let outcome = function
            .map_err(watch::lookup_error)
            .and_then(|f| watch::plan(index as u8, generation, spec, f, cached));
        let outcome = outcome.and_then(|w| {
            if sweep && !has_ftrace_entry(&w.code) {
                Err(WatchError::Probe {
                    errno: errno::EINVAL,
                    offset: None,
                })
            } else {
                Ok(w)
            }
        });
        match outcome {
            Ok(w) => planned
                .push(Shared::new(w).map_err(|_| no_memory())?, GFP_KERNEL)
                .map_err(|_| no_memory())?,
            Err(e) if sweep => skipped
                .push((name, e), GFP_KERNEL)
                .map_err(|_| no_memory())?,
            Err(e) => return Err(fail(e.errno(), ApplyProblem::Watch(e))),
        }
    }
    // By address: the function index is searched by the fprobe's entry ip;
    // a function listed twice is watched once.
    sort::sort_by_key(&mut planned, |w| w.get().function.start);

    let mut watches: KVVec<Shared<Watch>> = KVVec::new();
    let mut kprobes: KVVec<Kprobes> = KVVec::new();
    let mut last_start = None;
    for w in planned {
        if last_start == Some(w.get().function.start) {
            continue;
        }
        last_start = Some(w.get().function.start);
        let watch = w.get();
        let offsets = watch.release_offsets();
        let offsets = &offsets[..watch.releases().len().min(MAX_RELEASE_POINTS)];
        // SAFETY: the kprobes are destroyed before the watch is freed
        // (ActiveSpec's field order, and `retire`).
        let registered = unsafe {
            Kprobes::create(
                watch.function.start,
                watch.arm.off,
                watch.arm.pre,
                offsets,
                w.as_ptr().cast(),
            )
        };
        match registered {
            Ok(k) => {
                kprobes.push(k, GFP_KERNEL).map_err(|_| no_memory())?;
                watches.push(w, GFP_KERNEL).map_err(|_| no_memory())?;
            }
            Err(e) => {
                let err = WatchError::Probe {
                    errno: -e.errno,
                    offset: e.offset,
                };
                if !sweep {
                    return Err(fail(err.errno(), ApplyProblem::Watch(err)));
                }
                let name = FuncName::new(w.get().function.name().as_bytes()).unwrap_or(spec.func);
                skipped
                    .push((name, err), GFP_KERNEL)
                    .map_err(|_| no_memory())?;
            }
        }
    }
    if watches.is_empty() {
        let count = skipped.len();
        return Err(match skipped.into_iter().next() {
            Some((name, e)) => {
                pr_err!("line {}: {}: {}\n", line, name, e);
                fail(e.errno(), ApplyProblem::NoneWatchable(count, e))
            }
            None => no_memory(),
        });
    }

    let refs: KVVec<&Watch> = {
        let mut v = KVVec::with_capacity(watches.len(), GFP_KERNEL).map_err(|_| no_memory())?;
        for w in &watches {
            v.push(w.get(), GFP_KERNEL).map_err(|_| no_memory())?;
        }
        v
    };
    let funcs =
        Shared::new(FuncIndex::new(&refs).map_err(|_| no_memory())?).map_err(|_| no_memory())?;
    drop(refs);
    // SAFETY: the fprobe is dropped before the index (field order).
    let registered = unsafe { Fprobe::create(funcs.get().starts(), funcs.as_ptr().cast()) };
    let fprobe = registered.map_err(|e| {
        let err = WatchError::Probe {
            errno: -e.errno,
            offset: None,
        };
        fail(err.errno(), ApplyProblem::Watch(err))
    })?;
    let mut list = KVVec::with_capacity(text.len(), GFP_KERNEL).map_err(|_| no_memory())?;
    list.extend_from_slice(text, GFP_KERNEL)
        .map_err(|_| no_memory())?;
    Ok(ActiveSpec {
        fprobe: Some(fprobe),
        funcs: Some(funcs),
        kprobes,
        watches,
        index: index as u8,
        spec: *spec,
        names: list,
        skipped,
    })
}

/// Disarms every watch (their frames are live: their values are read) and
/// waits until no CPU watches anything.
fn teardown_armed() {
    let mut disarmed = 0;
    for slot in SLOTS.armed_indices() {
        disarm(slot, DisarmReason::Teardown, ExitRead::Now);
        disarmed += 1;
    }
    glue::sync_all_wait();
    if disarmed > 0 {
        pr_info!("teardown: disarmed {} armed frame(s)\n", disarmed);
    }
}

fn apply(state: &mut ConfigState, config: &Config, input: &[u8]) -> Result<(), ApplyError> {
    let hw = glue::hw_slots().min(MAX_SLOTS as u32) as u8;
    let generation = state::new_generation();
    // Everything that can fail about the new watches, first.
    let mut prepared: [Option<ActiveSpec>; MAX_SPECS] = [const { None }; MAX_SPECS];
    for index in 0..config.len() {
        let names: KVVec<u8> = {
            let mut v = KVVec::new();
            for (i, name) in config.functions(index, input).enumerate() {
                let ok = (i == 0 || v.push(b',', GFP_KERNEL).is_ok())
                    && v.extend_from_slice(name, GFP_KERNEL).is_ok();
                if !ok {
                    retire(&mut prepared);
                    return Err(ApplyError {
                        errno: ENOMEM,
                        line: config.line_of(index),
                        what: ApplyProblem::NoMemory,
                    });
                }
            }
            v
        };
        match prepare(state, generation, index, &names, input, config) {
            Ok(p) => prepared[index] = Some(p),
            Err(e) => {
                retire(&mut prepared);
                return Err(e);
            }
        }
    }
    let want = u32::from(config.slots_to_claim(hw));

    // Switch: stop arming, let running handlers finish, disarm everything.
    let previous = state::active_generation();
    state::set_active_generation(0);
    glue::synchronize();
    teardown_armed();
    let claimed = state.claimed;
    if want != claimed {
        if claimed != 0 {
            SLOTS.set_available(0);
            glue::slots_release();
            state.claimed = 0;
        }
        if want != 0 {
            match glue::slots_claim(want) {
                Ok(n) => state.claimed = n,
                Err(e) => {
                    // Someone took the breakpoints meanwhile: keep the old
                    // watches, with what can still be claimed.
                    if claimed != 0 {
                        if let Ok(n) = glue::slots_claim(claimed) {
                            state.claimed = n;
                            SLOTS.set_available(n as usize);
                        }
                    }
                    retire(&mut prepared);
                    state::set_active_generation(previous);
                    return Err(ApplyError {
                        errno: EBUSY,
                        line: config.line_of(0),
                        what: ApplyProblem::NoHardwareSlot(-e),
                    });
                }
            }
        }
    }
    // Unregister the old probes (waits for their handlers), then start the
    // new configuration with nothing tracked.
    retire(&mut state.active);
    SLOTS.reset_specs();
    SLOTS.set_available(state.claimed as usize);
    TASKS.clear();
    for (slot, new) in state.active.iter_mut().zip(prepared.iter_mut()) {
        *slot = new.take();
    }
    for spec in state.specs() {
        if let Some(f) = &spec.fprobe {
            f.enable();
        }
    }
    if !config.is_empty() {
        state::set_active_generation(generation);
    }
    Ok(())
}

/// A whole write to /proc/kstackwatch: parse, plan, switch. On any error
/// nothing changes and one line says why.
///
/// # Safety
///
/// - `config` is the module's configuration mutex (given to the procfs
///   file at init, which is removed before the mutex is freed).
/// - `buf` is readable for `len` bytes for the duration of the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn ksw_rs_config_write(
    config: *const c_void,
    buf: *const u8,
    len: usize,
) -> isize {
    // SAFETY: the function's contract.
    let mutex = unsafe { &*config.cast::<Mutex<ConfigState>>() };
    // SAFETY: the function's contract.
    let input = unsafe { core::slice::from_raw_parts(buf, len) };
    write(mutex, input).map_or_else(|errno| -(errno as isize), |()| len as isize)
}

pub(crate) fn write(mutex: &Mutex<ConfigState>, input: &[u8]) -> Result<(), i32> {
    let limits = Limits {
        stack_size: glue::thread_size(),
        hw_slots: glue::hw_slots().min(MAX_SLOTS as u32) as u8,
    };
    let config = Config::parse(input, &limits).map_err(|err| {
        pr_err!("config rejected: {}\n", err);
        err.errno()
    })?;
    let mut state = mutex.lock();
    apply(&mut state, &config, input).map_err(|err| {
        pr_err!("config rejected: {}\n", err);
        err.errno
    })?;
    if config.is_empty() {
        pr_info!("not watching\n");
    } else {
        let functions: usize = state.specs().map(|s| s.watches.len()).sum();
        pr_info!(
            "watching {} function(s) in {} spec(s) with {} hardware slot(s)\n",
            functions,
            config.len(),
            state.claimed
        );
    }
    Ok(())
}

fn describe_target(out: &mut impl Write, w: &Watch) -> fmt::Result {
    match w.target {
        Target::Local { sp_offset, len } => write!(out, "{len} bytes at sp+{sp_offset:#x}"),
        Target::Canary(RegAddr::Sp(o)) => write!(out, "the canary at sp{o:+#x}"),
        Target::Canary(RegAddr::Bp(o)) => write!(out, "the canary at bp{o:+#x}"),
    }
}

fn describe_watch(out: &mut impl Write, spec: &ActiveSpec, w: &Watch) -> fmt::Result {
    let kprobes = spec
        .watches
        .iter()
        .position(|x| core::ptr::eq(x.get(), w))
        .and_then(|i| spec.kprobes.get(i));
    write!(
        out,
        "#  spec {}: {} at {:#x} ({} bytes): arms at +{:#x}{}{}, watches ",
        spec.index,
        w.function.name(),
        w.function.start,
        w.function.size,
        w.arm_off,
        if w.arm_auto {
            " (after the prologue)"
        } else {
            ""
        },
        match (w.arm.pre, kprobes.is_some_and(Kprobes::optimized)) {
            (true, true) => " [optimized probe]",
            (true, false) => " [pre-handler probe]",
            (false, _) => "",
        }
    )?;
    describe_target(out, w)?;
    write!(out, " (frame slot {}), disarms at", w.slot)?;
    for r in w.releases() {
        write!(out, " +{:#x}", r.off)?;
    }
    let (arm, release) = kprobes.map_or((0, 0), Kprobes::missed);
    let (calls, armed, hits) = w.stats.get();
    writeln!(
        out,
        "; calls={calls} armed={armed} hits={hits} missed: arm={arm} release={release}"
    )
}

fn describe_spec(out: &mut impl Write, spec: &ActiveSpec) -> fmt::Result {
    let names = core::str::from_utf8(&spec.names).unwrap_or("?");
    writeln!(out, "{}", spec.spec.canonical(names))?;
    let fprobe_missed = spec.fprobe.as_ref().map_or(0, Fprobe::missed);
    if !spec.spec.is_sweep() {
        for w in spec.watches.iter().map(Shared::get) {
            describe_watch(out, spec, w)?;
        }
        return writeln!(
            out,
            "#  spec {}: missed: fprobe={fprobe_missed}",
            spec.index
        );
    }
    let (mut calls, mut armed, mut hits) = (0, 0, 0);
    for w in spec.watches.iter().map(Shared::get) {
        let (c, a, h) = w.stats.get();
        calls += c;
        armed += a;
        hits += h;
    }
    writeln!(
        out,
        "#  spec {}: sweep of {} function(s): {} watched, {} skipped; calls={} armed={} hits={} missed: fprobe={}",
        spec.index,
        spec.spec.func_count,
        spec.watches.len(),
        spec.skipped.len(),
        calls,
        armed,
        hits,
        fprobe_missed
    )?;
    // The functions with hits first, then the most armed, then the rest.
    let mut order: KVVec<&Watch> = KVVec::new();
    for w in spec.watches.iter().map(Shared::get) {
        if order.push(w, GFP_KERNEL).is_err() {
            break;
        }
    }
    sort::sort_by_key(&mut order, |w| {
        let (_, a, h) = w.stats.get();
        (core::cmp::Reverse(h), core::cmp::Reverse(a))
    });
    for w in order.iter().take(LISTED_FUNCTIONS) {
        describe_watch(out, spec, w)?;
    }
    if order.len() > LISTED_FUNCTIONS {
        writeln!(
            out,
            "#  ... and {} more function(s)",
            order.len() - LISTED_FUNCTIONS
        )?;
    }
    for (name, why) in spec.skipped.iter() {
        writeln!(out, "#  skipped {name}: {why}")?;
    }
    Ok(())
}

fn describe(state: &ConfigState, out: &mut impl Write) -> fmt::Result {
    let specs = state.specs().count();
    if specs == 0 {
        writeln!(out, "# kstackwatch: not watching")?;
    } else {
        writeln!(
            out,
            "# kstackwatch: {} spec(s), {} of {} hardware slot(s) claimed, {} armed",
            specs,
            state.claimed,
            glue::hw_slots(),
            SLOTS.armed_indices().count()
        )?;
    }
    for spec in state.specs() {
        describe_spec(out, spec)?;
    }
    for cpu in 0..glue::nr_cpu_ids() {
        if state.claimed == 0 || !glue::cpu_online(cpu) {
            continue;
        }
        write!(out, "# cpu{cpu}:")?;
        for slot in 0..state.claimed as usize {
            match glue::slot_cpu_state(cpu, slot) {
                Some(Some(addr)) => write!(out, " slot{slot}={addr:#x}")?,
                Some(None) => write!(out, " slot{slot}=parked")?,
                None => write!(out, " slot{slot}=none")?,
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "# counters: {}", COUNTERS.display())?;
    writeln!(out, "# task_entries: {}", TASKS.in_use())?;
    writeln!(out, "# arm_local_ns: {}", ARM_LOCAL_NS.display())?;
    writeln!(out, "# arm_window_ns: {}", ARM_WINDOW_NS.display())?;
    writeln!(out, "# disarm_local_ns: {}", DISARM_LOCAL_NS.display())
}

/// Reading /proc/kstackwatch (seq_file show): the active specs in
/// canonical form (writable back as is) and everything else as comments.
///
/// # Safety
///
/// - `config` as for [`ksw_rs_config_write`].
/// - `m` is the seq_file of the running show callback.
#[no_mangle]
pub(crate) unsafe extern "C" fn ksw_rs_config_show(config: *const c_void, m: *mut SeqFile) {
    // SAFETY: the function's contract.
    let mutex = unsafe { &*config.cast::<Mutex<ConfigState>>() };
    // SAFETY: the function's contract.
    let Some(mut out) = (unsafe { SeqWriter::from_raw(m) }) else {
        return;
    };
    let state = mutex.lock();
    let _ = describe(&state, &mut out);
}
