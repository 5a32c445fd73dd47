// SPDX-License-Identifier: GPL-2.0
//! Declarations of the C half (`ksw_test.h`) and thin safe wrappers.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;

/// `struct ksw_test_round`, owned by C.
#[repr(C)]
pub(crate) struct RawRound {
    _opaque: [u8; 0],
}

#[repr(C)]
pub(crate) struct RawTask {
    _opaque: [u8; 0],
}

extern "C" {
    fn ksw_test_round_new(pattern: u64) -> *mut RawRound;
    fn ksw_test_round_free(r: *mut RawRound);
    fn ksw_test_silent_round(r: *mut RawRound);
    fn ksw_test_round_wait_ready(r: *mut RawRound, timeout_ms: u32) -> bool;
    fn ksw_test_round_published(r: *mut RawRound) -> *mut u64;
    fn ksw_test_round_writer_done(r: *mut RawRound);
    fn ksw_test_round_bad_words(r: *mut RawRound) -> c_int;
    fn ksw_test_round_overlap(r: *mut RawRound) -> bool;

    fn ksw_test_direct_victim(value: u64) -> c_int;
    fn ksw_test_canary_victim() -> c_int;
    fn ksw_test_recurse(depth: u32, max_depth: u32, corrupt_depth: u32, hop: bool) -> c_int;
    fn ksw_test_bench_victim(seed: u64) -> u64;
    fn ksw_test_hold_victim(ms: u32) -> c_int;
    fn ksw_test_irq_victim(softirq: bool, value: u64) -> c_int;
    fn ksw_test_deep_victim(depth: u32, value: u64) -> c_int;
    fn ksw_test_alias_victim(value: u64) -> c_int;
    fn ksw_test_small_loop(calls: u32) -> u64;
    fn ksw_test_flat_loop(calls: u32) -> u64;
    fn ksw_test_exits_loop(calls: u32) -> u64;
    fn ksw_test_hog(on: bool) -> c_int;
    fn ksw_test_sweep_run(
        rounds: u32,
        victim: u32,
        victim_depth: *mut u32,
        corruptions: *mut u32,
    ) -> u32;

    fn ksw_test_thread_start(
        f: unsafe extern "C" fn(*mut c_void) -> c_int,
        arg: *mut c_void,
        name: *const u8,
        cpu: c_int,
    ) -> *mut RawTask;
    fn ksw_test_thread_join(task: *mut RawTask) -> c_int;
    fn ksw_test_pid() -> c_int;
    fn ksw_test_glue_init() -> c_int;
    fn ksw_test_glue_exit();
    fn ksw_test_now_ns() -> u64;
    fn ksw_test_sleep_ms(ms: u32);
    fn ksw_test_ipi_roundtrip_ns() -> u64;
    fn ksw_test_dr_program_ns(others: u32) -> u64;
    fn ksw_test_watch_tax_ns(mode: u32) -> u64;
    fn ksw_test_spin_ns(ns: u32);
    fn ksw_test_move_to_cpu(cpu: u32) -> c_int;
    fn ksw_test_cpu() -> c_int;
    fn ksw_test_online_cpus() -> u32;

    fn ksw_test_exit_inside(n: u32) -> c_int;
    fn ksw_test_cpu_online(cpu: u32) -> bool;
    fn ksw_test_possible_cpus() -> u32;
    fn ksw_test_sleep_us(us: u32);
    fn ksw_test_held_set_release(release: bool);
    fn ksw_test_held_victim(max_ms: u32) -> c_int;
}

/// A buggy/victim/writer rendezvous; freed on drop.
pub(crate) struct Round(NonNull<RawRound>);

// SAFETY: the C object is built for use from several threads (completions).
unsafe impl Send for Round {}
// SAFETY: as above.
unsafe impl Sync for Round {}

impl Round {
    pub(crate) fn new(pattern: u64) -> Option<Round> {
        // SAFETY: plain allocation.
        NonNull::new(unsafe { ksw_test_round_new(pattern) }).map(Round)
    }

    /// buggy() then victim(), in the calling thread.
    pub(crate) fn run_victim(&self) {
        // SAFETY: self.0 is live until drop.
        unsafe { ksw_test_silent_round(self.0.as_ptr()) }
    }

    pub(crate) fn wait_ready(&self, timeout_ms: u32) -> bool {
        // SAFETY: as above.
        unsafe { ksw_test_round_wait_ready(self.0.as_ptr(), timeout_ms) }
    }

    /// The stack address the buggy frame leaked.
    pub(crate) fn published(&self) -> *mut u64 {
        // SAFETY: as above.
        unsafe { ksw_test_round_published(self.0.as_ptr()) }
    }

