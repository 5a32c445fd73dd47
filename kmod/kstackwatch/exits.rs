// SPDX-License-Identifier: GPL-2.0
//! How watched frames end, and the per-task call depth.
//!
//! - The release probes (kprobe pre handlers on every instruction where the
//!   watched slot stops belonging to the frame, from `layout.rs`) disarm
//!   while the slot is still the frame's and read the value it died with.
//!   That is the normal way a watch ends.
//! - The fprobe entry and exit hooks keep the per-task depth (`tasks.rs`);
//!   the exit hook is also the backstop for a release probe that did not
//!   run (a kprobe hit while another probe handler was running is skipped
//!   by the kernel): it disarms after the frame died, so the exit value is
//!   unknown.
//! - The task-exit hook ends the watches of a task that exits inside a
//!   watched call.
//!
//! Contexts: probe handlers (int3/NMI-like or ftrace), interrupts off. No
//! allocation, no lock, no sleep.

use core::ffi::{c_int, c_void};

use kernel::bindings::pt_regs;

use crate::glue::{self, Regs};
use crate::ksw_core::events::{flags, DisarmReason, DisarmRecord, ExitState};
use crate::ksw_core::hit::{exit_state, withhold};
use crate::ksw_core::layout::ReleaseKind;
use crate::ksw_core::stats::Counter;
use crate::ksw_core::tasks::{CallLink, Enter};
use crate::state::{self, COUNTERS, DISARM_LOCAL_NS, SLOTS, TASKS};
use crate::watch::{FuncIndex, Watch};

/// How the value a frame died with is known.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitRead {
    /// Read it now: the slot still belongs to the frame (release probe,
    /// task exit, teardown of a live frame).
    Now,
    /// The frame is gone: nothing can be said about its value.
    Lost,
}

/// Retires `slot` if still armed, emits `ksw_disarm`, resyncs the CPUs.
pub(crate) fn disarm(slot: usize, reason: DisarmReason, read: ExitRead) {
    let t0 = glue::now_ns();
    let Some(retired) = SLOTS.retire(slot) else {
        return;
    };
    // This CPU stops watching before anything else can touch the slot.
    state::sync_cpu(false);
    let a = &retired.armed;
    let exit_value = match read {
        ExitRead::Now => glue::read_nofault(a.addr, a.len),
        ExitRead::Lost => None,
    };
    let state = exit_state(a.arm_value, exit_value);
    let canary = a.canary.then_some(a.arm_value);
    let (arm_shown, _) = withhold(a.arm_value, canary);
    let (exit_shown, exit_withheld) = withhold(exit_value.unwrap_or(0), canary);
    let mut f = 0;
    if a.canary {
        f |= flags::DISARM_CANARY;
    }
    if exit_withheld && exit_value.is_some() {
        f |= flags::DISARM_EXIT_CANARY;
    }
    glue::trace_disarm(&DisarmRecord {
        id: a.id,
        addr: a.addr as u64,
        arm_value: arm_shown,
        exit_value: exit_shown,
        hits: retired.hits,
        slot: slot as u8,
        corrupted: state as u8,
        reason: reason as u8,
        flags: f,
    });
    COUNTERS.inc(Counter::Disarms);
    match state {
        ExitState::Changed => COUNTERS.inc(Counter::Corrupted),
        ExitState::Unknown => COUNTERS.inc(Counter::UnknownExit),
        ExitState::Intact => {}
    }
    if reason == DisarmReason::Backstop {
        COUNTERS.inc(Counter::BackstopDisarms);
        COUNTERS.add(Counter::ExitPathHits, u64::from(retired.victim_hits));
    }
    DISARM_LOCAL_NS.record(glue::now_ns().saturating_sub(t0));
    state::kick_remote();
}

