// SPDX-License-Identifier: GPL-2.0
//! `/proc/kstackwatch`: applying a configuration and describing the state.
//!
//! Process context, under the configuration mutex (a kernel `Mutex` owned
//! by the module, whose address the procfs handlers are given). Everything
//! that can fail happens before the running configuration is touched, so a
//! rejected write leaves it watching as before.

use core::ffi::c_void;
use core::fmt::{self, Write};

use kernel::prelude::*;
use kernel::sync::Mutex;

use crate::exits::{disarm, ExitRead};
use crate::glue::{self, Probes, SeqFile, SeqWriter, Shared};
use crate::ksw_core::config::{Config, Limits, Spec, MAX_SPECS};
use crate::ksw_core::events::DisarmReason;
use crate::ksw_core::frame::Target;
use crate::ksw_core::layout::RegAddr;
use crate::ksw_core::slots::MAX_SLOTS;
use crate::state::{ARM_LOCAL_NS, ARM_WINDOW_NS, COUNTERS, DISARM_LOCAL_NS, SLOTS, TASKS};
use crate::watch::{self, Watch, WatchError};

const EBUSY: i32 = 16;

/// A watch whose probes are registered. The probes go first on drop:
/// unregistering waits for their handlers, which use the watch.
pub(crate) struct Active {
    probes: Option<Probes>,
    watch: Shared<Watch>,
}

impl Drop for Active {
    fn drop(&mut self) {
        drop(self.probes.take());
    }
}

/// The configuration, guarded by the module's mutex.
pub(crate) struct ConfigState {
    active: [Option<Active>; MAX_SPECS],
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

    fn watches(&self) -> impl Iterator<Item = &Active> {
        self.active.iter().flatten()
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
    NoMemory,
    NoHardwareSlot(i32),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.what {
            ApplyProblem::Watch(e) => write!(f, "{e}"),
            ApplyProblem::NoMemory => f.write_str("out of memory"),
            ApplyProblem::NoHardwareSlot(e) => write!(
                f,
                "no hardware breakpoint is free: gdb, ptrace or perf hold them all (error {e})"
            ),
        }
    }
}

/// Plans a watch and registers its probes, disabled.
fn prepare(
    state: &ConfigState,
    index: usize,
    line: u32,
    spec: &Spec,
) -> Result<Active, ApplyError> {
    let fail = |errno, what| ApplyError { errno, line, what };
    let cached = |start: usize| {
        state
            .watches()
            .map(|a| a.watch.get())
            .find(|w| w.function.start == start)
            .map(|w| &w.code[..])
    };
    let planned = watch::plan(index as u8, spec, cached)
        .map_err(|e| fail(e.errno(), ApplyProblem::Watch(e)))?;
    let offsets = planned.release_offsets();
    if offsets.len() != planned.releases().len() {
        return Err(fail(12, ApplyProblem::NoMemory));
    }
    let (start, arm_off) = (planned.function.start, planned.arm_off);
    let watch = Shared::new(planned).map_err(|_| fail(12, ApplyProblem::NoMemory))?;
    // SAFETY: `watch` outlives the probes: `Active` drops them first.
    let probes = unsafe { Probes::create(start, arm_off, &offsets, watch.as_ptr().cast()) }
        .map_err(|e| {
            let err = WatchError::Probe {
                errno: -e.errno,
                offset: e.offset,
            };
            fail(err.errno(), ApplyProblem::Watch(err))
        })?;
    Ok(Active {
        probes: Some(probes),
        watch,
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

fn stop_arming(state: &ConfigState) {
    for a in state.watches() {
        if let Some(p) = &a.probes {
            p.disable_arming();
        }
    }
    glue::synchronize();
}

fn apply(state: &mut ConfigState, config: &Config) -> Result<(), ApplyError> {
    let hw = glue::hw_slots().min(MAX_SLOTS as u32) as u8;
    // Everything that can fail about the new watches, first.
    let mut prepared: [Option<Active>; MAX_SPECS] = [const { None }; MAX_SPECS];
    for ((index, spec), slot) in config.specs().enumerate().zip(prepared.iter_mut()) {
        *slot = Some(prepare(state, index, config.line_of(index), spec)?);
    }
    let want = u32::from(config.slots_to_claim(hw));

    // Switch: stop arming, let running handlers finish, disarm everything.
    stop_arming(state);
    teardown_armed();
    let previous = state.claimed;
    if want != previous {
        if previous != 0 {
            SLOTS.set_available(0);
            glue::slots_release();
            state.claimed = 0;
        }
        if want != 0 {
            match glue::slots_claim(want) {
                Ok(n) => state.claimed = n,
                Err(e) => {
                    // Someone took the breakpoints meanwhile: keep the old
                    // watches, with whatever can still be claimed.
                    if previous != 0 {
                        if let Ok(n) = glue::slots_claim(previous) {
                            state.claimed = n;
                            SLOTS.set_available(n as usize);
                        }
                        for a in state.watches() {
                            if let Some(p) = &a.probes {
                                p.enable();
                            }
                        }
                    }
                    return Err(ApplyError {
                        errno: EBUSY,
                        line: config.line_of(0),
                        what: ApplyProblem::NoHardwareSlot(-e),
                    });
                }
            }
        }
    }
    // Unregister the old probes (waits for their handlers), then start
    // the new configuration with nothing tracked.
    for old in state.active.iter_mut() {
        drop(old.take());
    }
    SLOTS.reset_specs();
    SLOTS.set_available(state.claimed as usize);
    TASKS.clear();
    for (slot, new) in state.active.iter_mut().zip(prepared.iter_mut()) {
        *slot = new.take();
    }
    for a in state.watches() {
        if let Some(p) = &a.probes {
            p.enable();
        }
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
    apply(&mut state, &config).map_err(|err| {
        pr_err!("config rejected: {}\n", err);
        err.errno
    })?;
    if config.is_empty() {
        pr_info!("not watching\n");
    } else {
        pr_info!(
            "watching {} function(s) with {} hardware slot(s)\n",
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

fn describe(state: &ConfigState, out: &mut impl Write) -> fmt::Result {
    let specs = state.watches().count();
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
    for a in state.watches() {
        let w = a.watch.get();
        writeln!(out, "{}", w.spec)?;
        write!(
            out,
            "#  spec {}: {} at {:#x} ({} bytes): arms at +{:#x}{}, watches ",
            w.index,
            w.function.name(),
            w.function.start,
            w.function.size,
            w.arm_off,
            if w.arm_auto {
                " (after the prologue)"
            } else {
                ""
            },
        )?;
        describe_target(out, w)?;
        write!(out, " (frame slot {}), disarms at", w.slot)?;
        for r in w.releases() {
            write!(out, " +{:#x}", r.off)?;
        }
        let (arm, release, fprobe) = a.probes.as_ref().map_or((0, 0, 0), Probes::missed);
        writeln!(out, "; missed: arm={arm} release={release} fprobe={fprobe}")?;
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