    pub(crate) fn writer_done(&self) {
        // SAFETY: as above.
        unsafe { ksw_test_round_writer_done(self.0.as_ptr()) }
    }

    pub(crate) fn bad_words(&self) -> i32 {
        // SAFETY: as above.
        unsafe { ksw_test_round_bad_words(self.0.as_ptr()) }
    }

    pub(crate) fn overlap(&self) -> bool {
        // SAFETY: as above.
        unsafe { ksw_test_round_overlap(self.0.as_ptr()) }
    }
}

impl Drop for Round {
    fn drop(&mut self) {
        // SAFETY: dropped once, after every thread using it was joined.
        unsafe { ksw_test_round_free(self.0.as_ptr()) }
    }
}

pub(crate) fn direct_victim(value: u64) -> i32 {
    // SAFETY: runs a self-contained C function.
    unsafe { ksw_test_direct_victim(value) }
}

pub(crate) fn canary_victim() -> i32 {
    // SAFETY: as above.
    unsafe { ksw_test_canary_victim() }
}

pub(crate) fn recurse(max_depth: u32, corrupt_depth: u32, hop: bool) -> i32 {
    // SAFETY: as above; max_depth is bounded by the caller.
    unsafe { ksw_test_recurse(0, max_depth, corrupt_depth, hop) }
}

pub(crate) fn hold_victim(ms: u32) -> i32 {
    // SAFETY: runs a self-contained C function (it sleeps).
    unsafe { ksw_test_hold_victim(ms) }
}

/// The victim spins on its CPU until an interrupt there writes its local.
pub(crate) fn irq_victim(softirq: bool, value: u64) -> i32 {
    // SAFETY: process context; C cancels the timer before the frame dies.
    unsafe { ksw_test_irq_victim(softirq, value) }
}

pub(crate) fn deep_victim(depth: u32, value: u64) -> i32 {
    // SAFETY: self-contained C function; depth is bounded by the caller.
    unsafe { ksw_test_deep_victim(depth, value) }
}

pub(crate) fn alias_victim(value: u64) -> i32 {
    // SAFETY: process context (vmap sleeps); writes only its own frame.
    unsafe { ksw_test_alias_victim(value) }
}

pub(crate) fn flat_loop(calls: u32) -> u64 {
    // SAFETY: self-contained C function.
    unsafe { ksw_test_flat_loop(calls) }
}

pub(crate) fn small_loop(calls: u32) -> u64 {
    // SAFETY: self-contained C function.
    unsafe { ksw_test_small_loop(calls) }
}

pub(crate) fn exits_loop(calls: u32) -> u64 {
    // SAFETY: self-contained C function.
    unsafe { ksw_test_exits_loop(calls) }
}

/// Look-alike functions calling each other: one of them (`victim`, or a
/// random one if out of range) has its canary hit once per round at a
/// random depth. Returns (victim, its depth, corruptions).
pub(crate) fn sweep_run(rounds: u32, victim: u32) -> (u32, u32, u32) {
    let (mut depth, mut corruptions) = (0, 0);
    // SAFETY: self-contained C function; the out-pointers are locals.
    let v = unsafe { ksw_test_sweep_run(rounds, victim, &mut depth, &mut corruptions) };
    (v, depth, corruptions)
}

/// While on, CPUs coming online have all their breakpoints taken first.
pub(crate) fn hog(on: bool) -> Result<(), c_int> {
    // SAFETY: process context (scenario writes, under the test lock).
    match unsafe { ksw_test_hog(on) } {
        0 => Ok(()),
        e => Err(e),
    }
}

pub(crate) fn bench_victim(seed: u64) -> u64 {
    // SAFETY: as above.
    unsafe { ksw_test_bench_victim(seed) }
}

/// A kernel thread running `f(arg)`; join before `arg` goes away.
pub(crate) struct Thread(NonNull<RawTask>);

impl Thread {
    /// # Safety
    /// `arg` must stay valid until [`Thread::join`] returns.
    pub(crate) unsafe fn start(
        f: unsafe extern "C" fn(*mut c_void) -> c_int,
        arg: *mut c_void,
        name: &kernel::str::CStr,
        cpu: Option<u32>,
    ) -> Option<Thread> {
        let cpu = cpu.map_or(-1, |c| c as c_int);
        // SAFETY: `name` is NUL-terminated; `arg`'s lifetime is the caller's
        // contract; C takes a task reference released by join.
        NonNull::new(unsafe { ksw_test_thread_start(f, arg, name.as_char_ptr(), cpu) }).map(Thread)
    }