/// The kprobe pre handler on an instruction that may release the slot.
///
/// # Safety
///
/// - `owner` is the [`Watch`] the probes were created with, valid until
///   they are unregistered (which waits for this handler).
/// - `regs` is the probe's live register set for the duration of the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn ksw_rs_on_release_probe(
    owner: *const c_void,
    index: u32,
    regs: *mut pt_regs,
) {
    // SAFETY: the function's contract.
    let watch = unsafe { &*owner.cast::<Watch>() };
    // The common case, every call of the function: nothing of ours armed.
    if !SLOTS.spec_has_armed(watch.index) {
        return;
    }
    // SAFETY: the function's contract.
    let Some(regs) = (unsafe { Regs::from_raw(regs) }) else {
        return;
    };
    let Some(point) = watch.releases().get(index as usize) else {
        return;
    };
    let Some(cfa) = point
        .cfa
        .cfa(regs.sp(), regs.bp())
        .or_else(|| regs.unwind_cfa())
    else {
        return;
    };
    let frame = (cfa as usize).wrapping_sub(8);
    let Some(slot) = SLOTS.find(watch.id, glue::current_task(), frame) else {
        return;
    };
    let Some(armed) = SLOTS.armed(slot) else {
        return;
    };
    match point.kind {
        ReleaseKind::Exit => disarm(slot, DisarmReason::Return, ExitRead::Now),
        ReleaseKind::Release(effect) => {
            let Some(sp_after) = effect.sp_after(regs.sp(), regs.bp()) else {
                return;
            };
            let addr = armed.addr as u64;
            // Still at or above sp after this instruction: a later release
            // point (or the exit) ends it.
            if addr >= sp_after {
                return;
            }
            if addr < regs.sp() {
                // Already below sp: an earlier release went unprobed.
                COUNTERS.inc(Counter::LateReleases);
            }
            disarm(slot, DisarmReason::Return, ExitRead::Now);
        }
    }
}

/// The fprobe entry hook: one more active call in this task. Returns
/// nonzero to leave the call untracked (then it has no exit hook either).
///
/// # Safety
///
/// - `owner` is the spec's [`FuncIndex`] the fprobe was created with,
///   valid until the fprobe is unregistered (which waits for this handler).
/// - `regs` is the entry's live register set; `data` points at
///   `CALL_DATA` bytes private to this call, handed to the exit hook.
#[no_mangle]
pub(crate) unsafe extern "C" fn ksw_rs_on_entry(
    owner: *const c_void,
    entry_ip: usize,
    regs: *mut pt_regs,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the function's contract.
    let funcs = unsafe { &*owner.cast::<FuncIndex>() };
    let Some(watch) = funcs.lookup(entry_ip) else {
        return 1;
    };
    // SAFETY: the function's contract.
    let Some(regs) = (unsafe { Regs::from_raw(regs) }) else {
        return 1;
    };
    // Calls in NMI context would race with the task's own updates of its
    // entry (the only writer otherwise): leave them untracked.
    if glue::preempt_count() & crate::ksw_core::events::preempt::NMI_MASK != 0 {
        return 1;
    }
    // At the entry sp points at the return address: that is the frame.
    let frame = regs.sp() as usize;
    let link = match TASKS.enter(glue::current_task(), watch.id, frame) {
        Enter::Tracked(link) => link,
        Enter::Resynced(link) => {
            COUNTERS.inc(Counter::DepthResync);
            link
        }
        Enter::Full => {
            COUNTERS.inc(Counter::DepthUntracked);
            return 1;
        }
    };
    // SAFETY: `data` holds CALL_DATA bytes for this call (contract), at
    // least the size of a CallLink (asserted in abi.rs); no alignment
    // assumed.
    unsafe { core::ptr::write_unaligned(data.cast::<CallLink>(), link) };
    0
}

/// The fprobe exit hook (after the return): the backstop, and one call
/// less in this task.
///
/// # Safety
///
/// As for [`ksw_rs_on_entry`]; `data` holds what the entry hook wrote.
#[no_mangle]
pub(crate) unsafe extern "C" fn ksw_rs_on_exit(
    owner: *const c_void,
    entry_ip: usize,
    regs: *mut pt_regs,
    data: *mut c_void,
) {
    // SAFETY: the function's contract.
    let funcs = unsafe { &*owner.cast::<FuncIndex>() };
    let Some(watch) = funcs.lookup(entry_ip) else {
        return;
    };
    // SAFETY: the function's contract.
    let Some(regs) = (unsafe { Regs::from_raw(regs) }) else {
        return;
    };
    // SAFETY: the entry hook wrote a CallLink there (contract).
    let link = unsafe { core::ptr::read_unaligned(data.cast::<CallLink>()) };
    let task = glue::current_task();
    // After the return sp is one word above the return-address slot.
    let frame = (regs.sp() as usize).wrapping_sub(8);
    if SLOTS.spec_has_armed(watch.index) {
        if let Some(slot) = SLOTS.find(watch.id, task, frame) {
            disarm(slot, DisarmReason::Backstop, ExitRead::Lost);
        }
    }
    TASKS.exit(task, watch.id, link);
}

/// A task is exiting: frames it never returned from die with it. Runs in
/// that task, interrupts off.
#[no_mangle]
pub(crate) extern "C" fn ksw_rs_on_task_exit(task: usize) {
    for slot in SLOTS.armed_indices() {
        if SLOTS.armed(slot).is_some_and(|a| a.task == task) {
            disarm(slot, DisarmReason::TaskExit, ExitRead::Now);
        }
    }
    TASKS.forget_task(task);
}
