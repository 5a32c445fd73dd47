// SPDX-License-Identifier: GPL-2.0
//! The breakpoint handler: a watched slot was written. Runs in the
//! writer's context (#DB, NMI-like), so the event's call chain is the
//! writer's. What is reported is decided in `ksw_core::hit`.

use core::sync::atomic::Ordering;

use kernel::bindings::pt_regs;

use crate::glue::{self, Regs};
use crate::ksw_core::events::HitRecord;
use crate::ksw_core::hit::{self, HitClass, Writer};
use crate::ksw_core::stats::Counter;
use crate::state::{COUNTERS, SLOTS};
use crate::watch::Watch;

/// The perf overflow handler of slot `slot`'s breakpoint on this CPU.
///
/// # Safety
///
/// `regs` is the #DB handler's live register set for the duration of the
/// call (the written-to instruction is the one before `regs->ip`).
#[no_mangle]
pub(crate) unsafe extern "C" fn ksw_rs_on_hit(
    slot: u32,
    regs: *mut pt_regs,
    programmed_addr: usize,
) {
    // SAFETY: the function's contract.
    let Some(regs) = (unsafe { Regs::from_raw(regs) }) else {
        return;
    };
    let slot = slot as usize;
    let ip = regs.ip() as usize;
    let armed = SLOTS.armed(slot);
    let writer = Writer {
        task: glue::current_task(),
        programmed_addr,
        in_this_module: glue::in_this_module(ip),
        preempt_count: glue::preempt_count(),
    };
    let (a, context, by_victim) = match (hit::classify(armed.as_ref(), &writer), armed) {
        (HitClass::Report { context, by_victim }, Some(a)) => (a, context, by_victim),
        (HitClass::ThisModule, _) => return COUNTERS.inc(Counter::SelfHits),
        _ => return COUNTERS.inc(Counter::StaleHits),
    };
    // SAFETY: an armed slot's kprobe is unregistered only after the slot
    // retired and handlers like this one drained (see `owner` below).
    let origin = unsafe { glue::kprobe_origin(a.arm_kprobe, ip) };
    let writer_ip = origin.unwrap_or(ip);
    let new_value = glue::read_nofault(a.addr, a.len).unwrap_or(0);
    let Some((old_value, _)) = SLOTS.record_hit(slot, a.id, new_value, by_victim) else {
        return COUNTERS.inc(Counter::StaleHits);
    };
    COUNTERS.inc(Counter::Hits);
    // SAFETY: `owner` is the watch that armed this slot; a watch is freed
    // only after teardown has retired all its slots and waited, through an
    // IPI to every CPU, for handlers like this one (interrupts off) that
    // may have read the slot before.
    let watch = unsafe { &*(a.owner as *const Watch) };
    watch.stats.hits.fetch_add(1, Ordering::Relaxed);
    let canary = a.canary.then_some(a.arm_value);
    let (old_shown, old_withheld) = hit::withhold(old_value, canary);
    let (new_shown, new_withheld) = hit::withhold(new_value, canary);
    glue::trace_hit(&HitRecord {
        id: a.id,
        addr: a.addr as u64,
        writer_ip: writer_ip as u64,
        old_value: old_shown,
        new_value: new_shown,
        probe_ip: a.probe_ip as u64,
        victim_pid: a.victim_pid,
        victim_comm: a.victim_comm,
        writer_comm: glue::current_comm(),
        slot: slot as u8,
        len: a.len,
        context: context as u8,
        flags: hit::hit_flags(by_victim, old_withheld, new_withheld, origin.is_some()),
    });
    glue::log_hit(a.id, writer_ip, &a.victim_comm, a.victim_pid);
    if a.panic_on_catch {
        glue::panic_caught(a.id, writer_ip, &regs);
    }
}