    pub(crate) fn join(self) -> i32 {
        // SAFETY: self.0 holds a task reference taken by start().
        unsafe { ksw_test_thread_join(self.0.as_ptr()) }
    }
}

pub(crate) fn pid() -> i32 {
    // SAFETY: reads `current`.
    unsafe { ksw_test_pid() }
}

pub(crate) fn init() -> Result<(), c_int> {
    // SAFETY: module init, once.
    match unsafe { ksw_test_glue_init() } {
        0 => Ok(()),
        e => Err(e),
    }
}

pub(crate) fn exit() {
    // SAFETY: module exit, after init.
    unsafe { ksw_test_glue_exit() }
}

pub(crate) fn now_ns() -> u64 {
    // SAFETY: NMI-safe clock read.
    unsafe { ksw_test_now_ns() }
}

pub(crate) fn sleep_ms(ms: u32) {
    // SAFETY: process context (a kernel thread).
    unsafe { ksw_test_sleep_ms(ms) }
}

/// One broadcast IPI round trip (all other CPUs run a no-op), in ns.
pub(crate) fn ipi_roundtrip_ns() -> u64 {
    // SAFETY: process context; C disables preemption around the call.
    unsafe { ksw_test_ipi_roundtrip_ns() }
}

/// Programming (enabling or disabling) one data breakpoint while `others`
/// (0..=3) more are enabled, in ns; 0 if the debug registers are in use.
pub(crate) fn dr_program_ns(others: u32) -> u64 {
    // SAFETY: process context; C uses the debug registers only when all are
    // free, on private words, with interrupts off, and restores them.
    unsafe { ksw_test_dr_program_ns(others) }
}

/// Where a data breakpoint sits while 4096 stack writes are timed: what
/// `watch_tax_ns` compares.
#[derive(Clone, Copy)]
pub(crate) enum TaxedWatch {
    None = 0,
    OtherPage = 1,
    SameStackPage = 2,
}

/// ns for 4096 8-byte stack writes while a data breakpoint watches `watch` (never
/// the written word); 0 if the debug registers are in use.
pub(crate) fn watch_tax_ns(watch: TaxedWatch) -> u64 {
    // SAFETY: process context; C uses DR3 only when all registers are free,
    // on a word nothing writes, with interrupts off, and restores it.
    unsafe { ksw_test_watch_tax_ns(watch as u32) }
}

/// Busy-waits `ns` nanoseconds.
pub(crate) fn spin_ns(ns: u32) {
    // SAFETY: ndelay has no preconditions.
    unsafe { ksw_test_spin_ns(ns) }
}

/// Moves the calling thread to `cpu`; returns the CPU it now runs on.
pub(crate) fn move_to_cpu(cpu: u32) -> Result<u32, i32> {
    // SAFETY: changes the affinity of `current` only.
    let ret = unsafe { ksw_test_move_to_cpu(cpu) };
    u32::try_from(ret).map_err(|_| ret)
}

pub(crate) fn cpu() -> u32 {
    // SAFETY: reads the current CPU id.
    unsafe { ksw_test_cpu() as u32 }
}

pub(crate) fn online_cpus() -> u32 {
    // SAFETY: reads a counter.
    unsafe { ksw_test_online_cpus() }
}

/// Runs `n` kernel threads that each exit inside `ksw_test_exit_victim`;
/// returns how many ran, once all are gone (or a negative errno).
pub(crate) fn exit_inside(n: u32) -> i32 {
    // SAFETY: process context; C waits until every thread it started is gone.
    unsafe { ksw_test_exit_inside(n) }
}

pub(crate) fn cpu_online(cpu: u32) -> bool {
    // SAFETY: reads the online mask.
    unsafe { ksw_test_cpu_online(cpu) }
}

/// CPU ids that can ever be online (`nr_cpu_ids`).
pub(crate) fn possible_cpus() -> u32 {
    // SAFETY: reads a constant.
    unsafe { ksw_test_possible_cpus() }
}

/// Sleeps about `us` microseconds (process context).
pub(crate) fn sleep_us(us: u32) {
    // SAFETY: called from a kernel thread, no lock held.
    unsafe { ksw_test_sleep_us(us) }
}

/// Lets `held_victim` return (or keeps the next one in).
pub(crate) fn held_set_release(release: bool) {
    // SAFETY: sets an atomic flag.
    unsafe { ksw_test_held_set_release(release) }
}

/// Stays in its watched frame until released or `max_ms` pass.
pub(crate) fn held_victim(max_ms: u32) -> i32 {
    // SAFETY: self-contained C function (it sleeps).
    unsafe { ksw_test_held_victim(max_ms) }
}
