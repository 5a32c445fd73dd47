// SPDX-License-Identifier: GPL-2.0
//! The module's shared, lock-free state: read and written by every handler,
//! in any context.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::glue;
use crate::ksw_core::config::MAX_SPECS;
use crate::ksw_core::sample::RateLimit;
use crate::ksw_core::slots::{SlotTable, MAX_SLOTS};
use crate::ksw_core::stats::{Counters, Histogram};
use crate::ksw_core::tasks::TaskTable;

/// Which frame each hardware slot watches: the source of truth every CPU
/// programs its debug registers from.
pub(crate) static SLOTS: SlotTable = SlotTable::new();
/// Per-task depth of the watched functions.
pub(crate) static TASKS: TaskTable = TaskTable::new();
pub(crate) static COUNTERS: Counters = Counters::new();
/// Arm decision → this CPU's debug register programmed, event emitted.
pub(crate) static ARM_LOCAL_NS: Histogram = Histogram::new();
/// Arm decision → the last other CPU programmed (the window a write on
/// another CPU could slip through).
pub(crate) static ARM_WINDOW_NS: Histogram = Histogram::new();
/// Release probe → this CPU's debug register parked, event emitted.
pub(crate) static DISARM_LOCAL_NS: Histogram = Histogram::new();
/// `rate=` of each spec: frames armed in the current second.
pub(crate) static SPEC_RATE: [RateLimit; MAX_SPECS] = [const { RateLimit::new() }; MAX_SPECS];

/// The configuration whose watches may arm (0: none). A new configuration's
/// probes go in before the switch and arm only once it is active.
static ACTIVE_GENERATION: AtomicU32 = AtomicU32::new(0);
static NEXT_GENERATION: AtomicU32 = AtomicU32::new(1);
/// Ids of watched functions, unique per module load (never 0).
static NEXT_FUNC_ID: AtomicU32 = AtomicU32::new(1);

pub(crate) fn active_generation() -> u32 {
    ACTIVE_GENERATION.load(Ordering::Acquire)
}

/// Lets the watches of `generation` arm (0: none).
pub(crate) fn set_active_generation(generation: u32) {
    ACTIVE_GENERATION.store(generation, Ordering::Release);
}

pub(crate) fn new_generation() -> u32 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed).max(1)
}

pub(crate) fn new_func_id() -> u32 {
    NEXT_FUNC_ID.fetch_add(1, Ordering::Relaxed).max(1)
}

/// Programs this CPU's debug registers from the slot table. `remote`: this
/// CPU is catching up with another CPU's update (counts toward the window).
pub(crate) fn sync_cpu(remote: bool) {
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

/// Asks the other CPUs to sync, if there are any.
pub(crate) fn kick_remote() {
    if glue::online_cpus() > 1 {
        COUNTERS.inc(crate::ksw_core::stats::Counter::RemoteKicks);
        glue::kick_remote();
    }
}

/// IPI or hotplug callback, interrupts off: sync this CPU.
#[no_mangle]
pub(crate) extern "C" fn ksw_rs_sync_cpu(remote: bool) {
    sync_cpu(remote);
}

/// A CPU came online without breakpoints (someone holds its registers).
#[no_mangle]
pub(crate) extern "C" fn ksw_rs_cpu_without_slots(_cpu: u32) {
    COUNTERS.inc(crate::ksw_core::stats::Counter::CpusWithoutSlots);
}
