// SPDX-License-Identifier: GPL-2.0
//! Arming: the kprobe post handler at `func+func_offset` decides whether
//! this call gets a watch, places it in the frame and programs the CPUs.
//!
//! Context: int3 (NMI-like) or the ftrace probe path, interrupts off. No
//! allocation, no lock, no sleep.

use core::ffi::c_void;

use kernel::bindings::pt_regs;

use core::sync::atomic::Ordering;

use crate::glue::{self, Regs};
use crate::ksw_core::events::{flags, ArmRecord};
use crate::ksw_core::frame::{self, Frame, PlaceError, ProbeDecision, StackReader, Target};
use crate::ksw_core::hit::withhold;
use crate::ksw_core::sample;
use crate::ksw_core::slots::{Armed, ClaimError};
use crate::ksw_core::stats::Counter;
use crate::state::{self, ARM_LOCAL_NS, COUNTERS, SLOTS, SPEC_RATE, TASKS};
use crate::watch::Watch;

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
        glue::read_nofault(addr, 8)
    }
}

/// The arming kprobe's handler (post handler at the probe point, or pre
/// handler on the next instruction).
///
/// # Safety
///
/// - `owner` is the [`Watch`] the probes were created with; it stays valid
///   until they are unregistered, which waits for this handler.
/// - `arm_kprobe` is the kprobe that fired, registered for as long as
///   `owner` is valid.
/// - `regs` is the probe's live register set for the duration of the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn ksw_rs_on_arm_probe(
    owner: *const c_void,
    arm_kprobe: *const c_void,
    regs: *mut pt_regs,
    in_nmi: bool,
) {
    // SAFETY: the function's contract.
    let watch = unsafe { &*owner.cast::<Watch>() };
    // A configuration being switched to, or from: not armed.
    if watch.generation != state::active_generation() {
        return;
    }
    watch.stats.calls.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the function's contract.
    let Some(regs) = (unsafe { Regs::from_raw(regs) }) else {
        return;
    };
    // Inside a real NMI the probe could interrupt perf's own breakpoint
    // bookkeeping: never arm there.
    if in_nmi {
        return COUNTERS.inc(Counter::NmiContext);
    }
    let task = glue::current_task();
    let decision = frame::decide(
        watch.spec.depth,
        TASKS.active(task, watch.id),
        |f| SLOTS.find(watch.id, task, f).is_some(),
        || frame_of(watch, &regs),
    );
    match decision {
        ProbeDecision::Arm { depth, frame } => {
            if sampled(watch) {
                arm(watch, arm_kprobe as usize, &regs, task, frame, depth);
            } else {
                COUNTERS.inc(Counter::NotSampled);
            }
        }
        ProbeDecision::OtherDepth => COUNTERS.inc(Counter::OtherDepth),
        ProbeDecision::AlreadyArmed => {}
        ProbeDecision::ExitUnobservable => COUNTERS.inc(Counter::ExitUnobservable),
        ProbeDecision::BadFrame => COUNTERS.inc(Counter::BadFrame),
    }
}

/// Whether this eligible call is one the spec's sampling picks (every
/// call unless `sample` or `rate` is set).
fn sampled(watch: &Watch) -> bool {
    let spec = &watch.spec;
    if spec.sample > 1 && !glue::with_cpu_random(|state| sample::sampled(state, spec.sample)) {
        return false;
    }
    spec.rate == 0
        || SPEC_RATE
            .get(usize::from(watch.index))
            .is_some_and(|r| r.allow(glue::now_ns(), spec.rate))
}

/// The probed call's return-address slot (`CFA - 8`), from the register
/// the function's layout says holds the frame, or by unwinding.
fn frame_of(watch: &Watch, regs: &Regs<'_>) -> Option<usize> {
    let cfa = watch
        .arm_cfa
        .cfa(regs.sp(), regs.bp())
        .or_else(|| regs.unwind_cfa())?;
    usize::try_from(cfa).ok()?.checked_sub(8)
}

/// Arms `frame`'s watch. The clock starts here, after the decision: the
/// non-arming path (every other call) takes no timestamp.
fn arm(
    watch: &Watch,
    arm_kprobe: usize,
    regs: &Regs<'_>,
    task: usize,
    frame_addr: usize,
    depth: u32,
) {
    let t0 = glue::now_ns();
    let (sp, bp) = (regs.sp() as usize, regs.bp() as usize);
    let (lo, hi) = glue::current_stack();
    let frame = Frame {
        sp,
        bp,
        frame: frame_addr,
        stack_lo: lo,
        stack_hi: hi,
        canary: glue::current_canary(),
    };
    let range = match frame::place(watch.target, &frame, &CurrentStack { lo, hi }) {
        Ok(range) => range,
        Err(err) => {
            return COUNTERS.inc(match err {
                PlaceError::OutsideStack => Counter::OutsideStack,
                PlaceError::Misaligned => Counter::Misaligned,
                PlaceError::CanaryNotFound => Counter::CanaryNotFound,
                PlaceError::BadFrame => Counter::BadFrame,
            });
        }
    };
    let slot = match SLOTS.claim(watch.index, watch.cap) {
        Ok(slot) => slot,
        Err(err) => {
            // A probe inside a loop hits once per iteration: count frames.
            if TASKS.note_dropped(task, watch.id, frame_addr) {
                COUNTERS.inc(match err {
                    ClaimError::NoFreeSlot => Counter::DroppedNoSlot,
                    ClaimError::SpecCap => Counter::DroppedMaxWatch,
                });
            }
            return;
        }
    };
    let canary = matches!(watch.target, Target::Canary(_));
    let value = glue::read_nofault(range.addr, range.len).unwrap_or(0);
    let probe_ip = watch.probe_ip();
    let victim_comm = glue::current_comm();
    let armed = Armed {
        id: 0,
        spec: watch.index,
        func: watch.id,
        owner: watch as *const Watch as usize,
        task,
        frame: frame_addr,
        addr: range.addr,
        len: range.len,
        sp,
        depth,
        probe_ip,
        arm_kprobe,
        panic_on_catch: watch.spec.panic_on_catch,
        canary,
        arm_value: value,
        victim_pid: glue::current_pid(),
        victim_comm,
        armed_ns: t0,
    };
    let id = SLOTS.publish(slot, armed, glue::online_cpus().saturating_sub(1));
    state::sync_cpu(false);
    let (shown, _) = withhold(value, canary.then_some(value));
    glue::trace_arm(&ArmRecord {
        id,
        probe_ip: probe_ip as u64,
        addr: range.addr as u64,
        sp: sp as u64,
        value: shown,
        depth,
        slot: slot as u8,
        spec: watch.index,
        len: range.len,
        flags: if canary { flags::ARM_CANARY } else { 0 },
        victim_comm,
    });
    COUNTERS.inc(Counter::Arms);
    watch.stats.armed.fetch_add(1, Ordering::Relaxed);
    ARM_LOCAL_NS.record(glue::now_ns().saturating_sub(t0));
    state::kick_remote();
}
